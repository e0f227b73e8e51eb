"""Kind ``train``: train given candidates once each with each ``train:<method>`` proxy; every run
is a row of the ``train`` table (what ``recorded:<method>`` proxies replay). ``train:tr-net-auto``
first chooses Tr-Net-i-j's depth from CKA (:mod:`harness.analysis.autotransfer`, options in the
definition's ``[transfer]`` table), then trains ``tr-net-<i>-<j>``; its rows record the choice.

When the space has a tabular benchmark and at least 3 candidates were trained, the trained
accuracies are also compared with the table (the harness's own training against the runs the
benchmark recorded): the mean offset is printed, and Kendall / Spearman against the table's
validation accuracy after the same epoch budget (when it has one) and against the ground truth go
to the ``rank`` table (selection ``listed-N``, ``truth`` naming the column).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from harness.analysis.autotransfer import AUTO_METHOD, AutoTransferSettings
from harness.analysis.rank import correlations
from harness.definition.context import proxy_context, run_meta
from harness.definition.schema import AUTO_PROXY, Definition
from harness.proxies import ProxyContext, TrainProxy, make_proxy
from harness.store.results import ResultsStore
from harness.tabular import get_table, table_spaces


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


def _auto_proxy(defn: Definition, ctx: ProxyContext, store: ResultsStore) -> TrainProxy:
    """``train:tr-net-<i>-<j>`` with (i, j) chosen now; its rows carry the choice, and the epochs and
    warmup given for ``tr-net-auto`` are its own. A CKA run keeps its table in ``<results>/cka-auto``."""
    method, record = AutoTransferSettings(**defn["transfer"]).choose(ctx.backbone_path(), ctx.data, ctx.train,
                                                                     store.root / "cka-auto", ctx.progress)
    print(f"transfer auto: chose {method} ({record['transfer_estimator']} CKA {record['transfer_cka']:.3f} >= "
          f"{record['transfer_threshold']:g})", flush=True)
    given = {key: {**table, method: table[AUTO_METHOD]} if AUTO_METHOD in table else table
             for key, table in (("epochs", ctx.train.epochs), ("warmup", ctx.train.warmup))}
    chosen = replace(ctx, train=replace(ctx.train, **given), meta={**ctx.meta, **record})
    chosen.data = ctx.data  # the images the choice was made on: loaded once
    return make_proxy(f"train:{method}", chosen)


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    rows, agreement = [], []
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        for name in defn["proxies"]:
            proxy = _auto_proxy(defn, ctx, store) if name == AUTO_PROXY else make_proxy(name, ctx)
            trained = proxy.train_rows([ctx.space.canonical(int(a) if a.isdigit() else a) for a in defn["arch_list"]])
            rows += trained
            agreement += _against_table(defn, ds, trained, proxy.name)
    if agreement:
        store.append("rank", pd.DataFrame(agreement).assign(**run_meta(defn, batch_id)))
    return pd.DataFrame(rows)
