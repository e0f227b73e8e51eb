"""Kind ``train``: train given candidates once each with each ``train:<method>`` proxy; every run
is a row of the ``train`` table (what ``recorded:<method>`` proxies replay).

When the space has a tabular benchmark and at least 3 candidates were trained, the trained
accuracies are also compared with the table (the harness's own training against the runs the
benchmark recorded): the mean offset is printed, and Kendall / Spearman against the table's
validation accuracy after the same epoch budget (when it has one) and against the ground truth go
to the ``rank`` table (selection ``listed-N``, ``truth`` naming the column).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import correlations
from harness.definition.schema import LIST_STR, Definition, Kind, KindSpec
from harness.proxies import make_proxy, proxy_family
from harness.sections.context import proxy_context, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, TRAIN_SCHEMA, check_arch_list, check_sections
from harness.sections.splices import check_splices
from harness.store.results import ResultsStore
from harness.tabular import get_table, table_spaces

SCHEMA = {"datasets": LIST_STR, "arch_list": LIST_STR, "proxies": LIST_STR, "train": TRAIN_SCHEMA,
          "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "datasets": ["cifar10"], "proxies": ["train:original"], "train": {}, "backbone": {}}


def validate(d: Definition) -> None:
    check_sections(d)
    for p in d["proxies"]:
        family = proxy_family(p)
        if not (family.trains and not family.recorded):
            raise HarnessError(f"{d.source}: key 'proxies': kind 'train' takes train:<method> proxies, got {p!r}")
    check_arch_list(d)
    check_splices(d)


def _against_table(defn: Definition, dataset: str, rows: list[dict], proxy: str) -> list[dict]:
    space = rows[0]["space"]
    if space not in table_spaces() or len(rows) < 3:
        return []
    table = get_table(space)
    index = [table.index_of(r["arch_str"]) for r in rows]
    trained = np.array([r["val_acc"] if r["val_acc"] is not None else r["test_acc"] for r in rows], dtype=float)
    truths = {"test_acc@200": table.ground_truth(dataset)[index]}
    epochs = {r["epochs"] for r in rows}
    if len(epochs) == 1 and epochs.pop() in table.metrics().get("val_acc", ()):
        truths["val_acc@" + str(rows[0]["epochs"])] = table.column(dataset, "val_acc", rows[0]["epochs"])[index]
    out = []
    for truth, values in truths.items():
        tau, rho = correlations(trained, values)
        print(f"{defn.name}: {proxy} on {dataset}: trained vs table {truth}: Kendall {tau:.3f}, Spearman {rho:.3f}, "
              f"mean offset {np.mean(trained - values):+.2f} points over {len(rows)} candidates")
        out.append({"dataset": dataset, "proxy": proxy, "selection": f"listed-{len(rows)}", "n": len(rows),
                    "draws": 1, "krocc": tau, "krocc_std": 0.0, "srocc": rho, "srocc_std": 0.0, "truth": truth,
                    "mean_offset": float(np.mean(trained - values))})
    return out


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    rows, agreement = [], []
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        for name in defn["proxies"]:
            proxy = make_proxy(name, ctx)
            trained = proxy.train_rows([ctx.space.canonical(int(a) if a.isdigit() else a) for a in defn["arch_list"]])
            rows += trained
            agreement += _against_table(defn, ds, trained, name)
    if agreement:
        store.append("rank", pd.DataFrame(agreement).assign(**run_meta(defn, batch_id)))
    return pd.DataFrame(rows)


KIND = Kind(KindSpec("train", SCHEMA, DEFAULTS, validate, required=("arch_list",)), run)
