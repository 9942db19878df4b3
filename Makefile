# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.zoo-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: run test test-fast bench bench-scaling models setup data clean

run: setup data
	$(BIN)/zoo run --model mlp-512 --dataset fashion-mnist

# Two pytest-xdist workers (this is a 2-core machine); tests marked with one xdist_group share a worker (and
# the torchrun job their fixture runs). pyc files are written as modules are first imported (set-up skips
# compiling all of torch), even where PYTHONDONTWRITEBYTECODE is set.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 2 --dist loadgroup

# The whole suite, with its wall time (set-up included); CI runs this.
test:
	@start=$$(date +%s); $(MAKE) --no-print-directory setup data && $(PYTEST); status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall, set-up included"; exit $$status

# The edit-test cycle: everything but the tests marked slow (torchrun jobs, real data, package builds, SIGKILLs).
test-fast: setup data
	$(PYTEST) -m "not slow"

# zoo against the Quickstart, side by side; writes docs/performance.md and the results in registry.toml;
# on a machine with CUDA also the GPU section, docs/gpu.md (bench/gpu.py).
bench: setup data
	$(BIN)/python bench/bench.py --record
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python bench/gpu.py $(FASHION_MNIST) bench-gpu --write; else echo "No CUDA device: bench/gpu.py skipped"; fi

# One process against `zoo run --nproc 2` on this machine; writes the table into docs/scaling.md.
bench-scaling: setup data
	$(BIN)/python bench/scaling.py --write

# The trained models zoo ships (zoo/shipped/): each trained on the real data with its recipe, then stored
# with its card and SHA-256 (bench/ship_models.py; the tuned recipe on CPU, about 1-2 minutes).
models: setup data
	$(BIN)/python bench/ship_models.py

setup: $(STAMP)

COMPILE := PYTHONDONTWRITEBYTECODE= $(BIN)/python -c

# torch and torchvision come from the project's dependencies through plain pip (torch>=2.6).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# -qq: errors only; setuptools notes every editable install of a package-dir layout (plugins/ is zoo_plugins) as a
	@# 'BuildBackendWarning', which reads like a fault on a fresh machine and is none
	$(BIN)/python -m pip install -qq --no-compile -e '.[test]'
	@# compile what a run imports, once (pip skipped all of torch), so no zoo command pays for it later,
	@# even where PYTHONDONTWRITEBYTECODE is set; two processes at a time on parts that share nothing
	@# uncompiled (torch first, then what imports it)
	$(COMPILE) "import torch" & a=$$!; \
	$(COMPILE) "import sympy, matplotlib.pyplot, rich.progress, pydantic, click, pluggy, numpy, PIL.Image, safetensors" & b=$$!; \
	wait $$a && wait $$b
	$(COMPILE) "import torch._dynamo" & a=$$!; \
	$(COMPILE) "import torchvision, safetensors.torch, zoo.cli, zoo.runner, zoo_plugins.datasets" & b=$$!; \
	wait $$a && wait $$b
	touch $(STAMP)

# The real FashionMNIST from Debian's package where apt and root are there; elsewhere zoo downloads it.
data:
	@if [ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
		echo "FashionMNIST: using $(FASHION_MNIST)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
		|| echo "apt-get could not install dataset-fashion-mnist; zoo will try to download FashionMNIST"; \
	else \
		echo "No apt-get as root here: zoo will download FashionMNIST into ~/.cache/zoo on first use"; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
