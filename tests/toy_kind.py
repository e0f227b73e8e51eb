"""A toy benchmark kind, the example of docs/architecture.md "Adding a benchmark kind": one module
(its keys, defaults, validation and runner) plus one line in ``harness.bench.kinds.KINDS``.

Kind ``convcount`` ranks ``archs`` random architectures of a tabular space by their number of
convolutions, against the ground truth: a ``rank`` row with its 95% interval, like Table 1's.
"""
import numpy as np
import pandas as pd

from harness import HarnessError
from harness.analysis.rank import rank_proxy
from harness.definition.schema import INT, LIST_STR, Definition, Kind, KindSpec
from harness.proxies import GroundTruth
from harness.sections.context import run_meta
from harness.sections.schema import check_sections
from harness.spaces import get_space
from harness.store.results import ResultsStore

SCHEMA = {"datasets": LIST_STR, "archs": INT, "seed": INT}
DEFAULTS = {"space": "nb201", "datasets": ["cifar10"], "archs": 50, "seed": 0}


def validate(d: Definition) -> None:
    check_sections(d)  # space and datasets, as every kind
    if d["archs"] < 2:
        raise HarnessError(f"{d.source}: key 'archs' must be >= 2 to rank, got {d['archs']}")


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    space = get_space(defn["space"])
    rows = []
    for ds in defn["datasets"]:
        truth = GroundTruth(space, ds).vector()
        chosen = np.random.default_rng(defn["seed"]).choice(len(truth), size=defn["archs"], replace=False)
        values = np.full(len(truth), np.nan)
        values[chosen] = [space.format(space.canonical(int(a))).count("conv") for a in chosen]
        rows.append(rank_proxy(values, truth, dataset=ds, proxy_name="convcount", draws=1, seed=defn["seed"]).row())
    df = pd.DataFrame(rows).assign(truth="ground truth", **run_meta(defn, batch_id))
    store.append("rank", df)
    return df


KIND = Kind(KindSpec("convcount", SCHEMA, DEFAULTS, validate), run)
