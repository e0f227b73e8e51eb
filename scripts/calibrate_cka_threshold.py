"""Calibrate the transfer-depth threshold of each CKA estimator on the same networks.

Runs a ``cka`` definition (default ``benchmarks/nb201-cka.toml``) with the paper's Eq. (1), keeping
the trained networks, then again on those very networks with the unbiased minibatch estimator
(same backbone, same evaluation images). For each estimator's mean matrix it prints the CKA at
the paper's pair (Tr-Net-5-5: cell 5, block 5) and at a pair the paper rejects (Tr-Net-10-10,
Fig. 7: "if we replace too many cells ... the rank correlation is lower than the baseline"), the
strongest path to each cell, and the thresholds for which the rule
(:func:`harness.transfer.depth.choose_transfer_depth`) picks the paper's i = 5
(:func:`harness.transfer.depth.thresholds_choosing`), with their midpoint: the calibrated value.

    .venv/bin/python scripts/calibrate_cka_threshold.py --results /tmp/cka-calibration [--full] \
        [--matrices tests/golden/cka_calibration.json]

``--matrices`` also writes both mean matrices and the layer shapes, the data a test checks the
calibrated thresholds against (tests/test_analysis_transfer_depth.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness import HarnessError
from harness.analysis.cka_table import read_cka
from harness.bench.definitions import load_definition
from harness.bench.runner import run_benchmark
from harness.transfer.depth import CKA_ESTIMATORS, shape_compatible, strongest_paths, thresholds_choosing

PAPER_I, REJECTED = 5, (10, 10)


def calibrate(table) -> dict:
    cells, blocks = table.shapes()
    compatible = shape_compatible(cells, blocks)
    best, _ = strongest_paths(table.mean)
    reach = [float(max(best[c - 1, j - 1] for j in range(1, len(blocks)) if compatible(c, j)))
             if any(compatible(c, j) for j in range(1, len(blocks))) else None for c in range(1, len(cells))]
    interval = thresholds_choosing(table.mean, PAPER_I, compatible=compatible)
    return {"estimator": table.estimator, "networks": table.names, "mean": table.mean.round(6).tolist(),
            "cell_shapes": cells, "block_shapes": blocks,
            "cka_paper_pair_5_5": float(table.mean[PAPER_I - 1, PAPER_I - 1]),
            "cka_rejected_pair_10_10": float(table.mean[REJECTED[0] - 1, REJECTED[1] - 1]),
            "strongest_path_per_cell": reach,
            "thresholds_picking_i5": interval,
            "calibrated": None if interval is None else round((interval[0] + interval[1]) / 2, 3)}


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--definition", default="benchmarks/nb201-cka.toml")
    ap.add_argument("--results", required=True, help="results folder for both runs (networks are kept there)")
    ap.add_argument("--full", action="store_true", help="the definition's [full] sizes")
    ap.add_argument("--matrices", help="also write the mean matrices and shapes to this JSON file")
    args = ap.parse_args(argv)
    try:
        report, networks = {}, None
        for estimator in ("eq1", "unbiased_minibatch"):
            overrides = {"estimator": estimator, "keep_networks": True,
                         "out": str(Path(args.results) / f"cka-heatmaps-{estimator}")}
            if networks:
                overrides["arch_list"] = networks
            defn = load_definition(args.definition, full=args.full, overrides=overrides)
            t0 = time.perf_counter()
            part = run_benchmark(defn, args.results, progress=False)["part"].iloc[0]
            table = read_cka(part)
            networks = networks or [str(Path(overrides["out"]) / "networks" / f"{n}.pt") for n in table.names]
            report[estimator] = {**calibrate(table), "wall_s": round(time.perf_counter() - t0, 1)}
        assert set(report) == set(CKA_ESTIMATORS)
    except HarnessError as e:
        print(f"calibrate_cka_threshold: error: {e}", file=sys.stderr)
        return 2
    if args.matrices:
        Path(args.matrices).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({e: {k: v for k, v in r.items() if k not in ("mean", "cell_shapes", "block_shapes")}
                      for e, r in report.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
