"""What building a proxy may need (:class:`ProxyContext`): every family's factory takes one."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.backbones.pretrain import BackboneSettings, ensure_backbone
from harness.data.datasets import Dataset, load_dataset
from harness.data.sources import NAMED_SOURCES
from harness.proxies.settings import TRAIN_DATASET, TrainSettings
from harness.runinfo import default_device
from harness.spaces import SearchSpace
from harness.store.results import ResultsStore


@dataclass
class ProxyContext:
    """What building a proxy may need; training data and the backbone are only loaded on demand."""

    space: SearchSpace
    dataset: str                               # the table dataset, e.g. "cifar10"
    store: "ResultsStore | None" = None
    train: TrainSettings = field(default_factory=TrainSettings)
    backbone: BackboneSettings = field(default_factory=BackboneSettings)
    results: "str | Path" = "results"
    progress: bool = False
    meta: dict = field(default_factory=dict)   # extra columns for every training row (batch, benchmark)
    table: "str | None" = None                 # the tabular benchmark file table proxies read (None: the shipped one)

    def _load(self, limit: "dict | None") -> Dataset:
        src = self.train.data
        if src in NAMED_SOURCES:
            kw = {} if src == "embedded" else {"npz": NAMED_SOURCES[src]}
        else:
            kw = {"npz": src} if src.endswith(".npz") else {"data_dir": src}
        name = self.train.dataset or TRAIN_DATASET.get(self.dataset, self.dataset)
        return load_dataset(name, limit=limit, device=self.train.device or default_device(), **kw)

    @cached_property
    def data(self) -> Dataset:
        return self._load(self.train.split_limits())

    @cached_property
    def backbone_data(self) -> Dataset:
        """What the backbone pre-trains on: the candidates' data, or with ``backbone.limit`` its own
        share of the same train split (0 = all of it), validated on the candidates' valid images."""
        if self.backbone.limit is None:
            return self.data
        limits = {k: v for k, v in (self.train.split_limits() or {}).items() if k != "train"}
        return self._load({**limits, **({"train": self.backbone.limit} if self.backbone.limit else {})} or None)

    def backbone_path(self) -> Path:
        return ensure_backbone(self.backbone, self.backbone_data, self.results, self.progress)
