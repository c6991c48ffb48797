# The two commands README.md opens with. Both install first, so they work on a fresh machine.
PYTHON ?= python3
# Local copies of the benchmark files, when this checkout sits next to them (CI, dev machines).
SHARED_DATA := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../shared/datasets)
export GNNLM_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

# torch==2.13.0 goes in the same pip call: without it, ogb pulls a multi-GB CUDA torch.
install:
	$(PYTHON) -m pip install --quiet torch==2.13.0 -e ".[test]"

test: install
	$(PYTHON) -m pytest -m "not slow" -q

test-slow: install
	$(PYTHON) -m pytest -m slow -q

demo: install
	$(PYTHON) -m gnnlm.cli datasets umls
	$(PYTHON) -m gnnlm.cli train configs/umls/complex.yaml --out runs/demo-umls-complex --overwrite --threads 1
	$(PYTHON) -m gnnlm.cli predict runs/demo-umls-complex --head virus --relation causes --k 5

lint:
	ruff check gnnlm tests benchmarks

.PHONY: install test test-slow demo lint
