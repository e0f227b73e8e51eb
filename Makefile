# One command per job; each target installs what it needs first, so any of them works
# as the very first command in a fresh clone.
PY      := .venv/bin/python
TORCH   := torch==2.13.0
STAMP   := .venv/.installed
# OpenMP threads that busy-wait make torch 10x slower on a shared 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: backbone install lint test test-fast test-slow bench-nb201 bench-table1 bench-table1-ablation bench-table1-paper bench-darts bench-proxies bench-ci bench-baseline bench-train bench-memory gpu-check data-full clean help

install: $(STAMP) ## create .venv: torch==2.13.0 (CPU build), then pip install -e '.[dev]'

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The layering contract (pyproject [tool.importlinter]) and ruff; part of `make test`.
lint: $(STAMP) ## ruff and the import-layering contract (part of make test)
	.venv/bin/ruff check harness tests scripts
	.venv/bin/lint-imports

# tests/benchmarks are the regression guards: `make bench-ci` runs them. The tests marked `slow` (the
# few that cannot be made cheap) run in CI by `make test-slow`. TEST_WORKERS pytest-xdist workers
# (one torch thread each, tests/conftest.py); TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST_TESTS := $(PY) -m pytest -q tests --ignore=tests/benchmarks -n $(TEST_WORKERS)
test: $(STAMP) lint ## lint, then every test but the slow ones and the regression guards (2 workers, <= 6 min)
	$(PYTEST_TESTS) -m "not slow"

test-fast: $(STAMP) ## the tests of make test without the lint
	$(PYTEST_TESTS) -m "not slow"

test-slow: $(STAMP) ## the tests marked slow (multi-process, kill and real-training end-to-end runs; CI runs them)
	$(PYTEST_TESTS) -m slow

# The main job: rank correlations (Tables 1/3), REA/random/TPE with the tabular Original proxy
# (3 datasets x 10 seeds x 100 queries), the small real-training REA comparison Original vs
# Tr-Net-5-5 on the embedded images, the DARTS+PT smoke (Original supernet vs Tr-Supernet-5-5),
# then results/leaderboard.md and plots. BENCH_ARGS=--full scales every definition to its full
# size (GPU machines).
BENCH_ARGS ?=
bench-nb201: $(STAMP) ## main job: Tables 1/3, REA/random/TPE, REA with training, DARTS+PT, proxies
	$(PY) -m harness.cli bench benchmarks/nb201-rank.toml benchmarks/nb201-rea.toml \
		benchmarks/nb201-rea-trnet.toml benchmarks/nb201-dartspt.toml benchmarks/nb201-proxies.toml $(BENCH_ARGS)

# The DARTS space (paper Table 5): supernet vs Tr-Supernet-2-3 memory, a REA smoke with real
# training, and the DARTS+PT smoke (Original supernet vs Tr-Supernet-2-3).
bench-darts: $(STAMP) ## DARTS space: supernet memory, REA smoke, DARTS+PT (paper Table 5)
	$(PY) -m harness.cli bench benchmarks/darts-memory.toml benchmarks/darts-rea-smoke.toml \
		benchmarks/darts-dartspt.toml $(BENCH_ARGS)

# The shipped backbone (paper Table 6: ResNet-32, 200 epochs, cosine) on the 25k train half of
# cifar10-valid from all 60k shipped CIFAR-10 images, validated on the other half. Hours on 2 cores:
# its state is kept after every epoch (<stem>.resume.pt) and a rerun, even after kill -9, continues
# from the last finished epoch. Nothing to do once the checkpoint exists (delete it to train again).
SHIPPED_BACKBONE := harness/backbones/pretrained/resnet32-cifar10-valid.pt
backbone: $(STAMP) ## pre-train the shipped ResNet-32 (200 epochs, hours; resumable) -> harness/backbones/pretrained/
	@if [ -f $(SHIPPED_BACKBONE) ]; then echo "$(SHIPPED_BACKBONE) exists (delete it to train again)"; else \
	$(PY) -m harness.cli pretrain resnet32 --dataset cifar10-valid --npz cifar10-jpeg --epochs 200 \
		--out $(SHIPPED_BACKBONE); fi

# Paper Table 1 on this CPU (<= 60 min on 2 cores): Original vs Tr-Net-5-5 (the shipped backbone, the
# annealed schedule) on 40 random architectures of the full 60k CIFAR-10, intervals and the paired
# difference -> results/table1/. Resumable: a rerun trains only the architectures not yet trained.
# BENCH_ARGS=--full: the paper's 1,000 (GPU).
bench-table1: $(STAMP) ## CPU Table 1: Original vs Tr-Net-5-5 with 95% intervals (<= 60 min, resumable)
	$(PY) -m harness.cli bench benchmarks/nb201-table1-cpu.toml $(BENCH_ARGS)

# The Table 1 ablation: {5-epoch, shipped backbone} x {all_epochs, after_warmup} on the same 40
# architectures (Original trained once, shared), the second seed (noise ceiling) and what each
# proxy favours -> results/table1/ablation.md. About 2 hours on 2 cores; resumable like bench-table1.
TABLE1_CELLS := benchmarks/ablations/nb201-table1-cpu-bb5-all_epochs.toml \
	benchmarks/ablations/nb201-table1-cpu-bb5-after_warmup.toml benchmarks/ablations/nb201-table1-cpu-all_epochs.toml \
	benchmarks/nb201-table1-cpu.toml benchmarks/ablations/nb201-table1-cpu-seed1.toml
