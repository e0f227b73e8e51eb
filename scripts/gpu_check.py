"""The prepared check for a lent GPU machine (`make gpu-check`): one run of at most ``--budget-s``
seconds (default 480 = 8 minutes of a 15-minute lease) that writes everything under ``--out``
(results/gpu/): ``report.md``, ``gpu-check.json`` (card, torch / CUDA / cuDNN versions, commit,
every step's status and seconds) and the harness's own results tables (Parquet rows, each with
the card name, commit and versions), all produced by the harness's benchmark definitions and kinds.

Steps, in priority order; each gets an allowance sized from the time left and is skipped, with a
line saying so, when less than its minimum is left; one that overruns its allowance is stopped
(SIGALRM) and the next one runs:

a. cuda-tests: the CUDA tests and the CUDA variants of the step benchmarks (``pytest -k cuda``);
   their figures become a CUDA guard baseline, ``ci-cuda.json``;
b. memory: ``max_memory_allocated`` of one batch-256 step, Original vs Tr-Net-5-5, the all-conv
   architecture and 20 random ones (paper Table 2: 1.12 vs 0.53 GB), and the step-time ratio;
c. concurrency: training images/s with K = 1, 2, 4, 8 candidates at once, and the prefix feature
   cache's speed-up of Tr-Net evaluation;
d. trained-vs-table (NB201's recorded 12-epoch accuracies vs our training) and a short Original vs
   Tr-Net-5-5 rank run, sized to the time left, on the full CIFAR-10 when ``data/cifar10_full.npz``
   exists (``make data-full``), else on the 5,000 embedded images (the report says which);
e. dartspt: one NB201 CIFAR-10 DARTS+PT run per supernet, sized to what is left.

Without CUDA it prints one line and exits 0. ``--dry-run`` runs the whole flow on the CPU with tiny
sizes (into ``--out``, e.g. a temp dir), for the test.

    python scripts/gpu_check.py --out results/gpu
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from harness import HarnessError
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import run_benchmark
from harness.ci_guard import write_baseline
from harness.data.datasets import load_dataset
from harness.definition.schema import Definition
from harness.report.refresh import refresh
from harness.runinfo import device_name, git_commit
from harness.store.files import write_text
from harness.store.markdown import markdown_table
from harness.store.results import ResultsStore
from harness.train.recipe import default_mode

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
FULL_DATA = ROOT / "data" / "cifar10_full.npz"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MARGIN_S = 20  # the report, the leaderboard and the process exit, after the last step
PAPER_TABLE2_GB = (1.12, 0.53)  # NB201 Original vs Tr-Net-5-5, batch 256 (paper Table 2)


class StepTimeout(Exception):
    """A step ran past its allowance."""


@dataclass
class Check:
    out: Path
    dry: bool
    device: torch.device
    full_data: bool
    # Training images/s of one candidate at a time, which sizes the trained steps: measured by step c;
    # until then a guess well below what an NB201 step at batch 256 reaches on a recent card.
    images_per_s: float = 2000.0
    backbone: "dict | None" = None  # the rank step's [backbone]: DARTS+PT reuses its checkpoint
    sections: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict:
        """The [train] data keys of the trained steps."""
        if self.dry:
            return {"data": "embedded", "limit": 64, "batch_size": 32}
        return {"data": str(FULL_DATA) if self.full_data else "embedded", "limit": 0, "batch_size": 256}

    def n_train(self) -> int:
        d = self.data
        kw = {"npz": d["data"]} if d["data"].endswith(".npz") else {}
        return len(load_dataset("cifar10-valid", limit=d["limit"] or None, **kw).train)

    def seconds_for(self, images: float) -> float:
        """Estimated seconds to train on ``images`` images (one candidate at a time; the loop's
        augmentation, evaluation and bookkeeping counted as halving step (c)'s images/s)."""
        return images / max(self.images_per_s / 2, 1.0)


@dataclass(frozen=True)
class Step:
    key: str
    name: str
    min_s: float   # skipped when less than this is left
    share: float   # of the time left, the most it may use
    run: Callable[[Check, float], str]


def allowance(step: Step, left: float) -> "float | None":
    """Seconds ``step`` may use with ``left`` seconds to go; None = it does not fit (skip it)."""
    if left < step.min_s:
        return None
    return min(left, max(step.min_s, step.share * left))


def _definition(path: Path, **changes) -> Definition:
    """The shipped definition at ``path`` with ``changes`` to its top-level keys (validated again)."""
    raw = {**load_definition(path).raw, **changes}
    return build_definition(raw, str(path))


# -- the steps ----------------------------------------------------------------------------------

def cuda_tests(c: Check, allow: float) -> str:
    bench_json, log = c.out / "bench-cuda.json", c.out / "pytest-cuda.log"
    unit = ["tests/test_measure_memory.py"] if c.dry else ["tests", "--ignore=tests/benchmarks"]
    bench = ["tests/benchmarks/test_bench_steps.py"] if c.dry else ["tests/benchmarks"]
    runs = [unit + ["-k", "cuda"], bench + ["-k", "cuda", "--benchmark-enable", f"--benchmark-json={bench_json}"]]
    deadline, notes, texts = time.monotonic() + allow, [], []
    for args in runs:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1))
        texts.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
        notes.append(f"{args[0]}: {last} (exit {r.returncode})")
        if r.returncode not in (0, 5):  # 5: nothing collected
            write_text("\n".join(texts), log)
            raise HarnessError("; ".join(notes))
    write_text("\n".join(texts), log)
    try:
        doc = write_baseline(bench_json, c.out / "ci-cuda.json")
        notes.append(f"{len(doc['benchmarks'])} CUDA benchmarks -> ci-cuda.json")
    except HarnessError as e:
        notes.append(f"no CUDA benchmark figures ({e})")
    c.sections.append("## a. CUDA tests\n\n" + "\n".join(f"- {n}" for n in notes) + f"\n\nLog: {log.name}.")
    return "; ".join(notes)


