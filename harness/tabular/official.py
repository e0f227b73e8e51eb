"""Optional backends over the official NAS-Bench-201 files, for users who own them.

* NAS-Bench-201 API file ``NAS-Bench-201-v1_1-096897.pth`` (``pip install nas-bench-201``;
  Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search",
  ICLR 2020);
* NATS-Bench topology ``NATS-tss-v1_0-3ffb9-simple`` (``pip install nats_bench``; Dong et al.,
  "NATS-Bench: Benchmarking NAS Algorithms for Architecture Topology and Size", TPAMI 2021).

Both APIs answer ``get_more_info(index, dataset, iepoch=None, hp='12', is_random=True)``, and
``is_random`` is ``True`` (a *random* seed on every call), ``False`` (the mean over the seeds) or a
seed number (that one run). We always pass the epoch budget (``hp='12'`` / ``'200'``) and:

* seed-mean columns -> ``is_random=False``, so the numbers match the shipped table;
* one-seed columns (``test_acc_oneseed``) -> a fixed seed, never ``True``, so a column is the same
  on every load. By default (``oneseed_seeds=None``) the seed is, per architecture and dataset,
  the smallest one the file lists at that ``hp`` (``query_meta_info_by_index(i, hp)
  .get_dataset_seeds(dataset)``): reproducible without knowing the file's seeds in advance, and
  robust to architectures trained with fewer seeds. ``oneseed_seeds={200: 777}`` pins one seed
  per epoch budget instead (an architecture without it is an error). The choice is recorded in
  the table's ``source`` (``#oneseed=...``) and ``metadata["oneseed_seeds"]``.

Columns are fetched on first use (15,625 look-ups, seconds) and cached in the table object.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from harness import HarnessError
from harness.spaces.nb201 import encoding
from harness.tabular.nb201 import METRICS, NB201Table, column_name

#: ``oneseed_seeds`` default, spelled out: per architecture, the smallest seed the file lists.
SMALLEST_SEED = "smallest"

# (our dataset, metric) -> (API dataset name, info key). cifar10's validation accuracy lives in the
# "cifar10-valid" entry (trained on 25k); cifar100/ImageNet16-120 split their test set in halves.
_KEYS = {
    ("cifar10", "val_acc"): ("cifar10-valid", "valid-accuracy"),
    ("cifar10", "test_acc"): ("cifar10", "test-accuracy"),
    ("cifar100", "val_acc"): ("cifar100", "valid-accuracy"),
    ("cifar100", "test_acc"): ("cifar100", "test-accuracy"),
    ("ImageNet16-120", "val_acc"): ("ImageNet16-120", "valid-accuracy"),
    ("ImageNet16-120", "test_acc"): ("ImageNet16-120", "test-accuracy"),
}
ONESEED_METRIC = "test_acc_oneseed"


def load(path: "str | Path", oneseed_seeds: "Mapping[int, int] | None" = None) -> NB201Table:
    """An official file -> a lazily filled :class:`NB201Table` (the package is imported here)."""
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"benchmark file {str(path)!r}: does not exist")
    if path.suffix == ".pth":
        try:
            from nas_201_api import NASBench201API  # noqa: PLC0415 -- optional package
        except ImportError as e:
            raise HarnessError(f"benchmark file {str(path)!r}: needs the optional package nas-bench-201 "
                               "(pip install 'harness[nb201]')") from e
        api = NASBench201API(str(path), verbose=False)
    elif "NATS-tss" in path.name:
        try:
            from nats_bench import create  # noqa: PLC0415 -- optional package
        except ImportError as e:
            raise HarnessError(f"benchmark file {str(path)!r}: needs the optional package nats_bench "
                               "(pip install 'harness[nats]')") from e
        api = create(str(path), "tss", fast_mode=True, verbose=False)
    else:
        raise HarnessError(f"benchmark file {str(path)!r}: expected a .parquet table, a NAS-Bench-201 "
                           "'.pth' file or a NATS-Bench 'NATS-tss-*' file")
    return from_api(api, str(path), oneseed_seeds)


def from_api(api, source: str, oneseed_seeds: "Mapping[int, int] | None" = None) -> NB201Table:
    """A table over an API object with NB201's ``get_more_info`` / ``query_meta_info_by_index``."""
    seeds = _check_seeds(oneseed_seeds, source)
    tag = ",".join(f"{e}:{s}" for e, s in sorted(seeds.items())) if seeds else SMALLEST_SEED
    return NB201Table({}, source=f"{source}#oneseed={tag}", fetch=lambda d, m, e: _fetch(api, source, seeds, d, m, e),
                      metadata={"oneseed_seeds": dict(seeds) if seeds else SMALLEST_SEED})


def api_query(dataset: str, metric: str, epochs: int) -> tuple[str, str, str, bool]:
    """Our column -> (API dataset name, info key, ``hp``, whether it is a one-seed column)."""
    column_name(dataset, metric, epochs)
    one_seed = metric == ONESEED_METRIC
    api_dataset, key = _KEYS[(dataset, "test_acc" if one_seed else metric)]
    return api_dataset, key, str(epochs), one_seed


def _check_seeds(seeds: "Mapping[int, int] | None", source: str) -> dict[int, int]:
    out = {}
    for epochs, seed in (seeds or {}).items():
        if epochs not in METRICS[ONESEED_METRIC]:
            raise HarnessError(f"{source}: oneseed_seeds epochs {epochs!r}: {ONESEED_METRIC} is recorded after "
                               f"{METRICS[ONESEED_METRIC]} epochs only")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise HarnessError(f"{source}: oneseed_seeds[{epochs}] = {seed!r}: expected a seed number")
        out[int(epochs)] = int(seed)
    return out


def _seed(api, source: str, fixed: "int | None", index: int, api_dataset: str, hp: str) -> int:
    listed = sorted(int(s) for s in api.query_meta_info_by_index(index, hp=hp).get_dataset_seeds(api_dataset))
    if fixed is None and listed:
        return listed[0]
    if fixed is not None and fixed in listed:
        return fixed
    want = f"seed {fixed}" if fixed is not None else "any seed"
    raise HarnessError(f"{source}: architecture {index} has no {api_dataset!r} run with {want} at hp={hp} "
                       f"(seeds: {listed})")


def _fetch(api, source: str, seeds: dict[int, int], dataset: str, metric: str, epochs: int) -> np.ndarray:
    api_dataset, key, hp, one_seed = api_query(dataset, metric, epochs)
    out = np.empty(encoding.NUM_ARCHS)
    for i in range(encoding.NUM_ARCHS):
        is_random = _seed(api, source, seeds.get(epochs), i, api_dataset, hp) if one_seed else False
        info = api.get_more_info(i, api_dataset, iepoch=None, hp=hp, is_random=is_random)
        out[i] = info[key]
    return out
