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
from pathlib import Path

import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.autotransfer import AUTO_METHOD, AutoTransferSettings
from harness.analysis.rank import correlations
from harness.definition.schema import FLOAT, INT, LIST_STR, STR, Definition, Kind, KindSpec
from harness.proxies import ProxyContext, TrainProxy, make_proxy, proxy_family
from harness.sections.context import check_inputs, proxy_context, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, TRAIN_SCHEMA, check_arch_list, check_sections
from harness.sections.splices import check_splices
from harness.store.results import ResultsStore
from harness.tabular import get_table, table_spaces
from harness.transfer.depth import CKA_ESTIMATORS, check_threshold

#: The proxy whose Tr-Net depth the run chooses (this kind resolves it itself, before any proxy is built).
AUTO_PROXY = f"train:{AUTO_METHOD}"
#: How train:tr-net-auto chooses its depth (harness.analysis.autotransfer.AutoTransferSettings).
TRANSFER_SCHEMA = {"threshold": FLOAT, "estimator": STR, "cka": STR, "cka_archs": INT, "cka_epochs": INT}
SCHEMA = {"datasets": LIST_STR, "arch_list": LIST_STR, "proxies": LIST_STR, "train": TRAIN_SCHEMA,
          "backbone": BACKBONE_SCHEMA, "transfer": TRANSFER_SCHEMA}
DEFAULTS = {"space": "nb201", "datasets": ["cifar10"], "proxies": ["train:original"], "train": {}, "backbone": {},
            "transfer": {}}


def validate(d: Definition) -> None:
    auto = AUTO_PROXY in d["proxies"]
    check_sections(d, trains=auto)
    for p in d["proxies"]:
        family = None if p == AUTO_PROXY else proxy_family(p)
        if family is not None and not (family.trains and not family.recorded):
            raise HarnessError(f"{d.source}: key 'proxies': kind 'train' takes train:<method> proxies, got {p!r}")
    if auto and d["space"] != "nb201":
        raise HarnessError(f"{d.source}: key 'proxies': {AUTO_PROXY!r} chooses the depth from the CKA of NB201 "
                           f"cells: only for space 'nb201' (got {d['space']!r})")
    if d["transfer"] and not auto:
        raise HarnessError(f"{d.source}: key 'transfer': how {AUTO_PROXY} chooses its depth, but 'proxies' does "
                           "not name it")
    if "threshold" in d["transfer"]:
        try:
            check_threshold(d["transfer"]["threshold"])
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'transfer.threshold': {e}") from None
    if "estimator" in d["transfer"]:
        d.one_of("transfer.estimator", d["transfer"]["estimator"], CKA_ESTIMATORS)
    check_arch_list(d)
    check_splices(d)  # train:tr-net-auto names no depth: the run chooses one among those that can be built


def check(d: Definition, batch: "str | None") -> None:
    """train:tr-net-auto trains, reads the backbone (no family says so for it) and its CKA table."""
    auto = AUTO_PROXY in d["proxies"]
    check_inputs(d, reads_images=auto, borrows_backbone=auto)
    cka = d["transfer"].get("cka")
    if cka and not Path(cka).exists():
        raise HarnessError(f"{d.source}: key 'transfer.cka' = {cka!r}: no such CKA table (`harness cka` writes one)")


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
        store.append("rank", pd.DataFrame(agreement).assign(**run_meta(defn, batch_id, trains=True)))
    return pd.DataFrame(rows)


KIND = Kind(KindSpec("train", SCHEMA, DEFAULTS, validate, required=("arch_list",), own_proxies=(AUTO_PROXY,)), run,
            check=check)