def memory(c: Check, allow: float) -> str:
    size = {"batch_size": 8, "archs": 1} if c.dry else {"batch_size": 256, "archs": 20}
    mem = run_benchmark(_definition(BENCH / "nb201-memory.toml", **size), c.out, progress=False)
    modes = list(dict.fromkeys(["fp32", default_mode(c.device)]))
    tp = run_benchmark(_definition(BENCH / "nb201-throughput.toml", **size, steps=1 if c.dry else 5, modes=modes,
                                   cache_archs=0, out="throughput.md"), c.out, progress=False)
    rows = []
    for sel, g in mem.assign(sel=mem["selection"].where(mem["selection"] == "random", "all-conv")).groupby("sel"):
        key = "cuda_peak_bytes" if "original/cuda_peak_bytes" in g else "saved_bytes"
        o, t = g[f"original/{key}"].mean() / 1e9, g[f"tr-net-5-5/{key}"].mean() / 1e9
        rows.append([sel, len(g), key, f"{o:.3f}", f"{t:.3f}", f"{o / t:.2f}x"])
    ips = tp.groupby(["mode", "method"])["images_per_s"].mean()
    ratios = [[m, f"{ips[m, 'tr-net-5-5'] / ips[m, 'original']:.2f}x"] for m in modes]
    c.sections.append("\n\n".join([
        f"## b. Memory and step time, Original vs Tr-Net-5-5, batch {size['batch_size']}",
        f"Paper Table 2: {PAPER_TABLE2_GB[0]} GB vs {PAPER_TABLE2_GB[1]} GB "
        f"({PAPER_TABLE2_GB[0] / PAPER_TABLE2_GB[1]:.2f}x).",
        markdown_table(["architectures", "n", "figure", "Original GB", "Tr-Net-5-5 GB", "ratio"], rows),
        "Step-time ratio (Tr-Net-5-5 images/s / Original's, mean over the architectures):",
        markdown_table(["mode", "speed-up"], ratios), "Details: throughput.md."]))
    return f"{len(mem)} architectures; " + ", ".join(f"{r[0]} {r[2]} ratio {r[5]}" for r in rows)


