"""Proxies: how a candidate is scored (table columns, real training, recorded runs, zero-cost), by
name; each family of names is registered by one line here."""
from harness.proxies.base import GroundTruth, Proxy, Score
from harness.proxies.context import ProxyContext
from harness.proxies.families import RECORDED, TABLE, TRAIN, ZERO_COST_FAMILY
from harness.proxies.registry import ProxyFamily, make_proxy, proxy_family, register_proxy_family
from harness.proxies.settings import TRAIN_DATASET, TrainSettings, parse_method
from harness.proxies.table import TABLE_PROXIES, TableProxy
from harness.proxies.training import RecordedProxy, TrainProxy, train_candidate
from harness.proxies.zero_cost.measures import ZERO_COST, ZeroCostProxy

register_proxy_family(TABLE)
register_proxy_family(TRAIN)
register_proxy_family(RECORDED)
register_proxy_family(ZERO_COST_FAMILY)

__all__ = ["GroundTruth", "Proxy", "ProxyContext", "ProxyFamily", "RecordedProxy", "Score", "TABLE_PROXIES",
           "TRAIN_DATASET", "TableProxy", "TrainProxy", "TrainSettings", "make_proxy", "parse_method", "proxy_family",
           "register_proxy_family", "train_candidate", "ZERO_COST", "ZeroCostProxy"]
