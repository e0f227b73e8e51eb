"""NAS-Bench-201 as a small object over one Parquet table (in the spirit of syne-tune's Blackbox).

NAS-Bench-201: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020 (splits and training setups: Sec. 2.2-2.3).

The shipped table ``nb201.parquet`` (built by ``scripts/build_nb201_table.py``) has one row per
architecture in benchmark-index order and, per dataset, the columns ``{dataset}/{metric}@{epochs}``:

==========================  ===============================================================
``val_acc@12``              12-epoch training (NB201 ``hp='12'``), seed mean, validation split:
                            cifar10 -> trained on the 25k train half ("cifar10-valid"),
                            evaluated on the other 25k; cifar100 / ImageNet16-120 -> trained on
                            the full train set, evaluated on the x-valid half of the test set.
``test_acc@12``             same runs, test split: cifar10 -> trained on 50k, tested on the
                            official 10k; cifar100 / ImageNet16-120 -> the x-test half.
``test_acc@200``            200-epoch final test accuracy, mean over the benchmark's seeds
                            (NATS-Bench export): the ground truth proxies are ranked against.
``test_acc_oneseed@12/200`` one training run instead of the seed mean (noise ceiling).
==========================  ===============================================================

Accuracies are percentages; floats are the benchmark's own float64 values, bit-exact.
Encodings are converted by :mod:`harness.spaces.nb201.encoding`, never here. This module reads
Parquet only; the official API files are :mod:`harness.tabular.official`, and
:mod:`harness.tabular.registry` picks between the two.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pyarrow.parquet as pq

from harness import HarnessError
from harness.spaces.nb201 import encoding

DATASETS: tuple[str, ...] = encoding.DATASETS
#: metric -> epoch budgets available for it.
METRICS: dict[str, tuple[int, ...]] = {"val_acc": (12,), "test_acc": (12, 200), "test_acc_oneseed": (12, 200)}
GROUND_TRUTH = ("test_acc", 200)


def column_name(dataset: str, metric: str, epochs: int) -> str:
    if dataset not in DATASETS:
        raise HarnessError(f"dataset {dataset!r}: unknown (known: {', '.join(DATASETS)})")
    if metric not in METRICS:
        raise HarnessError(f"metric {metric!r}: unknown (known: {', '.join(METRICS)})")
    if epochs not in METRICS[metric]:
        raise HarnessError(f"epochs {epochs!r}: {metric} is recorded after {METRICS[metric]} epochs only")
    return f"{dataset}/{metric}@{epochs}"


class NB201Table:
    """All 15,625 NB201 architectures' accuracies; vectorised queries by any encoding.

    Implements :class:`harness.tabular.base.TabularBenchmark` (row = benchmark index).
    ``fetch`` builds a column on first use (the official-API backends do that); the shipped
    Parquet table hands over all columns up front. ``metadata`` records how the numbers were
    obtained where that is a choice (e.g. the one-seed columns' seed, see
    :mod:`harness.tabular.official`).
    """

    space = "nb201"
    datasets = DATASETS
    num_archs = encoding.NUM_ARCHS

    def __init__(self, columns: dict[str, np.ndarray], source: str,
                 fetch: "Callable[[str, str, int], np.ndarray] | None" = None,
                 metadata: "Mapping[str, object] | None" = None):
        self._columns = dict(columns)
        self._fetch = fetch
        self.source = source
        self.metadata = dict(metadata or {})

    @classmethod
    def load(cls, path: "str | Path | None" = None) -> "NB201Table":
        """The shipped table (cached) or a Parquet file of the same layout.

        The official NAS-Bench-201 / NATS-Bench files load through
        ``harness.tabular.get_table("nb201", path)`` (see :mod:`harness.tabular.official`).
        """
        if path is None:
            return _shipped()
        p = Path(path)
        if not p.exists():
            raise HarnessError(f"benchmark file {str(p)!r}: does not exist")
        if p.suffix != ".parquet":
            raise HarnessError(f"benchmark file {str(p)!r}: not a .parquet table (official NAS-Bench-201 / "
                               "NATS-Bench files load through harness.tabular.get_table('nb201', path))")
        return cls._from_parquet(p)

    @classmethod
    def _from_parquet(cls, path: "Path | object") -> "NB201Table":
        # Numeric columns only, straight from Arrow: strings are derivable from the index and
        # would triple the load time.
        names = pq.read_schema(path).names
        if "index" not in names:
            raise HarnessError(f"benchmark file {str(path)!r}: has no 'index' column")
        t = pq.read_table(path, columns=["index"] + [c for c in names if "/" in c])
        if t.num_rows != encoding.NUM_ARCHS or not np.array_equal(t["index"].to_numpy(), np.arange(encoding.NUM_ARCHS)):
            raise HarnessError(f"benchmark file {str(path)!r}: expected {encoding.NUM_ARCHS} rows in index order")
        return cls({c: t[c].to_numpy() for c in t.column_names if "/" in c}, source=str(path))

    def column(self, dataset: str, metric: str = "val_acc", epochs: int = 12) -> np.ndarray:
        """One metric for all architectures, row = benchmark index (read-only view)."""
        name = column_name(dataset, metric, epochs)
        if name not in self._columns:
            if self._fetch is None:
                raise HarnessError(f"{self.source}: has no column {name!r}")
            self._columns[name] = np.asarray(self._fetch(dataset, metric, epochs), dtype=np.float64)
        col = self._columns[name]
        col.flags.writeable = False
        return col

    def query(self, archs, dataset: str = "cifar10", metric: str = "val_acc", epochs: int = 12):
        """Accuracy (%) of one architecture (float) or many (array), given any encoding(s).

        ``archs`` may be an NB201 string, an index, a 6-tuple of op names, a 6-tuple of NASLib op
        indices, or a list / int array of those.
        """
        col = self.column(dataset, metric, epochs)
        if _is_single(archs):
            return float(col[encoding.index_of(archs)])
        return col[encoding.indices_of(archs)]

    def lookup(self, arch, dataset: str, metric: str, epochs: int) -> float:
        """One architecture (any encoding) -> its ``metric@epochs`` on ``dataset`` (%)."""
        return float(self.column(dataset, metric, epochs)[encoding.index_of(arch)])

    def ground_truth(self, dataset: str) -> np.ndarray:
        """200-epoch test accuracy, mean over the benchmark's seeds (NB201 paper, Sec. 2.3)."""
        return self.column(dataset, *GROUND_TRUTH)

    def metrics(self) -> dict[str, tuple[int, ...]]:
        return dict(METRICS)

    def index_of(self, arch) -> int:
        """Any NB201 encoding (string, index, 6 op names, 6 NASLib op indices) -> row."""
        return encoding.index_of(arch)

    def indices_of(self, archs) -> np.ndarray:
        return encoding.indices_of(archs)

    def arch_str(self, index: int) -> str:
        return encoding.to_str(encoding.from_index(index))

    def __len__(self) -> int:
        return encoding.NUM_ARCHS


def _is_single(archs) -> bool:
    """One architecture: a string, an index, 6 op names, or a *tuple* of 6 NASLib op indices.

    A *list* or array of ints is read as many benchmark indices.
    """
    if isinstance(archs, (str, int, np.integer)):
        return True
    if isinstance(archs, (tuple, list)) and len(archs) == encoding.NUM_EDGES:
        if all(isinstance(a, str) for a in archs):
            return all(a in encoding.OPS for a in archs)
        return isinstance(archs, tuple) and all(isinstance(a, (int, np.integer)) for a in archs)
    return False


@lru_cache(maxsize=1)
def _shipped() -> NB201Table:
    path = resources.files("harness.tabular").joinpath("nb201.parquet")
    with resources.as_file(path) as p:
        return NB201Table._from_parquet(p)


def iter_datasets(names: "Iterable[str] | str") -> list[str]:
    """``'all'`` or names -> validated dataset names."""
    names = [names] if isinstance(names, str) else list(names)
    if names == ["all"]:
        return list(DATASETS)
    for n in names:
        column_name(n, "val_acc", 12)
    return names
