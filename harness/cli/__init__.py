"""Command line: parses arguments and calls the library. Bad input -> one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from harness import HarnessError
from harness.analysis.autotransfer import AUTO_METHOD
from harness.backbones.pretrain import default_checkpoint_path, pretrain
from harness.bench.definitions import build_definition, kind_specs, load_definition
from harness.bench.runner import check_benchmark, run_benchmark
from harness.cli.parser import build_parser
from harness.data.datasets import load_dataset
from harness.data.download import download
from harness.data.sources import NAMED_SOURCES
from harness.definition.schema import Definition
from harness.progress import force_bars
from harness.proxies import parse_method
from harness.proxies.training import PRETRAIN_HINT
from harness.report.cka import write_run_figures
from harness.report.refresh import refresh
from harness.runinfo import default_device
from harness.search.batch import join
from harness.search.faults import Faults
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.train.recipe import BACKBONE, default_mode

RANK_COLUMNS = ["dataset", "proxy", "selection", "n", "draws", "krocc", "krocc_std", "srocc", "srocc_std",
                "krocc_single", "srocc_single"]


#: Definition key -> the flag that sets it, for the definitions the commands build (a key's error
#: names the flag the user typed, not a key of a file they never saw); a key covers its sub-keys.
DATA_FLAGS = {"train.dataset": "--dataset", "datasets": "--dataset", "train.data": "--data-dir / --npz",
              "train.limit": "--limit", "train.device": "--device", "train.epochs": "--epochs",
              "train.batch_size": "--batch-size", "train.seed": "--seed", "seed": "--seed"}
TRAIN_FLAGS = {**DATA_FLAGS, "train.warmup": "--warmup", "train.cutout": "--cutout",
               "train.cosine_period": "--cosine-period", "train.precision": "--precision",
               "train.channels_last": "--channels-last", "train.compile": "--compile", "train.network": "--network",
               "space": "--space",
               "arch_list": "--arch", "proxies": "--method", "backbone": "--backbone",
               "transfer.threshold": "--transfer-threshold", "transfer.estimator": "--cka-estimator",
               "transfer.cka": "--cka", "transfer.cka_archs": "--cka-archs", "transfer.cka_epochs": "--cka-epochs"}
CKA_FLAGS = {**DATA_FLAGS, "n_eval": "--n-eval", "eval_batch_size": "--eval-batch-size", "archs": "--archs",
             "arch_list": "--archs", "estimator": "--estimator", "backbone": "--backbone", "out": "--out"}
RANK_FLAGS = {"datasets": "--dataset", "proxies": "--proxy", "draws": "--draws", "ties": "--ties", "seed": "--seed",
              "sample": "--sample", "top_k": "--top-k", "table": "--benchmark"}
_KEY_ERROR = re.compile(r"arguments: key '([^']+)'(?: =)?(.*)", re.S)


def _from_flags(raw: dict, flags: dict[str, str], results: str) -> Definition:
    """:func:`build_definition` (and :func:`check_benchmark`) of a definition the command line built;
    an error about a key that a flag set names the flag (``--epochs must be >= 0``), not the key."""
    try:
        defn = build_definition(raw, "arguments")
        check_benchmark(defn, results)
        return defn
    except HarnessError as e:
        m = _KEY_ERROR.fullmatch(str(e))
        key = m and next((k for k in flags if m.group(1) == k or m.group(1).startswith(k + ".")), None)
        if key:
            raise HarnessError(f"{flags[key]}{m.group(2)}") from None
        raise


def _print_table(df: pd.DataFrame, cols: list[str]) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[cols].to_string(index=False))


def _run(defn: Definition, args: argparse.Namespace) -> pd.DataFrame:
    df = run_benchmark(defn, args.results, progress=not getattr(args, "quiet", False),
                       new_batch=getattr(args, "new_batch", False), batch=getattr(args, "batch", None))
    if defn.kind == "cka":  # the heatmaps of this run, drawn from the rows it wrote
        for path in write_run_figures(df):
            print(f"wrote {path}")
    return df


def cmd_rank(args: argparse.Namespace) -> pd.DataFrame:
    """Rank correlation of table proxies vs the ground truth: a ``rank`` benchmark run."""
    raw = {"name": "rank-cli", "kind": "rank",
           "datasets": list(get_space(kind_specs()["rank"].defaults["space"]).datasets) if args.dataset == ["all"] else args.dataset,
           "proxies": args.proxy, "draws": args.draws, "ties": args.ties, "seed": args.seed}
    raw.update({k: v for k, v in (("sample", args.sample), ("top_k", args.top_k), ("table", args.benchmark))
                if v is not None})
    df = _run(_from_flags(raw, RANK_FLAGS, args.results), args)
    _print_table(df, RANK_COLUMNS)
    print(f"appended {len(df)} rows to {ResultsStore(args.results).path('rank')}")
    return df


def cmd_bench(args: argparse.Namespace) -> None:
    """Run benchmark definition files (all validated first), then refresh the leaderboard and plots."""
    overrides = {"seeds": args.seeds, "budget": args.budget, "workers": args.workers, "storage": args.storage,
                 "train": {"archs": args.train_archs} if args.train_archs is not None else None,
                 "train_selections": args.train_selections}
    stop_at = _stop_time(args.until, args.hours)
    defs = [load_definition(p, full=args.full, overrides={k: v for k, v in overrides.items()
                                                          if v is not None and k in _keys_of(p)})
            for p in args.definitions]
    if stop_at is not None:
        for d in defs:
            if d.kind != "rank":
                raise HarnessError(f"--until/--hours: {d.source} is kind {d.kind!r}; only rank definitions stop "
                                   "between candidates")
        defs = [replace(d, stop_at=stop_at) for d in defs]
    for d in defs:  # every file, and what its run needs, before any work
        check_benchmark(d, args.results, new_batch=args.new_batch, batch=args.batch)
    if args.check:
        for d in defs:
            print(f"{d.source}: ok ({d.kind} {d.name!r})")
        return
    for d in defs:
        df = _run(d, args)
        if d.kind == "rank":
            _print_table(df, RANK_COLUMNS)
    _refresh(args.results)


def _stop_time(until: "str | None", hours: "float | None") -> "float | None":
    """``--until HH:MM`` (the next such local time) or ``--hours H`` from now -> ``time.time()`` value."""
    if until is not None and hours is not None:
        raise HarnessError("--until and --hours: give at most one of them")
    if hours is not None:
        if not hours > 0:
            raise HarnessError(f"--hours {hours}: must be > 0")
        return time.time() + hours * 3600
    if until is None:
        return None
    try:
        at = datetime.strptime(until, "%H:%M").time()
    except ValueError:
        raise HarnessError(f"--until {until!r}: expected a local time HH:MM, e.g. 18:30") from None
    now = datetime.now()
    stop = datetime.combine(now.date(), at)
    return (stop if stop > now else stop + timedelta(days=1)).timestamp()


def cmd_worker(args: argparse.Namespace) -> None:
    """Join a search study (or every study of a batch) in a shared storage until its budget is met."""
    faults = Faults(heartbeat_s=args.heartbeat, grace_s=args.grace, reconnect_s=args.reconnect)
    for study, numbers in join(args.storage, args.study, args.results, progress=not args.quiet, faults=faults).items():
        print(f"worker: {study}: ran {len(numbers)} trials", flush=True)


def _keys_of(path: str) -> set:
    """Overrides apply to the kinds that have the key (``--budget`` means nothing to a rank run)."""
    kind = load_definition(path).kind
    return set(kind_specs()[kind].schema)


def _refresh(results: str) -> None:
    for path in refresh(results):
        print(f"wrote {path}")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Rebuild results/leaderboard.md and the plots from the results store, running nothing."""
    _refresh(args.results)