def concurrency(c: Check, allow: float) -> str:
    mode = default_mode(c.device)
    size = ({"batch_size": 4, "steps": 1, "concurrency": [1, 2], "archs": 1, "cache_archs": 0} if c.dry else
            {"batch_size": 256, "steps": 10, "concurrency": [1, 2, 4, 8], "archs": 7, "cache_archs": 3})
    defn = _definition(BENCH / "nb201-throughput.toml", arch_list=[ALL_CONV], methods=["original"], modes=[mode],
                       cache_modes=list(dict.fromkeys(["fp32", mode])), out="concurrency.md", **size)
    run_benchmark(defn, c.out, progress=False)
    from_store = _latest(c.out, "speed", defn.name)
    conc = from_store[from_store["measure"] == "concurrent"]
    c.images_per_s = float(conc["images_per_s"].iloc[0])  # K = 1
    c.sections.append("## c. Candidates at once, prefix feature cache\n\n" + (c.out / "concurrency.md").read_text())
    best = conc.loc[conc["images_per_s"].idxmax()]
    return (f"K=1 {c.images_per_s:.0f} img/s, best K={int(best['concurrent'])} {best['images_per_s']:.0f} img/s "
            f"({mode})")


def _latest(out: Path, table: str, benchmark: str):
    """The rows of ``benchmark``'s last run in ``table`` (None when it has none)."""
    rows = ResultsStore(out).read(table)
    rows = rows[rows["benchmark"] == benchmark] if rows is not None else None
    if rows is None or rows.empty:
        return None
    return rows[rows["batch_id"] == rows["batch_id"].iloc[-1]]


def trained_vs_table(c: Check, allow: float) -> str:
    defn = load_definition(BENCH / "nb201-trained-vs-table.toml")
    archs, epochs = list(defn["arch_list"]), 1 if c.dry else 12
    if not c.dry:  # as many of the 8 as fit at 12 epochs, at least 3 (else fewer epochs)
        per_arch = c.seconds_for(epochs * c.n_train())
        n = max(3, min(len(archs), int(0.8 * allow / per_arch)))
        epochs = min(12, max(1, int(0.8 * allow / (n * per_arch / epochs)))) if n * per_arch > 0.8 * allow else 12
        archs = archs[:n]
    else:
        archs = archs[:3]
    train = {**c.data, "epochs": {"original": epochs}}
    run_benchmark(_definition(BENCH / "nb201-trained-vs-table.toml", arch_list=archs, train=train), c.out,
                  progress=False)
    rank = _latest(c.out, "rank", defn.name)
    lines = [f"- vs {r.truth}: Kendall {r.krocc:.3f}, Spearman {r.srocc:.3f}, mean offset {r.mean_offset:+.2f} points"
             for r in rank.itertuples()]
    c.sections.append(f"## d. Our Original training vs the NB201 table ({len(archs)} architectures, {epochs} epochs, "
                      f"{c.data['data']})\n\n" + "\n".join(lines))
    return f"{len(archs)} architectures x {epochs} epochs; " + "; ".join(s[2:] for s in lines)


def _rank_sizes(c: Check, allow: float) -> dict:
    if c.dry:
        return {"archs": 2, "epochs": {"original": 1, "tr-net-5-5": 1}, "warmup": {"tr-net-5-5": 0},
                "backbone": {"name": "resnet32", "epochs": 1, "batch_size": 32}}
    n_train = c.n_train()
    bb_epochs = max(5, min(200, int(0.25 * allow / c.seconds_for(n_train))))
    per_arch = c.seconds_for(n_train * (12 + 0.6 * 18))  # Tr-Net-5-5 steps ~1.7x faster (bench-train.md)
    archs = max(4, min(20, int((0.7 * allow - bb_epochs * c.seconds_for(n_train)) / per_arch)))
    return {"archs": archs, "epochs": {"original": 12, "tr-net-5-5": 18}, "warmup": {"tr-net-5-5": 13},
            "backbone": {"name": "resnet32", "epochs": bb_epochs, "batch_size": 256}}


