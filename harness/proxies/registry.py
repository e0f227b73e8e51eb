"""Proxies by name, so rank and search benchmarks take them as plain strings.

* a table proxy name (:data:`harness.proxies.table.TABLE_PROXIES`), e.g. ``nb201-12ep-val``;
* ``train:<method>`` -- real training, ``method`` = ``original`` or ``tr-net-<i>-<j>``;
* ``recorded:<method>`` -- replay of earlier ``train:<method>`` runs from the store;
* ``zc:<measure>`` -- a zero-cost proxy (:mod:`harness.proxies.zero_cost`), e.g. ``zc:synflow``;
  ``zc:<measure>@tr-net-<i>-<j>`` -- the same measure of the Tr-Net's trainable suffix
  (:mod:`harness.proxies.zero_cost.trnet`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness import HarnessError
from harness.backbones.pretrain import BackboneSettings, ensure_backbone
from harness.data.datasets import Dataset, load_dataset
from harness.data.sources import NAMED_SOURCES
from harness.proxies.base import Proxy
from harness.proxies.settings import TRAIN_DATASET, TrainSettings, parse_method
from harness.proxies.table import TABLE_PROXIES, TableProxy
from harness.proxies.training import RecordedProxy, TrainProxy
from harness.proxies.zero_cost.measures import PREFIX as ZC_PREFIX
from harness.proxies.zero_cost.measures import ZERO_COST, ZeroCostProxy, check_measure
from harness.proxies.zero_cost.trnet import split_name
from harness.runinfo import default_device
from harness.spaces import SearchSpace
from harness.store.results import ResultsStore

KINDS = ("table", "train", "recorded", "zero_cost")


def proxy_kind(name: str) -> str:
    """``table``, ``train``, ``recorded`` or ``zero_cost``; an unknown name is an error naming the known ones."""
    if name in TABLE_PROXIES:
        return "table"
    if isinstance(name, str) and name.startswith(ZC_PREFIX):
        check_measure(split_name(name[len(ZC_PREFIX):])[0])
        return "zero_cost"
    kind, sep, method = name.partition(":") if isinstance(name, str) else ("", "", "")
    if sep and kind in ("train", "recorded"):
        parse_method(method)
        return kind
    raise HarnessError(f"proxy {name!r}: unknown (known: {', '.join(TABLE_PROXIES)}, train:<method>, "
                       "recorded:<method>; method = original or tr-net-<i>-<j>; zc:<measure>[@tr-net-<i>-<j>], measure = "
                       f"{', '.join(ZERO_COST)})")


def proxy_method(name: str) -> "str | None":
    """The training method of a train/recorded proxy (None for a table or zero-cost proxy)."""
    return None if proxy_kind(name) in ("table", "zero_cost") else name.partition(":")[2]


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


def make_proxy(name: str, ctx: ProxyContext) -> Proxy:
    kind = proxy_kind(name)
    if kind == "table":
        return TableProxy(name, ctx.space, ctx.dataset)
    if kind == "zero_cost":
        _, method = split_name(name[len(ZC_PREFIX):])
        return ZeroCostProxy(ctx.space, name[len(ZC_PREFIX):], ctx.data, table_dataset=ctx.dataset,
                             seed=ctx.train.seed, device=ctx.train.device,
                             backbone_path=ctx.backbone_path() if method else None, prefix_bn=ctx.backbone.prefix_bn)
    method = proxy_method(name)
    backbone = None if parse_method(method) is None else ctx.backbone_path()
    trainer = TrainProxy(ctx.space, method, ctx.data, table_dataset=ctx.dataset, cfg=ctx.train.config(method, ctx.space.name),
                         backbone=backbone, seed=ctx.train.seed, store=ctx.store, progress=ctx.progress,
                         meta=ctx.meta, allow_overlap=ctx.backbone.allow_overlap, prefix_bn=ctx.backbone.prefix_bn,
                         network=ctx.train.network)
    return trainer if kind == "train" else RecordedProxy(trainer, on_miss=ctx.train.on_miss)
