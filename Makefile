# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv/ in the repo root and install what is missing first; the
# stamp file makes a second run skip the install when nothing changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test lint demo clean-demo isbi2015 isbi2015-cv isbi2015-fold isbi2015-kfold isbi2015-refresh

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== installing pinned dependencies into $(VENV) (first time: about 2 minutes)"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The suite, after the two static checks: the layering contract (.importlinter)
# and lint (ruff.toml). Either failing fails `make test`, and so CI. The tests run
# in TEST_WORKERS processes (pytest-xdist; auto = one per core): most of their time is
# TensorFlow start-up and tracing in subprocesses, which overlap well.
TEST_WORKERS ?= auto
test: install lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist=worksteal tests

lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

demo: install
	$(PY) -m lmk_tf.demo

clean-demo:
	rm -rf saved_models/demo build/demo

# The ISBI 2015 cephalometric model (../shared/data/isbi2015, never committed).
# isbi2015: all 150 images -> saved_models/isbi2015_ceph/<version>/
# isbi2015-cv: fold 0 of 5 held out -> the report in docs/isbi2015/
# isbi2015-kfold: all 5 folds, each held out once -> pooled figures (about 4 hours: ~50 min a fold)
DATA ?= ../shared/data/isbi2015
isbi2015: install
	$(PY) -m pipelines.isbi2015 --data=$(DATA) --fold=-1

isbi2015-cv: install
	$(PY) -m pipelines.isbi2015 --data=$(DATA) --fold=0 --report=docs/isbi2015

# Each fold is its own resumable job (`make isbi2015-fold K=3`): it trains (resuming
# after an interruption), exports saved_models/isbi2015_kfold/fold<k>/1/ and writes
# docs/isbi2015/kfold/fold<k>.csv, which is committed, so folds trained in different
# sessions pool. isbi2015-kfold runs the folds not done yet, then pools and calibrates.
FOLDS ?= 0 1 2 3 4
isbi2015-fold: install
	@test -n "$(K)" || { echo "give the fold: make isbi2015-fold K=0"; exit 2; }
	$(PY) -m pipelines.isbi2015 --data=$(DATA) --fold=$(K) --report=build/isbi2015/fold$(K)/report/isbi2015

isbi2015-kfold: install
	for k in $(FOLDS); do \
	  test -f docs/isbi2015/kfold/fold$$k.csv || $(MAKE) isbi2015-fold K=$$k || exit 1; \
	done
	$(PY) benchmarks/isbi2015_folds.py --predictions=docs/isbi2015/kfold
	$(PY) benchmarks/isbi2015_calibrate.py --predictions=docs/isbi2015/kfold \
	  --output=docs/isbi2015/calibration.json --plots=docs/isbi2015/kfold

# After a change of inference settings only (no training needed): every fold's newest model
# is exported again with them, from its own export, and its held-out CSV written again.
isbi2015-refresh: install
	for k in $(FOLDS); do \
	  $(PY) -m pipelines.isbi2015 --data=$(DATA) --fold=$$k --from_fold_model \
	    --report=build/isbi2015/fold$$k/report/isbi2015 || exit 1; \
	done
