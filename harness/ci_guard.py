"""CI regression guards on memory and speed: a pytest-benchmark run vs a committed baseline.

The benchmarks under ``tests/benchmarks/`` record in ``extra_info`` their deterministic memory
figures (bytes autograd saves for backward, parameter counts) and, for the Tr-Net/Original pairs,
``pair`` and ``role`` ("original" or "tr"). This module turns a ``--benchmark-json`` file into a
compact summary (the committed baseline format) and compares a run against a baseline:

* memory figures are exact: every change is reported, growth beyond 1% fails -- a splice whose
  frozen prefix keeps its activations (paper Sec. 3.2, Table 2) fails on ``saved_bytes``;
* times are noisy and machines differ, so the guard compares each pair's Tr/Original step-time
  ratio measured in the SAME run (with interleaved rounds, :func:`bench_step`); it fails when the
  ratio gets worse (larger) by more than 15%. Only a ratio from >= 3 interleaved rounds after >= 1
  warm-up round is checked; any other ratio is reported as not guarded (with its rounds);
* absolute medians only with ``--absolute`` (a baseline from the same machine); pytest-benchmark's
  own ``--benchmark-compare-fail=median:15%`` does the same against its saved runs.

    python -m harness.ci_guard check --current run.json --baseline results/baselines/ci-cpu.json
    python -m harness.ci_guard baseline --current run.json --out results/baselines/ci-cpu.json

Exit codes: 0 pass, 1 a guard failed (one line per moved figure), 2 bad input files.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness import HarnessError
from harness.measure.memory import step_figures
from harness.store.files import write_text
from harness.train.loop import training_step as loop_training_step
from harness.train.recipe import ORIGINAL

FORMAT = "harness-guard-baseline/1"
#: extra_info keys holding deterministic memory figures (bytes or element counts).
MEMORY_FIGURES = ("saved_bytes", "params", "trainable_params", "cuda_peak_bytes")
MEMORY_LIMIT = 0.01
RATIO_LIMIT = 0.15
TIME_LIMIT = 0.15
RATIO_FIGURE = "tr/original time ratio"
ROLES = ("original", "tr")
#: The fewest interleaved timed rounds, and warm-up rounds before them, a guarded time ratio is
#: measured on. A cold first round carries one-time costs (allocator growth, lazy kernel set-up)
#: that moved a one-round batch-128 supernet ratio by +52% between two runs of the same tree; a
#: median of 3 warmed rounds stays within a few percent.
MIN_RATIO_ROUNDS = 3
MIN_WARMUP_ROUNDS = 1


@dataclass(frozen=True)
class Move:
    """One figure that changed (or vanished) between baseline and current run."""

    subject: str  # benchmark name, or pair name for a ratio
    figure: str
    old: float
    new: "float | None"  # None: missing from the current run
    limit: "float | None"  # allowed relative growth; None: reported only
    failed: bool
    detail: "str | None" = None  # e.g. the rounds a time ratio was measured on

    def line(self) -> str:
        if self.figure == "benchmark":
            return f"{self.subject}: missing from the current run (it is in the baseline)"
        if self.new is None:
            return f"{self.subject}: {self.figure} missing from the current run (baseline {_fmt(self.old)})"
        change = (self.new - self.old) / self.old * 100 if self.old else float("inf")
        limit = f", limit {self.limit * 100:g}%" if self.limit is not None else ""
        detail = f"; {self.detail}" if self.detail else ""
        return (f"{self.subject}: {self.figure} moved from {_fmt(self.old)} to {_fmt(self.new)} "
                f"({change:+.2f}%{limit}{detail})")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _rounds_text(rounds: "int | None", warmup: "int | None") -> str:
    if rounds is None:
        return "rounds not recorded"
    text = f"{rounds} round{'' if rounds == 1 else 's'}, "
    return text + ("warm-up not recorded" if warmup is None else f"{warmup} warm-up")


def _enough_rounds(rounds: "int | None", warmup: "int | None") -> bool:
    return rounds is not None and warmup is not None and rounds >= MIN_RATIO_ROUNDS and warmup >= MIN_WARMUP_ROUNDS


# -- measuring (called from benchmark files, ours and users') ------------------------------------

def training_step(model, x, y, lr: float = 0.01):
    """One training step of ``model`` on ``(x, y)`` exactly as the training loop does it (the NB201
    recipe's optimizer, :func:`harness.train.loop.training_step`), at learning rate ``lr``."""
    return loop_training_step(model, x, y, ORIGINAL.with_(lr=lr))


def bench_step(benchmark, model, x, y, *, pair: "str | None" = None, role: "str | None" = None,
               original=None, rounds: int = 5, warmup_rounds: int = 1, unguarded: "str | None" = None) -> dict:
    """Benchmark one training step of ``model`` on ``(x, y)`` with pytest-benchmark's ``benchmark``
    fixture, fixed rounds (bounded run time); record in ``extra_info`` the memory figures of
    :func:`step_figures` and, for the guard's pairs, ``pair`` and ``role`` ("original" or "tr").

    For the Tr side of a pair pass ``original`` (the Original model): before every timed Tr step
    one Original step runs (untimed by pytest-benchmark, timed here), so both see the same load
    of a shared machine, and ``extra_info["tr_original_time_ratio"]`` is the median of the
    per-round Tr/Original ratios. Separate runs of the two benchmarks seconds apart disagree by
    up to 30% on a busy 2-core runner; interleaved rounds agree to a few percent. With
    ``original`` it refuses fewer than ``MIN_RATIO_ROUNDS`` rounds or ``MIN_WARMUP_ROUNDS``
    warm-up rounds: for a pair too slow for that, leave ``original`` out (the memory figures are
    still guarded, the time ratio is reported as not guarded) and time the pair at a smaller batch.
    ``unguarded`` (Tr side): why this machine's time ratio of the pair means nothing against the
    baseline (e.g. bf16 emulated on a CPU without native bf16); the guard then notes it and checks
    only the memory figures. Returns the figures."""
    if (pair is None) != (role is None) or (role is not None and role not in ROLES):
        raise HarnessError(f"bench_step: pair {pair!r} and role {role!r}: give both, role one of {ROLES}")
    if original is not None and role != "tr":
        raise HarnessError(f"bench_step: original= is for the 'tr' side of a pair (role is {role!r})")
    if original is not None and not _enough_rounds(rounds, warmup_rounds):
        raise HarnessError(
            f"bench_step: pair {pair!r}: a guarded time ratio needs >= {MIN_RATIO_ROUNDS} interleaved rounds after "
            f">= {MIN_WARMUP_ROUNDS} warm-up round (got {_rounds_text(rounds, warmup_rounds)}); for a pair too "
            "slow for that, leave out original= (its memory figures stay guarded) and time it at a smaller batch")
    step = training_step(model, x, y)
    figures = step_figures(model, x, y, step)
    benchmark.extra_info.update(figures, batch_size=len(x), device=str(x.device), torch_threads=torch.get_num_threads(),
                                rounds=rounds, warmup_rounds=warmup_rounds)
    if pair is not None:
        benchmark.extra_info.update(pair=pair, role=role)
    if unguarded:
        benchmark.extra_info.update(ratio_unguarded=unguarded)
    setup, original_times = None, []
    if original is not None:
        original_step = training_step(original, x, y)

        def setup() -> None:
            t0 = time.perf_counter()
            original_step()
            original_times.append(time.perf_counter() - t0)

    benchmark.pedantic(step, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    if original is not None and benchmark.stats is not None:  # None when benchmarks are disabled
        tr_times = benchmark.stats.stats.data
        ratios = [t / o for t, o in zip(tr_times, original_times[warmup_rounds:])]
        benchmark.extra_info.update(tr_original_time_ratio=statistics.median(ratios),
                                    original_median_s=statistics.median(original_times[warmup_rounds:]))
    return figures


# -- reading ------------------------------------------------------------------------------------

def _read_json(path: "str | Path", what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{what} {str(path)!r}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HarnessError(f"{what} {str(path)!r}: not valid JSON ({e})") from None


def summarise(run: dict, source: str = "benchmark JSON") -> dict:
    """A pytest-benchmark ``--benchmark-json`` document -> the compact baseline format:
    per benchmark its median time, memory figures and pair role; plus the pair ratios."""
    benches = run.get("benchmarks") if isinstance(run, dict) else None
    if not isinstance(benches, list) or not benches:
        raise HarnessError(f"{source}: no 'benchmarks' list (was it written by --benchmark-json with "
                           "--benchmark-enable?)")
    out: dict[str, dict] = {}
    for b in benches:
        try:
            name, extra, median = b["name"], b.get("extra_info") or {}, float(b["stats"]["median"])
        except (KeyError, TypeError, ValueError):
            raise HarnessError(f"{source}: a benchmark entry lacks name or stats.median") from None
        if name in out:
            raise HarnessError(f"{source}: benchmark name {name!r} appears twice")
        figures = {k: extra[k] for k in MEMORY_FIGURES if k in extra}
        if not all(_is_number(v) for v in figures.values()):
            raise HarnessError(f"{source}: {name}: memory figures must be numbers, got {figures}")
        entry: dict[str, Any] = {"median_s": median, "figures": figures}
        rounds = extra.get("rounds", (b.get("stats") or {}).get("rounds"))
        if _is_number(rounds):
            entry["rounds"] = int(rounds)
        if _is_number(extra.get("warmup_rounds")):  # pytest-benchmark does not record pedantic warm-up rounds
            entry["warmup_rounds"] = int(extra["warmup_rounds"])
        if "pair" in extra:
            if extra.get("role") not in ROLES:
                raise HarnessError(f"{source}: {name}: extra_info role {extra.get('role')!r}, expected one of {ROLES}")
            entry["pair"], entry["role"] = extra["pair"], extra["role"]
            if "tr_original_time_ratio" in extra:
                entry["paired_ratio"] = float(extra["tr_original_time_ratio"])
            if extra.get("ratio_unguarded"):
                entry["ratio_unguarded"] = str(extra["ratio_unguarded"])
        out[name] = entry
    machine = run.get("machine_info") or {}
    ratios, rounds, unguarded = pair_ratios(out, source)
    return {"format": FORMAT, "machine": (machine.get("cpu") or {}).get("brand_raw") or machine.get("machine"),
            "commit": _commit(run.get("commit_info") or {}), "datetime": run.get("datetime"),
            "benchmarks": out, "ratios": ratios, "ratio_rounds": rounds, "unguarded": unguarded}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _commit(info: dict) -> "str | None":
    return None if not info.get("id") else info["id"] + ("-dirty" if info.get("dirty") else "")


def pair_ratios(benchmarks: dict[str, dict], source: str = "benchmark JSON"
                ) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Per pair, from one run's entries (:func:`summarise`): the guarded Tr/Original step-time
    ratios (the Tr benchmark's interleaved ``paired_ratio``, see :func:`bench_step`), the rounds
    each pair's ratio was measured on, and why a pair's ratio is not guarded. Not guarded: a
    ratio marked ``ratio_unguarded``, one from fewer than ``MIN_RATIO_ROUNDS`` rounds or
    ``MIN_WARMUP_ROUNDS`` warm-up rounds, and one of two separate benchmarks' medians (not
    interleaved: on a shared machine the two sides see different load)."""
    pairs: dict[str, dict[str, dict]] = {}
    for name, b in benchmarks.items():
        if "pair" in b:
            if b["role"] in pairs.setdefault(b["pair"], {}):
                raise HarnessError(f"{source}: pair {b['pair']!r} has two {b['role']!r} benchmarks")
            pairs[b["pair"]][b["role"]] = b
    ratios: dict[str, float] = {}
    rounds_of: dict[str, str] = {}
    unguarded: dict[str, str] = {}
    for p, r in sorted(pairs.items()):
        tr = r.get("tr", {})
        why = [b["ratio_unguarded"] for b in r.values() if "ratio_unguarded" in b]
        if "paired_ratio" in tr:
            rounds, warmup = tr.get("rounds"), tr.get("warmup_rounds")
        elif set(r) == set(ROLES):
            sides = r.values()
            rounds = None if any("rounds" not in b for b in sides) else min(b["rounds"] for b in sides)
            warmup = None if any("warmup_rounds" not in b for b in sides) else min(b["warmup_rounds"] for b in sides)
            why.append("two separate benchmarks, not interleaved rounds")
        else:
            continue  # one side only: no ratio (compare() reports it missing when the baseline has it)
        rounds_of[p] = _rounds_text(rounds, warmup)
        if not _enough_rounds(rounds, warmup):
            why.append(f"a guarded ratio needs >= {MIN_RATIO_ROUNDS} rounds after >= {MIN_WARMUP_ROUNDS} warm-up")
        if why:
            unguarded[p] = "; ".join(why)
        else:
            ratios[p] = tr["paired_ratio"]
    return ratios, rounds_of, unguarded


def load_baseline(path: "str | Path") -> dict:
    doc = _read_json(path, "baseline")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HarnessError(f"baseline {str(path)!r}: not a {FORMAT} file (make one with "
                           "'python -m harness.ci_guard baseline')")
    benches, ratios = doc.get("benchmarks"), doc.get("ratios", {})
    ok = isinstance(benches, dict) and isinstance(ratios, dict) and all(map(_is_number, ratios.values())) and all(
        isinstance(b, dict) and _is_number(b.get("median_s")) and isinstance(b.get("figures"), dict)
        and all(map(_is_number, b["figures"].values())) for b in benches.values())
    if not ok:
        raise HarnessError(f"baseline {str(path)!r}: malformed (each benchmark needs a numeric median_s and "
                           "figures; ratios must be numbers)")
    return doc


def load_current(path: "str | Path") -> dict:
    return summarise(_read_json(path, "current run"), f"current run {str(path)!r}")


# -- comparing ----------------------------------------------------------------------------------

def _grew(old: float, new: float, limit: float) -> bool:
    return new > old * (1 + limit) if old > 0 else new > old


def compare(current: dict, baseline: dict, absolute: bool = False, memory_limit: float = MEMORY_LIMIT,
            ratio_limit: float = RATIO_LIMIT, time_limit: float = TIME_LIMIT) -> list[Move]:
    """Every figure that moved (``failed`` marks the ones over their limit). Both arguments are
    in the compact format of :func:`summarise`."""
    moves: list[Move] = []
    cur = current["benchmarks"]
    for name, base in baseline["benchmarks"].items():
        if name not in cur:
            moves.append(Move(name, "benchmark", base["median_s"], None, None, True))
            continue
        for fig, old in base["figures"].items():
            new = cur[name]["figures"].get(fig)
            if new is None:
                moves.append(Move(name, fig, old, None, memory_limit, True))
            elif new != old:
                moves.append(Move(name, fig, old, new, memory_limit, _grew(old, new, memory_limit)))
        if absolute:
            old, new = base["median_s"], cur[name]["median_s"]
            moves.append(Move(name, "median_s", old, new, time_limit, _grew(old, new, time_limit)))
    for pair, old in baseline.get("ratios", {}).items():
        if pair in current.get("unguarded", {}):
            continue  # check() notes why; its memory figures were compared above
        new = current["ratios"].get(pair)
        moves.append(Move(pair, RATIO_FIGURE, old, new, ratio_limit, new is None or _grew(old, new, ratio_limit),
                          current.get("ratio_rounds", {}).get(pair)))
    return moves


def check(current_path: "str | Path", baseline_path: "str | Path", absolute: bool = False, out=None) -> int:
    """Print the comparison; 0 when every guard holds, 1 when one fails."""
    out = out or sys.stdout
    baseline, current = load_baseline(baseline_path), load_current(current_path)
    moves = compare(current, baseline, absolute=absolute)
    failed = [m for m in moves if m.failed]
    new = sorted(set(current["benchmarks"]) - set(baseline["benchmarks"]))
    for m in moves:
        if not m.failed and (m.figure in MEMORY_FIGURES or absolute or m.figure == RATIO_FIGURE):
            print(f"ok: {m.line()}", file=out)
    for name in new:
        print(f"note: {name}: not in the baseline (not guarded)", file=out)
    rounds = current.get("ratio_rounds", {})
    unguarded = current.get("unguarded", {})
    for pair, why in sorted(unguarded.items()):
        print(f"note: {pair}: {RATIO_FIGURE} not guarded ({rounds.get(pair, 'rounds not recorded')}): {why} "
              "(its memory figures still are)", file=out)
    for pair in sorted(set(current["ratios"]) - set(baseline.get("ratios", {}))):
        print(f"note: {pair}: {RATIO_FIGURE} {_fmt(current['ratios'][pair])} ({rounds.get(pair)}) not in the "
              "baseline (not guarded)", file=out)
    if absolute and baseline.get("machine") != current.get("machine"):
        print(f"note: --absolute across machines: baseline {baseline.get('machine')!r}, "
              f"current {current.get('machine')!r}", file=out)
    for m in failed:
        print(m.line(), file=out)
    n = len(baseline["benchmarks"])
    checked = sum(m.figure == RATIO_FIGURE for m in moves)
    verdict = f"FAILED: {len(failed)} figure(s) moved past their limit" if failed else "passed"
    print(f"guard {verdict} ({n} benchmarks' memory figures; {checked} time ratios checked, "
          f"{len(unguarded)} not guarded)", file=out)
    return 1 if failed else 0


def write_baseline(current_path: "str | Path", out_path: "str | Path") -> dict:
    """Summarise a run into the committed baseline file (atomic write)."""
    doc = load_current(current_path)
    write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", out_path)
    return doc


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.ci_guard", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="compare a --benchmark-json run with a baseline")
    c.add_argument("--current", required=True, help="pytest-benchmark JSON of this run")
    c.add_argument("--baseline", required=True, help="baseline JSON (results/baselines/ci-cpu.json)")
    c.add_argument("--absolute", action="store_true",
                   help=f"also fail when a median time grows > {TIME_LIMIT:.0%} (same machine only)")
    b = sub.add_parser("baseline", help="write a baseline from a --benchmark-json run")
    b.add_argument("--current", required=True, help="pytest-benchmark JSON of the run to keep")
    b.add_argument("--out", required=True, help="baseline file to (over)write")
    args = ap.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.current, args.baseline, absolute=args.absolute)
        doc = write_baseline(args.current, args.out)
        print(f"baseline: {len(doc['benchmarks'])} benchmarks, guarded ratios "
              + ", ".join(f"{p} {r:.3f} ({doc['ratio_rounds'][p]})" for p, r in doc["ratios"].items())
              + (f"; not guarded: {', '.join(sorted(doc['unguarded']))}" if doc["unguarded"] else "")
              + f" -> {args.out}")
        return 0
    except HarnessError as e:
        print(f"harness guards {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