def rank(c: Check, allow: float) -> str:
    """A slice of the paper's Table 1: ``nb201-table1-cpu.toml``'s [full] setting (the recipes, the
    backbone on the train half, intervals, the paired difference) on as many architectures as fit."""
    s = _rank_sizes(c, allow)
    c.backbone = s["backbone"]
    full = load_definition(BENCH / "nb201-table1-cpu.toml", full=True).raw
    train = {**full["train"], **c.data, "archs": s["archs"], "epochs": s["epochs"], "warmup": s["warmup"]}
    backbone = {**full["backbone"], **s["backbone"]}
    if c.dry:  # tiny: the candidates' few images for the backbone too
        train.pop("limits")
        backbone.pop("limit")
    name = "gpu-table1-slice"
    df = run_benchmark(build_definition({**full, "name": name, "train": train, "backbone": backbone}, "gpu-check"),
                       c.out, progress=False)
    trained = df[df["selection"] == f"all-{s['archs']}"]
    rows = [[r.proxy, r.n, f"{r.krocc:.3f} [{r.krocc_lo:.3f}, {r.krocc_hi:.3f}]",
             f"{r.srocc:.3f} [{r.srocc_lo:.3f}, {r.srocc_hi:.3f}]", f"{r.wall_s:.1f}" if r.wall_s == r.wall_s else "–"]
            for r in trained.itertuples()]
    pairs = _latest(c.out, "rank_pairs", name)
    verdicts = [f"{r.proxy} − {r.baseline}: {r.krocc_diff:+.3f} [{r.krocc_diff_lo:+.3f}, {r.krocc_diff_hi:+.3f}], "
                f"{r.verdict}" for r in pairs.itertuples()] if pairs is not None else []
    c.sections.append("\n\n".join([
        f"## d. Table 1 slice: Original vs Tr-Net-5-5 ({s['archs']} random architectures, {c.data['data']}, backbone "
        f"resnet32 {backbone['epochs']} epochs on the train half)",
        markdown_table(["proxy", "n", "Kendall [95% CI]", "Spearman [95% CI]", "mean train s"], rows),
        "\n".join(f"- {v}" for v in verdicts)]))
    return "; ".join(f"{r[0]} Kendall {r[2]}" for r in rows)