def _train_section(args: argparse.Namespace) -> dict:
    sec = {"dataset": args.dataset, "data": args.npz or args.data_dir or "embedded"}
    sec.update({k: v for k, v in (("device", args.device), ("limit", args.limit), ("batch_size", args.batch_size),
                                  ("cosine_period", getattr(args, "cosine_period", None)),
                                  ("cutout", getattr(args, "cutout", None)),
                                  ("precision", getattr(args, "precision", None)),
                                  ("channels_last", getattr(args, "channels_last", None)),
                                  ("compile", getattr(args, "compile", None))) if v is not None})
    return sec


def _table_dataset(train_dataset: str) -> str:
    return {"cifar10-valid": "cifar10"}.get(train_dataset, train_dataset)


def cmd_train(args: argparse.Namespace) -> None:
    """Train one candidate as Original, Tr-Net-i-j or, with ``--transfer auto``, Tr-Net with (i, j)
    chosen from CKA: a ``train`` benchmark run."""
    method = args.method
    if args.transfer == "auto":
        if args.space != "nb201":
            raise HarnessError(f"--transfer auto: only for --space nb201 (got {args.space!r})")
        if not args.backbone:
            raise HarnessError("--transfer auto needs --backbone (the checkpoint whose blocks are transferred)")
        method = AUTO_METHOD
    train = {**_train_section(args), "seed": args.seed}
    for key, value in (("epochs", args.epochs), ("warmup", args.warmup)):
        if value is not None:
            train[key] = {method: value}
    if args.network:
        train["network"] = _network_options(args.network)
    raw = {"name": "train-cli", "kind": "train", "space": args.space, "datasets": [_table_dataset(args.dataset)],
           "arch_list": [str(args.arch)], "proxies": [f"train:{method}"], "train": train}
    if args.transfer == "auto":
        raw["transfer"] = {k: v for k, v in (("threshold", args.transfer_threshold), ("estimator", args.cka_estimator),
                                             ("cka", args.cka), ("cka_archs", args.cka_archs),
                                             ("cka_epochs", args.cka_epochs)) if v is not None}
    if args.backbone:
        raw["backbone"] = {"checkpoint": args.backbone, "allow_overlap": args.allow_backbone_overlap,
                           "prefix_bn": args.prefix_bn}
    elif parse_method(method) is not None:
        raise HarnessError(f"method {method!r} needs --backbone: {PRETRAIN_HINT}")
    for row in _run(_from_flags(raw, TRAIN_FLAGS, args.results), args).to_dict("records"):
        _print_train_row(row, ResultsStore(args.results).path("train"))


