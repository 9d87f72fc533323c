"""hebb_utils: Hebbian learning rules, topographic SoftHebb, metrics, data access and GPU kernels.

One folder per idea, one file per thing in it (subpackages import nothing on their own; this file
gathers the public names). The folders stand on floors, and a module imports only from a lower floor
or its own folder (tools/import_graph.py LAYERS, checked by tests/test_structure.py):

    0  checks, io, pins, constants, settings, linalg, parallel
    1  kernels/, data/              (neither imports the other)
    2  rules/ + backend, measure/   (neither imports the other)
    3  dictionaries/
    4  experiments/
    5  report/
    6  cli, this file

    checks.py          every input check of the public entry points, and the shared neuron Grid
    io.py              atomic artifacts (files, folders) and portable paths
    parallel.py        the process group of data-parallel runs (torchrun; NCCL or gloo)
    pins.py            the float code paths pinned so that Intel and AMD CPUs with AVX2 compute the same bits
    constants.py       the numeric constants the rules and the kernels share (RADIUS_EPS, DW_EPS, BN_EPS)
    settings.py        the published SoftHebb settings, written once (defaults, error hints, checkpoints)
    linalg.py          subspace error, component cosines, Amari distance: the rules' convergence traces and the metrics
    backend.py         torch or Triton for a step, with a self-check before `auto` trusts the kernels on a GPU
    rules/             the learning rules
        stream.py      data as (B, D) batches: a tensor, an array, or re-iterable batches
        schedule.py    step sizes, training steps and snapshots, the run loop of the Hebbian rules and its history
        hebbian.py     Hebb, Hebb with decay, the recurrent circuit, Oja, Sanger (also data-parallel), the exact reference
        ica.py         Hebbian ICA (natural-gradient infomax on whitened data)
        lateral.py     SoftHebb's lateral (topographic) support, fixed or annealed; each shape registered once
        softhebb.py    one SoftHebb step: the torch reference the kernels match
        layer.py       the SoftHebb layer (BatchNorm, then u = x W^T)
        pursuit.py     Hebbian matching pursuit: k units per input, explaining each other away (SAELens' MP encoder)
        training.py    the one training loop (SoftHebb or the pursuit rule), for one process or N
        graphed_epoch.py  a whole epoch on CUDA: the kernels' steps captured in CUDA graphs
        checkpoint.py  the one checkpoint format: one writer, one reader, one finiteness check
        som.py         the Kohonen-map baseline (MiniSom) on the same inputs and grid
    kernels/           Triton kernels, one op family per file (lazy; needs triton); support.py: how a
                       lateral support describes itself to them (they import no rule)
    data/
        sources.py     CIFAR-10, TinyStories and language models (Hub or the HEBB_DATA_MIRROR mirror)
        extract.py     residual-stream extraction (runs the model), into one folder or a sharded store
        store.py       the two artifact formats, written atomically and checked on opening: the single
                       folder and the sharded store (fixed-size float32/float16 shards, resumable, streamed)
    measure/           pure metrics: no rule, no experiment (a map is read by what it does)
        metrics.py     topographic error, distance correlation, Amari distance, purity, probes, excess kurtosis
        maps.py        one streaming pass over many samples for the metrics of a trained map
        recovery.py    MMCS, Hungarian MCC, recovered share, explained variance, dead units, topographic rank rho
        seeds.py       means and 95% intervals over seeds, and their formatting
        describe.py    each metric's label, better direction, bounds and glossary, registered beside the metric
    dictionaries/      dictionaries with known features and the methods that learn them (imports SAELens lazily)
        ground_truth.py  superposition with known features: Sharkey et al.'s toys, a topographic one
        synthetic.py     SAELens' own synthetic benchmark, built locally and scored by SAELens
        saelens.py       SAELens SAEs trained beside SoftHebb; export_saelens; any SAE on the map
        registry.py      every method as fit(seed) -> Dictionary, and METHODS, their registry
    experiments/       what notebooks 04-07 run, with the goals they check: one module per experiment
        softhebb.py    notebooks 04-05: the SoftHebb layer and its ablations over seeds; any method over seeds
        topography.py  notebook 06: SoftHebb (fixed, annealed) against MiniSom on one grid
        topography_goals.py  notebook 06's goals and table design (light: the report reads them)
        dictionaries.py  notebook 07: the one evaluation every dictionary method gets
        goals.py       notebook 07's goals set before measuring, judged on the seeds' intervals
    report/
        plots.py, token_map.py (the interactive map page), lm_map.py (the map of words as files),
        tables.py (results JSON and the README's tables, from sections/: one file per notebook, and
        markdown.py), reproduce.py (the check against the committed numbers), paper.py (the paper)
    cli.py             `python -m hebb_utils extract|train|map|methods` (__main__.py), calling the functions above

The core (checks, the rules, metrics, kernels) imports with torch and numpy alone; datasets,
transformers, pandas, scikit-learn and matplotlib are imported inside the functions that use them.
"""
from .backend import resolve_backend, triton_available
from .checks import Grid
from .data.extract import block_at_depth, default_center, extract_activations, extract_to_shards
from .data.store import (Activations, ShardedActivations, activations_source, acts_checksum, load_activations,
                         open_activations, save_activations, write_shards)
from .data.sources import (DataSourceError, cifar_inputs, default_cache_dir, load_cifar10, load_language_model,
                           load_tinystories, load_tokenizer, mirror_dir, model_label, resolve_device, resolve_source)
from .dictionaries.registry import METHODS, method
from .experiments.softhebb import ablations_over_seeds, calibrate_normalisation, methods_over_seeds, train_ablations
from .io import atomic_path, atomic_replace_dir, atomic_torch_save, atomic_write_json, portable, recover_dir
from .measure.maps import map_metrics, neuron_summary, softhebb_metrics, top_distinct_tokens, triangle_activation
from .measure.metrics import (amari_distance, component_cosines, dead_fraction, distance_correlation, effective_dimension,
                              excess_kurtosis, grid_coordinates, label_selectivity, label_selectivity_from_winners,
                              linear_probe, neighbour_similarity, reconstruction_error, subspace_error, token_purity,
                              token_purity_from_top, topographic_error, topographic_error_from_winners, winner_counts)
from .measure.seeds import contrast, format_mean_ci, mean_ci, seed_list, summarise_seeds
from .parallel import init_distributed, rank_world
from .report.lm_map import draw_token_map, write_token_map
from .report.plots import (animate_weight_grid, busiest_window, plot_convergence, plot_frontier, plot_ladder, plot_sweep,
                           plot_token_map, plot_tradeoff, plot_weight_grid, save_figure, show_images, weight_tiles)
from .report.tables import run_info, seed_table, write_results
from .report.token_map import context_snippets, token_map_html
from .rules.hebbian import (HebbResult, estimate_top_eigenvalue, hebb, hebb_with_decay, oja, oja_parallel,
                            recurrent_hebb, sanger, sanger_parallel, sanger_step, sanger_step_parallel, top_eigenvectors)
from .rules.ica import hebbian_ica
from .rules.lateral import DECAYS, NEIGHBOURHOODS, Lateral, LateralSchedule
from .rules.layer import SoftHebbLinear, softhebb_step
from .rules.pursuit import PursuitLinear, pursuit_encode
from .rules.schedule import schedule_progress, seeded_generator, snapshot_steps, training_steps
from .rules.softhebb import plastic_update, post_synaptic
from .rules.som import SOM, standardise, train_som
from .rules.training import train_softhebb, train_softhebb_parallel

__version__ = "0.1.0"
