"""The built-in proxy families (each registered by one line in ``harness/proxies/__init__.py``):

* ``table``: a table proxy name (:data:`harness.proxies.table.TABLE_PROXIES`), e.g. ``nb201-12ep-val``;
* ``train``: ``train:<method>`` -- real training, ``method`` = ``original`` or ``tr-net-<i>-<j>``;
* ``recorded``: ``recorded:<method>`` -- replay of earlier ``train:<method>`` runs from the store;
* ``zero_cost``: ``zc:<measure>`` -- a zero-cost proxy (:mod:`harness.proxies.zero_cost`), e.g.
  ``zc:synflow``; ``zc:<measure>@tr-net-<i>-<j>`` -- the same measure of the Tr-Net's trainable
  suffix (:mod:`harness.proxies.zero_cost.trnet`).
"""
from __future__ import annotations

from harness.proxies.context import ProxyContext
from harness.proxies.registry import ProxyFamily
from harness.proxies.settings import parse_method
from harness.proxies.table import TABLE_PROXIES, TableProxy
from harness.proxies.training import RecordedProxy, TrainProxy
from harness.proxies.zero_cost.measures import PREFIX as ZC_PREFIX
from harness.proxies.zero_cost.measures import ZERO_COST, ZeroCostProxy, check_measure
from harness.proxies.zero_cost.trnet import split_name

TRAIN_PREFIX, RECORDED_PREFIX = "train:", "recorded:"


def _method(name: str) -> str:
    """``train:tr-net-5-5`` -> ``tr-net-5-5`` (likewise ``recorded:``)."""
    return name.partition(":")[2]


def _trained_tr_net(name: str) -> "str | None":
    return None if parse_method(_method(name)) is None else _method(name)


def _zc_tr_net(name: str) -> "str | None":
    return split_name(name[len(ZC_PREFIX):])[1]


def _table(name: str, ctx: ProxyContext) -> TableProxy:
    return TableProxy(name, ctx.space, ctx.dataset, ctx.table)


def _train(name: str, ctx: ProxyContext) -> TrainProxy:
    method = _method(name)
    backbone = None if parse_method(method) is None else ctx.backbone_path()
    return TrainProxy(ctx.space, method, ctx.data, table_dataset=ctx.dataset, cfg=ctx.train.config(method, ctx.space.name),
                      backbone=backbone, seed=ctx.train.seed, store=ctx.store, progress=ctx.progress,
                      meta=ctx.meta, allow_overlap=ctx.backbone.allow_overlap, prefix_bn=ctx.backbone.prefix_bn,
                      network=ctx.train.network, compiled=ctx.train.compile)


def _recorded(name: str, ctx: ProxyContext) -> RecordedProxy:
    return RecordedProxy(_train(name, ctx), on_miss=ctx.train.on_miss)


def _zero_cost(name: str, ctx: ProxyContext) -> ZeroCostProxy:
    return ZeroCostProxy(ctx.space, name[len(ZC_PREFIX):], ctx.data, table_dataset=ctx.dataset,
                         seed=ctx.train.seed, device=ctx.train.device,
                         backbone_path=ctx.backbone_path() if _zc_tr_net(name) else None,
                         prefix_bn=ctx.backbone.prefix_bn)


TABLE = ProxyFamily("table", ", ".join(TABLE_PROXIES), _table, members=TABLE_PROXIES, whole_table=True,
                    torch_free=True, space=lambda name: TABLE_PROXIES[name][0])
TRAIN = ProxyFamily("train", f"{TRAIN_PREFIX}<method>", _train, prefix=TRAIN_PREFIX,
                    check=lambda name: parse_method(_method(name)), trains=True, needs_data=True,
                    method=_method, tr_net=_trained_tr_net)
RECORDED = ProxyFamily("recorded", f"{RECORDED_PREFIX}<method>; method = original or tr-net-<i>-<j>", _recorded,
                       prefix=RECORDED_PREFIX, check=TRAIN.check, trains=True, recorded=True, needs_data=True,
                       method=_method, tr_net=_trained_tr_net)
ZERO_COST_FAMILY = ProxyFamily("zero_cost", f"{ZC_PREFIX}<measure>[@tr-net-<i>-<j>], measure = {', '.join(ZERO_COST)}",
                               _zero_cost, prefix=ZC_PREFIX,
                               check=lambda name: check_measure(split_name(name[len(ZC_PREFIX):])[0]),
                               zero_cost=True, needs_data=True, tr_net=_zc_tr_net)
