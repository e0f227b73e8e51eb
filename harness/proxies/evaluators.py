"""Evaluators: what a search trial costs and returns, behind one interface.

* :class:`TabularEvaluator` -- a column of the NB201 table (12-epoch validation accuracy = the
  paper's "Original" proxy), in microseconds;
* :class:`TrainEvaluator` -- real training (Original or Tr-Net-i-j); every run is appended to a
  Parquet file so it can be replayed;
* :class:`RecordedEvaluator` -- replays those earlier training runs as a tabular benchmark; a miss
  either trains (``on_miss="train"``) or errors (``on_miss="error"``).

Every evaluation also carries the 200-epoch ground truth from the table, so search results can
be scored by what the found architecture really reaches.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from harness import HarnessError
from harness.spaces.nb201 import encoding as space
from harness.tabular.nb201 import GROUND_TRUTH, NB201Table

#: training dataset whose validation accuracy is each table dataset's proxy (NB201 convention:
#: CIFAR-10 candidates are validated on the "cifar10-valid" 25k/25k split).
TRAIN_DATASET = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "ImageNet16-120": "ImageNet16-120"}


@dataclass
class Evaluation:
    value: float  # the proxy the search maximises
    ground_truth: float  # NB201 200-epoch mean test accuracy
    wall_s: float
    peak_bytes: "int | None"  # saved-for-backward bytes (CPU) or CUDA peak, None for look-ups
    device: str
    cached: bool = False


class Evaluator(Protocol):
    name: str

    def __call__(self, ops: tuple[str, ...]) -> Evaluation: ...


class TabularEvaluator:
    def __init__(self, dataset: str, metric: str = "val_acc", epochs: int = 12, table: "NB201Table | None" = None):
        self.table = table or NB201Table.load()
        self.dataset, self.metric, self.epochs = dataset, metric, epochs
        self._proxy = self.table.column(dataset, metric, epochs)
        self._truth = self.table.column(dataset, *GROUND_TRUTH)
        self.name = f"tabular:{metric}@{epochs}"

    def __call__(self, ops):
        t0 = time.perf_counter()
        i = space.index_of(ops)
        value, truth = float(self._proxy[i]), float(self._truth[i])
        return Evaluation(value, truth, time.perf_counter() - t0, None, "table")


class TrainEvaluator:
    """Real training of each candidate; rows appended to ``record_path`` (the recorded benchmark)."""

    def __init__(self, method: str, data, *, cfg=None, backbone=None, seed: int = 0,
                 record_path: "str | Path | None" = None, table_dataset: str = "cifar10", progress: bool = False):
        from harness.proxies.training import parse_method

        parse_method(method)
        self.method, self.data, self.cfg, self.backbone, self.seed = method, data, cfg, backbone, seed
        self.record_path, self.progress = record_path, progress
        self._truth = (table := NB201Table.load()).column(table_dataset, *GROUND_TRUTH)
        self.name = f"train:{method}"

    def __call__(self, ops):
        from harness.store.files import append_parquet
        from harness.proxies.training import train_candidate

        row = train_candidate(ops, self.method, self.data, cfg=self.cfg, backbone=self.backbone,
                              seed=self.seed, progress=self.progress)
        if self.record_path is not None:
            append_parquet([row], self.record_path)
        peak = row["peak_cuda_bytes"] if row["peak_cuda_bytes"] is not None else row["saved_bytes"]
        return Evaluation(row["val_acc"], float(self._truth[row["arch_index"]]), row["wall_s"], peak, row["device"])


class RecordedEvaluator:
    """Earlier real-training runs (``harness train`` / TrainEvaluator rows) as a lookup table.

    Rows match on arch, method and dataset; several seeds are averaged. ``config`` (a dict), when
    given, must also match, so runs with another budget are not mixed in.
    """

    def __init__(self, path: "str | Path", method: str, dataset: str, *, on_miss: str = "error",
                 trainer: "TrainEvaluator | None" = None, config: "dict | None" = None, table_dataset: str = "cifar10"):
        if on_miss not in ("error", "train"):
            raise HarnessError(f"on_miss {on_miss!r}: expected 'error' or 'train'")
        if on_miss == "train" and trainer is None:
            raise HarnessError("recorded evaluator: on_miss='train' needs a trainer")
        self.path, self.method, self.dataset, self.on_miss, self.trainer = Path(path), method, dataset, on_miss, trainer
        self.config = json.dumps(config, sort_keys=True) if config is not None else None
        self._truth = (table := NB201Table.load()).column(table_dataset, *GROUND_TRUTH)
        self.name = f"recorded:{method}"
        self._rows = self._load()

    def _load(self) -> "pd.DataFrame":
        if not self.path.exists():
            return pd.DataFrame(columns=["arch_str"])
        df = pd.read_parquet(self.path)
        keep = (df["method"] == self.method) & (df["dataset"] == self.dataset)
        if self.config is not None:
            keep &= df["config"] == self.config
        return df[keep]

    def __call__(self, ops):
        arch_str = space.to_str(ops)
        rows = self._rows[self._rows["arch_str"] == arch_str]
        if rows.empty:  # another worker may have trained it since we loaded
            self._rows = self._load()
            rows = self._rows[self._rows["arch_str"] == arch_str]
        if rows.empty:
            if self.on_miss == "error":
                raise HarnessError(f"recorded results {str(self.path)!r}: no {self.method} run of {arch_str} on "
                                   f"{self.dataset}; train it first or use on_miss='train'")
            return self.trainer(ops)
        peak = rows["peak_cuda_bytes"].fillna(rows["saved_bytes"]).mean()
        return Evaluation(float(rows["val_acc"].mean()), float(self._truth[space.index_of(ops)]),
                          float(rows["wall_s"].mean()), int(peak), str(rows["device"].iloc[0]), cached=True)
