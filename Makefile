# One command per job; each target installs what it needs first, so any of them works
# as the very first command in a fresh clone.
PY      := .venv/bin/python
TORCH   := torch==2.13.0
STAMP   := .venv/.installed
# OpenMP threads that busy-wait make torch 10x slower on a shared 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install test bench-nb201 bench-ci bench-baseline bench-train bench-memory data-full clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The main job: NB201 rank correlations (Tables 1/3 "Original" + noise ceiling) for all datasets.
bench-nb201: $(STAMP)
	$(PY) -m harness.cli rank --dataset all --proxy nb201-12ep-val nb201-200ep-oneseed \
		--sample 1000 --draws 20 --top-k 1000

# Saved-for-backward bytes, Original vs Tr-Net-5-5, batch 256 (issue 3); writes results/memory-nb201.*
bench-memory: $(STAMP)
	$(PY) scripts/bench_memory.py

# Full CIFAR-10 (60k, JPEG-lossy) as a generic .npz for experiments on this machine; needs ../shared.
data-full: $(STAMP)
	$(PY) scripts/build_cifar10_npz.py --out data/cifar10_full.npz

clean:
	rm -rf .venv build *.egg-info .pytest_cache .benchmarks
