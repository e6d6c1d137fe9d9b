# LlamaHome TUI: every set-up step lives here, so a fresh clone needs only `make train` / `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/llamahome-tui --no-ui
STAMP := $(VENV)/.installed
# With no DATA_PATH, train on the shipped chat samples and evaluate on their held-out split;
# with your own DATA_PATH, EVAL_PATH is optional (data.validation_split is used without it).
# The shipped demo trains one epoch (of the default two): a first run in minutes on any 2-core CPU
# (bench/first_run.py runs the same command and measures it).
ifeq ($(origin DATA_PATH), undefined)
DATA_PATH := data/samples/chat_train.jsonl
EVAL_PATH ?= data/samples/chat_eval.jsonl
DEMO_ARGS := --set training.epochs=1
endif
ARGS ?=

.PHONY: setup train train-resume train-eval test lint bench samples base clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so nothing below can pull a CUDA build onto a CPU-only machine
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

train: setup
	$(CLI) train $(DATA_PATH) $(if $(EVAL_PATH),--eval-data $(EVAL_PATH)) $(DEMO_ARGS) $(ARGS)

train-resume: setup
	@test -n "$(CHECKPOINT)" || { echo "usage: make train-resume CHECKPOINT=<checkpoint folder or run id>"; exit 2; }
	$(CLI) train-resume $(CHECKPOINT)

train-eval: setup
	@test -n "$(MODEL)" || { echo "usage: make train-eval MODEL=<model or checkpoint folder> [DATA=file]"; exit 2; }
	$(CLI) train-eval $(MODEL) $(or $(DATA),data/samples/chat_eval.jsonl) $(ARGS)

# CI (CI=true) skips the cases marked slow to stay well inside its time; locally all run.
PYTEST_MARK := $(if $(filter true 1,$(CI)),-m "not slow",)

test: setup
	$(PY) -m pytest -q $(PYTEST_MARK) $(PYTEST_ARGS)

bench: setup
	# trl is a reference for the throughput bench only, not a dependency of the project
	$(PY) -m pip install --quiet -c constraints.txt trl
	@mkdir -p bench/results
	$(PY) bench/train_throughput.py
	$(PY) bench/loss_parity.py
	$(PY) bench/data_pipeline.py $(DATA_BENCH_ARGS)
	$(PY) bench/train_memory.py $(TRAIN_MEMORY_ARGS)
	$(PY) bench/ui_latency.py
	$(PY) bench/qat_vs_ptq.py
	$(PY) bench/side_by_side.py
	$(PY) bench/first_run.py
	$(PY) bench/dpo_parity.py
	OMP_NUM_THREADS=1 $(PY) bench/distributed.py

lint: setup
	$(VENV)/bin/ruff check engine llamahome_tui tests data bench

samples:
	$(PYTHON) data/make_samples.py

# Rebuild the pre-built base shipped in data/base/ (after config/models/*.toml or its corpus changed).
base: setup
	$(PY) -m engine.train.pretrain tiny-llama

clean:
	rm -rf $(VENV) workspace .pytest_cache