def _network_options(items: list[str]) -> dict:
    """``["C=8", "layers=5", "auxiliary=false"]`` -> {"C": 8, "layers": 5, "auxiliary": False}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"--network {item!r}: expected KEY=VALUE, e.g. C=8")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            raise HarnessError(f"--network {item!r}: the value must be a number, true or false") from None
    return out


def _print_train_row(row: dict, where: Path) -> None:
    mem = (f"peak CUDA {row['peak_cuda_bytes'] / 2**20:.1f} MiB" if row.get("peak_cuda_bytes") is not None
           and row["peak_cuda_bytes"] == row["peak_cuda_bytes"] else f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB")
    val = "n/a" if row["val_acc"] is None or row["val_acc"] != row["val_acc"] else f"{row['val_acc']:.2f}%"
    print(f"{row['method']} {row['arch_str']} on {row['dataset']} ({row['data_source']}, {row['n_train']} train images)\n"
          f"  val {val}  test {row['test_acc']:.2f}%  {row['epochs']} epochs in {row['wall_s']:.1f} s "
          f"({row['images_per_s']:.0f} img/s)\n  saved for backward {row['saved_bytes'] / 2**20:.1f} MiB  {mem}  "
          f"trainable params {row['trainable_params']:,} of {row['params']:,}  device {row['device']}\n"
          f"appended to {where}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Pre-train a backbone (paper Table 6 recipe) and save its checkpoint."""
    device = args.device or default_device()
    data = load_dataset(args.dataset, data_dir=args.data_dir, npz=NAMED_SOURCES.get(args.npz, args.npz), device=device,
                        limit=args.limit)
    out = args.out or default_checkpoint_path(args.results, args.backbone, data.name)
    cfg = BACKBONE.with_(epochs=args.epochs, batch_size=args.batch_size).with_mode(args.mode or default_mode(device))
    meta = pretrain(args.backbone, data, out, cfg=cfg, seed=args.seed, progress=not args.quiet, shortcut=args.shortcut)
    val = "n/a" if meta["val_acc"] is None else f"{meta['val_acc']:.2f}%"
    print(f"{args.backbone} on {data.name} ({meta['n_train']} train images, {cfg.epochs} epochs, "
          f"{meta['wall_s']:.1f} s): val {val} test {meta['test_acc']:.2f}%\nwrote {out}")