def dartspt(c: Check, allow: float) -> str:
    if c.dry:
        search = {"epochs": 1, "warmup": {"tr-supernet-5-5": 0}, "tune_epochs": 0, "batch_size": 8,
                  "hessian_every": 0, "select_limit": 4}
        train, backbone = {"data": "embedded", "limit": 16}, {"name": "resnet32", "epochs": 1, "batch_size": 16}
    else:  # the paper's proportions (13 of 50 epochs warmup, tuning after each of the 6 projections), shrunk
        half = c.n_train() / 2
        epoch_s = c.seconds_for(20 * half)  # a search step: 5 ops per edge, weight and alpha passes, batch 64
        total = max(8, int(0.8 * allow / (2 * epoch_s)))
        epochs = max(2, 2 * total // 3)
        search = {"epochs": epochs, "warmup": {"tr-supernet-5-5": max(1, epochs * 13 // 50)},
                  "tune_epochs": max(6, total - epochs), "project_every": max(1, (total - epochs) // 6),
                  "batch_size": 64, "cutout": 16, "hessian_every": max(1, epochs // 4), "hessian_batch": 64,
                  "power_iters": 10}
        train = {"data": c.data["data"], "limit": 0}
        backbone = c.backbone or {"name": "resnet32", "epochs": 5, "batch_size": 256}
    df = run_benchmark(_definition(BENCH / "nb201-dartspt.toml", search=search, train=train, backbone=backbone),
                       c.out, progress=False)
    rows = [[r.supernet, r.arch_str, f"{r.test_acc:.2f}", f"{r.search_s:.1f}"] for r in df.itertuples()]
    c.sections.append("\n\n".join([f"## e. DARTS+PT on NB201 CIFAR-10 (search {json.dumps(search)})",
                                   markdown_table(["supernet", "found", "test acc @200 (table)", "search s"], rows)]))
    return "; ".join(f"{r[0]} {r[2]}%" for r in rows)


STEPS = (Step("a", "cuda-tests", 30, 0.3, cuda_tests), Step("b", "memory", 20, 0.3, memory),
         Step("c", "concurrency", 15, 0.25, concurrency), Step("d", "trained-vs-table", 30, 0.35, trained_vs_table),
         Step("d", "rank", 40, 0.7, rank), Step("e", "dartspt", 30, 1.0, dartspt))


# -- running them -------------------------------------------------------------------------------

def _stop(signum, frame):
    raise StepTimeout()


def run_steps(check: Check, steps: tuple, deadline: float, clock: Callable[[], float] = time.monotonic) -> list[dict]:
    """Run ``steps`` in order until ``deadline`` (``clock`` seconds); one record per step."""
    records = []
    signal.signal(signal.SIGALRM, _stop)
    for step in steps:
        left = deadline - clock()
        allow = allowance(step, left)
        rec = {"step": step.key, "name": step.name, "allowance_s": allow, "seconds": 0.0}
        if allow is None:
            rec.update(status="skipped", note=f"needs at least {step.min_s:.0f} s, {max(left, 0):.0f} s left")
        else:
            t0 = clock()
            signal.setitimer(signal.ITIMER_REAL, allow)
            try:
                rec.update(status="ok", note=step.run(check, allow))
            except StepTimeout:
                rec.update(status="stopped", note=f"ran past its {allow:.0f} s; rows it finished are kept")
            except Exception as e:  # one failed step must not cost the others their time
                (check.out / f"error-{step.name}.log").write_text(traceback.format_exc())
                rec.update(status="failed", note=" ".join(f"{type(e).__name__}: {e}".split())[:300])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            rec["seconds"] = round(clock() - t0, 1)
        print(f"gpu-check: {step.key}. {step.name}: {rec['status']}"
              + (f" in {rec['seconds']:.0f} s" if rec["status"] != "skipped" else "") + f": {rec['note']}", flush=True)
        records.append(rec)
    return records


def environment(check: Check, budget_s: float) -> dict:
    cuda = check.device.type == "cuda"
    return {"card": torch.cuda.get_device_name(check.device) if cuda else device_name(str(check.device)),
            "torch": str(torch.__version__), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "commit": git_commit(),
            "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "budget_s": budget_s,
            "dry_run": check.dry, "default_mode": default_mode(check.device),
            "data": (f"full CIFAR-10 ({FULL_DATA.relative_to(ROOT)})" if check.full_data
                     else "the 5,000 embedded CIFAR-10 images (no data/cifar10_full.npz here)")}


def report(check: Check, env: dict, records: list[dict], wall_s: float) -> str:
    rows = [[r["step"], r["name"], r["status"], f"{r['seconds']:.0f}",
             "-" if r["allowance_s"] is None else f"{r['allowance_s']:.0f}", r["note"]] for r in records]
    head = (f"# GPU check{' (dry run on the CPU)' if check.dry else ''}\n\n"
            f"Card {env['card']}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}; commit "
            f"{env['commit']}; started {env['started_utc']}; {wall_s:.0f} s of a {env['budget_s']:.0f} s budget. "
            f"Default training mode: {env['default_mode']}. Data of the trained steps: {env['data']}.")
    return "\n\n".join([head, markdown_table(["", "step", "status", "s", "allowance s", "note"], rows),
                         *check.sections]) + "\n"


def main(argv: "list[str] | None" = None, clock: Callable[[], float] = time.monotonic) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/gpu", help="where everything goes (default results/gpu)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="the whole run's limit in seconds (default 480)")
    ap.add_argument("--dry-run", action="store_true", help="the whole flow on the CPU with tiny sizes")
    args = ap.parse_args(argv)
    start = clock()
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}); nothing to do")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out=out, dry=args.dry_run, device=torch.device("cpu" if args.dry_run else "cuda"),
                  full_data=FULL_DATA.is_file() and not args.dry_run)
    env = environment(check, args.budget_s)
    records = run_steps(check, STEPS, start + args.budget_s - MARGIN_S, clock)
    if start + args.budget_s - clock() > MARGIN_S / 2:
        try:
            refresh(out)  # leaderboard.md and plots of everything above
        except Exception as e:  # the report below matters more
            print(f"gpu-check: leaderboard not refreshed: {type(e).__name__}: {e}")
    wall = clock() - start
    write_text(json.dumps({"environment": env, "steps": records, "wall_s": wall}, indent=2) + "\n",
               out / "gpu-check.json")
    write_text(report(check, env, records, wall), out / "report.md")
    print(f"gpu-check: {sum(r['status'] == 'ok' for r in records)}/{len(records)} steps ok in {wall:.0f} s; "
          f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
