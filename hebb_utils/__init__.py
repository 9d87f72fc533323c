"""hebb_utils: Hebbian learning rules, topographic SoftHebb, metrics, data access and GPU kernels.

One file per idea:
    checks.py      every input check of the public entry points, and the shared neuron Grid
    stream.py      data as (B, D) batches: a tensor, an array, or re-iterable batches
    schedule.py    the step size lr_at(step), the shared options (RunConfig) and the run loop with its history
    hebbian.py     Hebb, Hebb with decay, the recurrent circuit, Oja, Sanger, the exact reference
    ica.py         Hebbian ICA (natural-gradient infomax on whitened data)
    softhebb.py    the SoftHebb layer with lateral (topographic) support, fixed or annealed: the torch reference
    som.py         the Kohonen map baseline (MiniSom) on the same inputs and grid
    kernels/       Triton kernels, one op family per file, and the CUDA-graph epoch (lazy; needs triton)
    backend.py     torch or Triton, with a self-check before `auto` trusts the kernels on a GPU
    metrics.py     topographic error, distance correlation, Amari distance, purity, probes
    analysis.py    a streaming pass over many samples for the metrics of a trained layer; seeds
    seeds.py       means and 95% intervals over seeds
    data.py        CIFAR-10, TinyStories and language models (Hub or the HEBB_DATA_MIRROR mirror)
    activations.py residual-stream extraction and the activation artifact
    shards.py      the sharded activation store: fixed-size float32/float16 shards, resumable, streamed
    distributed.py data-parallel SoftHebb and Sanger/Oja on torch.distributed (torchrun; NCCL or gloo)
    lm_map.py      the map of words of a trained layer as files (figures, interactive page, metrics)
    cli.py         `python -m hebb_utils extract|train|map` (__main__.py), calling the functions above
    plots.py, token_map.py, io.py, report.py, reproduce.py

The core (checks, the rules, softhebb, metrics, kernels) imports with torch and numpy alone; datasets,
transformers, pandas, scikit-learn and matplotlib are imported inside the functions that use them.
"""
from .activations import (Activations, activations_source, acts_checksum, default_center, extract_activations, load_activations,
                          save_activations)
from .analysis import (ablations_over_seeds, calibrate_normalisation, map_metrics, methods_over_seeds, neuron_summary,
                       softhebb_metrics, top_distinct_tokens, train_ablations, triangle_activation)
from .backend import resolve_backend, triton_available
from .checks import Grid
from .data import (DataSourceError, cifar_inputs, default_cache_dir, load_cifar10, load_language_model, load_tinystories,
                   load_tokenizer, mirror_dir, resolve_device, resolve_source)
from .io import atomic_path, atomic_replace_dir, atomic_torch_save, atomic_write_json, portable, recover_dir
from .metrics import (amari_distance, component_cosines, dead_fraction, distance_correlation, grid_coordinates,
                      effective_dimension, label_selectivity, label_selectivity_from_winners, linear_probe, neighbour_similarity,
                      reconstruction_error, subspace_error, token_purity,
                      token_purity_from_top, topographic_error, topographic_error_from_winners, winner_counts)
from .hebbian import (HebbResult, estimate_top_eigenvalue, hebb, hebb_with_decay, oja, recurrent_hebb, sanger, sanger_step,
                      top_eigenvectors)
from .ica import hebbian_ica
from .plots import (animate_weight_grid, busiest_window, plot_convergence, plot_sweep, plot_token_map, plot_tradeoff, plot_weight_grid,
                    save_figure, show_images, weight_tiles)
from .report import contrast, format_mean_ci, run_info, seed_table, write_results
from .seeds import mean_ci, seed_list, summarise_seeds
from .token_map import context_snippets, token_map_html
from .softhebb import (Lateral, LateralSchedule, SoftHebbLinear, plastic_update, post_synaptic, schedule_progress,
                       snapshot_steps, softhebb_step, train_softhebb, training_steps)
from .som import SOM, standardise, train_som

from .shards import ShardedActivations, extract_to_shards, open_activations, write_shards
from .distributed import (init_distributed, oja_parallel, rank_world, sanger_parallel, sanger_step_parallel,
                          train_softhebb_parallel)
from .lm_map import draw_token_map, write_token_map

__version__ = "0.1.0"
