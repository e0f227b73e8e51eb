"""Optional backends over the official benchmark files, for users who own them.

* NAS-Bench-201 API file ``NAS-Bench-201-v1_1-096897.pth`` (``pip install nas-bench-201``);
* NATS-Bench topology ``NATS-tss-v1_0-3ffb9-simple`` (``pip install nats_bench``).

Both APIs default to ``hp='12'`` and ``is_random=True`` (one random seed); we always ask for the
seed mean (``is_random=False``) and the epoch budget explicitly, so the numbers match the shipped
table. Columns are fetched on first use (15,625 look-ups, seconds) and cached in the table object.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness import HarnessError
from harness.spaces.nb201 import encoding as space
from harness.tabular.nb201 import NB201Table

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


def load(path: Path) -> NB201Table:
    if path.suffix == ".pth":
        try:
            from nas_201_api import NASBench201API
        except ImportError as e:
            raise HarnessError(f"benchmark file {str(path)!r}: needs the optional package nas-bench-201 "
                               "(pip install 'harness[nb201]')") from e
        api = NASBench201API(str(path), verbose=False)
    elif "NATS-tss" in path.name:
        try:
            from nats_bench import create
        except ImportError as e:
            raise HarnessError(f"benchmark file {str(path)!r}: needs the optional package nats_bench "
                               "(pip install 'harness[nats]')") from e
        api = create(str(path), "tss", fast_mode=True, verbose=False)
    else:
        raise HarnessError(f"benchmark file {str(path)!r}: expected a .parquet table, a NAS-Bench-201 "
                           "'.pth' file or a NATS-Bench 'NATS-tss-*' file")
    return NB201Table({}, source=str(path), fetch=lambda d, m, e: _fetch(api, d, m, e))


def _fetch(api, dataset: str, metric: str, epochs: int) -> np.ndarray:
    one_seed = metric == "test_acc_oneseed"
    api_dataset, key = _KEYS[(dataset, "test_acc" if one_seed else metric)]
    out = np.empty(space.NUM_ARCHS)
    for i in range(space.NUM_ARCHS):
        info = api.get_more_info(i, api_dataset, iepoch=None, hp=str(epochs), is_random=one_seed)
        out[i] = info[key]
    return out