def cmd_cka(args: argparse.Namespace) -> None:
    """CKA of backbone blocks vs NB201 cells (paper Figs. 1/2): a ``cka`` benchmark run."""
    train = {**_train_section(args), "seed": args.seed}
    if args.epochs is not None:
        train["epochs"] = {"original": args.epochs}
    raw = {"name": "cka-cli", "kind": "cka", "datasets": [_table_dataset(args.dataset)], "n_eval": args.n_eval,
           "eval_batch_size": args.eval_batch_size, "supernet": args.supernet, "keep_networks": args.keep_networks,
           "estimator": args.estimator,
           "seed": args.seed, "backbone": {"checkpoint": args.backbone}, "train": train}
    if args.archs and len(args.archs) == 1 and args.archs[0].isdigit():
        raw["archs"] = int(args.archs[0])
    elif args.archs:
        raw["arch_list"] = list(args.archs)
    elif args.supernet:
        raw["archs"] = 0
    if args.out:
        raw["out"] = args.out
    _run(_from_flags(raw, CKA_FLAGS, args.results), args)


def cmd_data_download(args: argparse.Namespace) -> None:
    path = download(args.name, args.root, url=args.url, md5=args.md5, progress=not args.quiet)
    print(f"{args.name} ready in {path} (use --data-dir {path})")


class _Output:
    """``sys.stdout`` / ``sys.stderr`` while a command runs. Once the reader of a pipe has gone
    (``harness bench ... | head -1``) the rest of the output is dropped instead of a BrokenPipeError
    breaking off the run between two of its steps, so the run ends as it would have: rows written,
    its journal removed, the leaderboard refreshed. ``main`` then exits 141 (128 + SIGPIPE, what a
    program the closed pipe had killed returns), so a pipeline with ``set -o pipefail`` sees that
    output was lost."""

    def __init__(self, stream):
        self.stream, self.lost = stream, False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.lost = True
        try:  # the stream's buffer still holds what it could not write: let it flush to /dev/null
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # not a file descriptor (a test's capture): nothing to flush
            pass

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "arch", None) is not None and args.arch.isdigit():
        args.arch = int(args.arch)
    force_bars(True if getattr(args, "progress", False) else None)
    out, err = sys.stdout, sys.stderr = _Output(sys.stdout), _Output(sys.stderr)
    try:
        code = _call(args)
        out.flush()
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
    return 141 if code == 0 and (out.lost or err.lost) else code


def _call(args: argparse.Namespace) -> int:
    try:
        globals()[args.func](args)
    except HarnessError as e:
        print(f"harness {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every finished row is already its own part in the store
        print(f"harness {args.command}: interrupted; every finished result is kept in {args.results}"
              if hasattr(args, "results") else f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0

