"""Kind ``train``: train given candidates once each with each ``train:<method>`` proxy; every run
is a row of the ``train`` table (what ``recorded:<method>`` proxies replay)."""
from __future__ import annotations

import pandas as pd

from harness.bench.context import proxy_context
from harness.bench.definition import Definition
from harness.proxies import make_proxy
from harness.store.results import ResultsStore


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    rows = []
    for ds in defn["datasets"]:
        ctx = proxy_context(defn, ds, store, batch_id, progress)
        for name in defn["proxies"]:
            proxy = make_proxy(name, ctx)
            for a in defn["arch_list"]:
                rows.append(proxy.train_row(ctx.space.canonical(int(a) if a.isdigit() else a)))
    return pd.DataFrame(rows)
