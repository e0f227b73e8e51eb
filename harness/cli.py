"""Command line: a thin shell over the library. Bad input -> one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness import HarnessError

RESULTS = Path("results")


def _print_table(df: pd.DataFrame, cols: list[str]) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[cols].to_string(index=False))


def cmd_rank(args: argparse.Namespace) -> pd.DataFrame:
    """Rank correlation of table proxies vs the 200-epoch ground truth; appends to results/rank.parquet."""
    from harness.analysis.rank import rank_table_proxy
    from harness.results.store import append_parquet
    from harness.runinfo import run_record
    from harness.tabular.nb201 import NB201Table, iter_datasets

    table = NB201Table.load(args.benchmark)
    rows = []
    for ds in iter_datasets(args.dataset):
        for proxy in args.proxy:
            if args.sample is not None or args.top_k is None:
                r = rank_table_proxy(table, ds, proxy, sample=args.sample, draws=args.draws, seed=args.seed)
                rows.append(r.row())
            if args.top_k is not None:
                r = rank_table_proxy(table, ds, proxy, top=args.top_k, ties=args.ties, seed=args.seed)
                rows.append({**r.row(), "ties": args.ties})
    df = pd.DataFrame(rows)
    df["truth"] = "test_acc@200"
    df["benchmark"] = table.source
    prov = run_record(seed=args.seed)
    for k, v in prov.items():
        if k != "seed":
            df[k] = v
    _print_table(df, ["dataset", "proxy", "selection", "n", "draws", "krocc", "krocc_std", "srocc", "srocc_std"])
    out = append_parquet(df, Path(args.results) / "rank.parquet")
    print(f"appended {len(df)} rows to {out}")
    return df


def build_parser() -> argparse.ArgumentParser:
    from harness.analysis.rank import TABLE_PROXIES, TIES

    ap = argparse.ArgumentParser(prog="harness", description="Benchmark harness for Transfer-NAS (TR-NAS).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", default=str(RESULTS), help="results folder (default: ./results)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rank", parents=[common], help="rank correlation of a proxy vs NB201's 200-epoch test accuracy")
    p.add_argument("--proxy", nargs="+", default=["nb201-12ep-val"],
                   help=f"table proxies: {', '.join(TABLE_PROXIES)} (default: nb201-12ep-val = 'Original')")
    p.add_argument("--dataset", nargs="+", default=["all"], help="cifar10 cifar100 ImageNet16-120 or all")
    p.add_argument("--sample", type=int, help="architectures per random draw (default: all when no --top-k)")
    p.add_argument("--draws", type=int, default=20, help="random draws to average (default 20)")
    p.add_argument("--top-k", type=int, help="also rank the top-k by ground truth")
    p.add_argument("--ties", choices=TIES, default="drop", help="top-k boundary ties (default: drop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--benchmark", help="table: shipped (default), a .parquet, or an official NB201/NATS file")
    p.set_defaults(func=cmd_rank)
    return ap


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except HarnessError as e:
        print(f"harness {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
