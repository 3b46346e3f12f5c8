# dfine_nb: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# glibc keeps big activation buffers instead of returning them to the OS on every call (reference/env.md §2).
# OpenMP's wait policy is left alone: `dfine train` sets PASSIVE for itself, inference runs faster with the default (12_pipeline).
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824

.PHONY: install demo test train export bench app nbs docs clean-env help

help:
	@echo "make demo   - create the environment if missing, then run the pipeline on the embedded sample dataset (CPU)"
	@echo "make test   - create the environment if missing, then run the whole test suite"
	@echo "make train|export|bench [ARGS='key=value ...']  - one pipeline step with the config in config.yaml"
	@echo "make app    - serve the web demo of the latest experiment on http://127.0.0.1:7860 (after make demo)"
	@echo "make nbs    - execute the chapters headless and store their outputs [NB='nbs/00a_boxes.ipynb ...' for some]"
	@echo "make docs   - render the chapters (as stored: make nbs first) to a static HTML site in _site/"

$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: install
	bash .ci/test.sh

demo: install
	$(BIN)/dfine demo $(ARGS)

train: install
	$(BIN)/dfine train $(ARGS)

export: install
	$(BIN)/dfine export $(ARGS)

bench: install
	$(BIN)/dfine bench $(ARGS)

app: install
	$(BIN)/dfine app $(ARGS)

# the chapters' stored outputs: 2 notebooks at a time in the .venv kernel, scrubbed so that a second run changes nothing
nbs: install
	$(PY) .ci/nbs.py $(NB)

# a static site from the stored notebooks and README.md, without quarto (the nbdev route: nbdev_docs where quarto exists)
docs: install
	$(PY) .ci/docs.py

clean-env:
	rm -rf $(VENV)
