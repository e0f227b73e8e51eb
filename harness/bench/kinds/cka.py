"""Kind ``cka``: CKA of a pre-trained backbone's blocks vs candidate cells (paper Figs. 1/2).

Trains ``archs`` random architectures (or takes ``arch_list``: strings, indices or network
checkpoints) with the Original recipe (``train.epochs.original``, default 12) and, with
``supernet``, a first-order DARTS supernet; CKA by ``estimator`` (``eq1``, the paper's Eq. (1),
default; or ``unbiased_minibatch``); rows go to the ``cka`` table. One row per dataset comes back:
the part written and ``out``, where the CLI has the report draw its heatmaps (default
``<results>/cka-heatmaps``, beside the ``cka`` table's folder, which holds only its parts).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import HarnessError
from harness.analysis.similarity import run_cka
from harness.definition.schema import BOOL, INT, LIST_STR, STR, Definition, Kind, KindSpec
from harness.sections.context import check_inputs, proxy_context, run_meta, train_settings
from harness.sections.schema import BACKBONE_SCHEMA, TRAIN_SCHEMA, check_arch_list, check_sections
from harness.sections.splices import check_splices
from harness.store.results import ResultsStore
from harness.transfer.depth import CKA_ESTIMATORS, DEFAULT_ESTIMATOR

SCHEMA = {"datasets": LIST_STR, "archs": INT, "arch_list": LIST_STR, "n_eval": INT, "eval_batch_size": INT,
          "supernet": BOOL, "keep_networks": BOOL, "seed": INT, "out": STR, "estimator": STR, "train": TRAIN_SCHEMA,
          "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "datasets": ["cifar10"], "archs": 3, "n_eval": 500, "eval_batch_size": 250,
            "supernet": False, "keep_networks": False, "seed": 0, "estimator": DEFAULT_ESTIMATOR, "train": {},
            "backbone": {}}


def validate(d: Definition) -> None:
    check_sections(d, trains=True)
    check_arch_list(d, files=True)
    d.one_of("estimator", d["estimator"], CKA_ESTIMATORS)
    if d["space"] != "nb201" and (not d["supernet"] or d.get("arch_list") or d["archs"]):
        raise HarnessError(f"{d.source}: space {d['space']!r}: kind 'cka' compares only its supernet (paper "
                           "Fig. 2): set supernet = true and archs = 0")
    check_splices(d)


def check(d: Definition, batch: "str | None") -> None:
    """It trains candidates and reads the backbone whatever its proxies."""
    check_inputs(d, reads_images=True, borrows_backbone=True)


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    frames = []
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        archs = defn.get("arch_list") or defn["archs"]
        if isinstance(archs, list):
            archs = [int(a) if a.isdigit() else a for a in archs] or None
        elif archs == 0:
            archs = None  # the supernet alone
        out = Path(defn.get("out") or store.root / "cka-heatmaps")
        backbone = defn["backbone"].get("checkpoint") or ctx.backbone_path()  # pre-trained once when missing
        r = run_cka(backbone, archs, ctx.data, out_dir=out, store=store,
                    meta=run_meta(defn, batch_id, trains=True), n_eval=defn["n_eval"], batch_size=defn["eval_batch_size"],
                    train_cfg=train_settings(defn).config("original"), seed=defn["seed"],
                    supernet=defn["supernet"], keep_networks=defn["keep_networks"], progress=progress,
                    estimator=defn["estimator"], space=defn["space"], network=dict(defn["train"].get("network", {})))
        for name, arch in zip(r.names, r.archs):
            print(f"{name}: {arch}")
        print(f"estimator: {r.estimator}")
        print("mean CKA on the diagonal: " + " ".join(f"{r.mean[k, k]:.2f}" for k in range(min(r.mean.shape))))
        print(f"wrote {r.parquet_path}")
        frames.append(pd.DataFrame({"dataset": [ds], "part": [str(r.parquet_path)], "out": [str(out)]}))
    return pd.concat(frames, ignore_index=True)


KIND = Kind(KindSpec("cka", SCHEMA, DEFAULTS, validate), run, check=check)