bench-table1-ablation: $(STAMP) ## Table 1 ablation: backbone x schedule, second seed, what proxies favour (~2 h, resumable)
	$(PY) -m harness.cli bench $(TABLE1_CELLS)

# The paper's own Table 1 protocol on this CPU: Tr-Net-5-5 trained at full size (25k images, 18
# epochs) vs NB201's 12-epoch Original, architectures in a fixed order, one finished candidate = one
# row at once; runs until stopped (UNTIL=HH:MM or HOURS=H stop it cleanly between candidates; kill -9
# loses only the candidate in training) and a rerun continues, so N grows over days. The cost subset
# (Original at full size on 5 architectures, bounded, then replayed) runs first.
# -> results/table1/nb201-table1-paper.md
UNTIL ?=
HOURS ?=
STOP  := $(if $(UNTIL),--until $(UNTIL)) $(if $(HOURS),--hours $(HOURS))
bench-table1-paper: $(STAMP) ## the paper's Table 1 protocol at full size, N growing (UNTIL=HH:MM / HOURS=H; resumable)
	$(PY) -m harness.cli bench benchmarks/nb201-table1-paper-cost.toml benchmarks/nb201-table1-paper.toml $(STOP)

# Zero-cost proxies vs table and trained proxies on 50 random NB201 architectures (--full: 1,000).
bench-proxies: $(STAMP) ## zero-cost proxies vs table and trained proxies, whole network and Tr-Net suffix
	$(PY) -m harness.cli bench benchmarks/nb201-proxies.toml benchmarks/nb201-proxies-trnet.toml $(BENCH_ARGS)

BENCH_JSON := .benchmarks/ci.json
BASELINE   := results/baselines/ci-cpu.json

# Memory/speed regression guards, < 3 min on 2 cores: fails when a memory figure grows
# > 1% or a Tr/Original step-time ratio gets > 15% worse than $(BASELINE). The guard runs (and
# prints what moved) even when a benchmark test failed.
bench-ci: $(STAMP) ## memory/speed regression guards against results/baselines/ci-cpu.json
	@mkdir -p .benchmarks
	$(PY) -m pytest -q tests/benchmarks --benchmark-enable --benchmark-json=$(BENCH_JSON) -p no:cacheprovider; \
	tests=$$?; $(PY) -m harness.ci_guard check --current $(BENCH_JSON) --baseline $(BASELINE); \
	guard=$$?; [ $$tests -eq 0 ] && [ $$guard -eq 0 ]

# Rewrite the committed baseline on purpose (see docs/regression-guards.md for when).
bench-baseline: $(STAMP) ## rewrite results/baselines/ci-cpu.json (only after an intended change)
	@mkdir -p .benchmarks
	$(PY) -m pytest -q tests/benchmarks --benchmark-enable --benchmark-json=$(BENCH_JSON) -p no:cacheprovider
	$(PY) -m harness.ci_guard baseline --current $(BENCH_JSON) --out $(BASELINE)

# Images/s of one batch-256 training step, Original vs Tr-Net-5-5, per precision/format mode ->
# the throughput table and results/bench-train.md. Run it on a quiet machine (uptime load < 1).
bench-train: $(STAMP) ## training images/s per precision/format mode -> results/bench-train.md
	$(PY) -m harness.cli bench benchmarks/nb201-throughput.toml

# Saved-for-backward bytes, Original vs Tr-Net-5-5, batch 256; writes results/memory-nb201.*
bench-memory: $(STAMP) ## saved-for-backward bytes, Original vs Tr-Net-5-5 -> results/memory-nb201.*
	$(PY) -m harness.cli bench benchmarks/nb201-memory.toml

# The prepared check for a lent GPU machine (15 minutes of device time): <= 8 minutes, everything under
# results/gpu/ (report.md, gpu-check.json, results tables): CUDA tests and benchmark variants, Table 2
# peaks and step-time ratio, K candidates at once, short trained runs, DARTS+PT; one line and exit 0
# without CUDA. GPU_PY=python3 uses a python that already has CUDA torch (no install).
GPU_PY ?=
gpu-check: $(if $(GPU_PY),,$(STAMP)) ## the prepared check for a GPU machine (<= 8 min) -> results/gpu/
	PYTHONPATH=. $(or $(GPU_PY),$(PY)) scripts/gpu_check.py --out results/gpu

# Full CIFAR-10 (60k, JPEG-lossy) as a generic .npz for experiments on this machine; needs ../shared.
data-full: $(STAMP) ## full CIFAR-10 (JPEG-lossy) -> data/cifar10_full.npz (needs ../shared)
	$(PY) scripts/build_cifar10_npz.py --out data/cifar10_full.npz

clean: ## remove .venv, build outputs and caches
	rm -rf .venv build *.egg-info .pytest_cache .benchmarks

# `make help`: every target whose rule line ends in `## <one-line description>` (the convention:
# `name: prerequisites ## what it does`; tests/test_docs.py checks every target has one).
help: ## list every target with its one-line description
	@awk -F':.*## ' '/^[a-zA-Z0-9_.-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
