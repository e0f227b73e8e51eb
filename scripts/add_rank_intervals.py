"""Give a rank batch written before rank rows carried intervals its 95% intervals and paired rows,
from what the batch stored -- no proxy is scored again.

    python scripts/add_rank_intervals.py nb201-proxies-full nb201-proxies-trnet [--results results]
        [--compare-to zc:params]

For each benchmark's latest rank batch: table proxies are ranked again from the table (the same
draws, from the batch's recorded config), zero-cost proxies from the batch's ``zero_cost`` rows
(the values it measured, non-finite ones ranked last as the run did). Every recomputed KROCC /
SROCC must equal the stored one (to 1e-9), else nothing is written. The rows are appended as a new
batch of the same benchmark (``recomputed_from`` = the old batch id; every other column as it was,
the interval columns added) with its ``rank_pairs`` against ``--compare-to``, so the leaderboard
shows them as the benchmark's latest batch. Training proxies are not recomputed here (their
benchmarks are cheap to rerun).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import paired_rows, rank_proxy
from harness.bench.kinds.rank_zero_cost import rank_scored, rankable
from harness.bench.runner import new_batch_id
from harness.proxies import GroundTruth, ProxyContext, make_proxy, proxy_family
from harness.spaces import get_space
from harness.store.results import ResultsStore
from harness.store.tables import latest_batches

INTERVAL = ("krocc_lo", "krocc_hi", "srocc_lo", "srocc_hi", "ci_level", "ci_resamples")


def recompute(store: ResultsStore, benchmark: str, compare_to: "str | None") -> tuple[pd.DataFrame, pd.DataFrame]:
    rank = latest_batches(store.read("rank"))
    old = rank[rank["benchmark"] == benchmark] if rank is not None else None
    if old is None or old.empty:
        raise HarnessError(f"{benchmark}: no rank rows")
    batch = old["batch_id"].iloc[-1]
    config = json.loads(old["config"].iloc[-1])
    space = get_space(config.get("space", "nb201"))
    zc = store.read("zero_cost")
    zc = zc[zc["batch_id"] == batch] if zc is not None else None
    new_id = new_batch_id(benchmark)
    rows, pairs = [], []
    for ds in config["datasets"]:
        truth = GroundTruth(space, ds, config.get("table")).vector()
        ranked = []
        for name in config["proxies"]:
            family = proxy_family(name)
            if family.whole_table:
                values = make_proxy(name, ProxyContext(space, ds, table=config.get("table"))).values()
                results = [rank_proxy(values, truth, dataset=ds, proxy_name=name, sample=config.get("sample"),
                                      draws=config["draws"], seed=config["seed"])]
                if "top_k" in config:
                    results.append(rank_proxy(values, truth, dataset=ds, proxy_name=name, top=config["top_k"],
                                              ties=config["ties"], seed=config["seed"]))
            elif family.zero_cost:
                mine = zc[(zc["proxy"] == name) & (zc["dataset"] == ds)]
                if mine.empty:
                    continue
                values = np.full(len(truth), np.nan)
                values[mine["arch_index"].to_numpy(int)] = mine["value"].to_numpy(float)
                scored = np.zeros(len(truth), dtype=bool)
                scored[mine["arch_index"].to_numpy(int)] = True
                values, _ = rankable(values, scored)
                results = rank_scored(values, truth, scored, ds, name, config["seed"], config.get("zc_top_k"),
                                      config["ties"])
            else:
                continue
            for res in results:
                ranked.append((res, values))
                match = old[(old["dataset"] == ds) & (old["proxy"] == name) & (old["selection"] == res.selection)]
                if len(match) != 1:
                    raise HarnessError(f"{benchmark} {ds} {name} {res.selection}: {len(match)} stored rows")
                row = match.iloc[0].to_dict()
                for k in ("krocc", "srocc"):
                    if not np.isclose(row[k], getattr(res, k), atol=1e-9, equal_nan=True):
                        raise HarnessError(f"{benchmark} {ds} {name} {res.selection}: recomputed {k} "
                                           f"{getattr(res, k)!r} != stored {row[k]!r}")
                rows.append({**row, **{k: getattr(res, k) for k in INTERVAL}, "batch_id": new_id,
                             "recomputed_from": batch})
        pairs += paired_rows(ranked, truth, compare_to or config["proxies"][0])
    meta = {k: old[k].iloc[-1] for k in old.columns if k in ("benchmark", "kind", "space", "config", "commit")
            or k.startswith("version_")}
    return pd.DataFrame(rows), pd.DataFrame(pairs).assign(batch_id=new_id, recomputed_from=batch, **meta)


def main(argv: "list[str] | None" = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("benchmarks", nargs="+")
    p.add_argument("--results", default="results")
    p.add_argument("--compare-to", help="baseline of the paired rows (default: the batch's first proxy)")
    args = p.parse_args(argv)
    store = ResultsStore(args.results)
    try:
        done = [(b, *recompute(store, b, args.compare_to)) for b in args.benchmarks]  # all checked first
    except HarnessError as e:
        print(f"add_rank_intervals: {e}", file=sys.stderr)
        return 2
    for bench, rows, pairs in done:
        store.append("rank", rows)
        if len(pairs):
            store.append("rank_pairs", pairs)
        print(f"{bench}: {len(rows)} rank rows and {len(pairs)} paired rows as batch {rows['batch_id'].iloc[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
