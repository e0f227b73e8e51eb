"""Proxies: how a candidate is scored (table columns, real training, recorded runs, zero-cost), by name."""
from harness.proxies.base import GroundTruth, Proxy, Score
from harness.proxies.registry import ProxyContext, make_proxy, proxy_kind, proxy_method
from harness.proxies.settings import TRAIN_DATASET, TrainSettings, parse_method
from harness.proxies.table import TABLE_PROXIES, TableProxy
from harness.proxies.training import RecordedProxy, TrainProxy, train_candidate
from harness.proxies.zero_cost.measures import ZERO_COST, ZeroCostProxy

__all__ = ["GroundTruth", "Proxy", "ProxyContext", "RecordedProxy", "Score", "TABLE_PROXIES", "TRAIN_DATASET",
           "TableProxy", "TrainProxy", "TrainSettings", "make_proxy", "parse_method", "proxy_kind", "proxy_method",
           "train_candidate", "ZERO_COST", "ZeroCostProxy"]
