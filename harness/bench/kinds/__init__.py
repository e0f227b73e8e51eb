"""Benchmark kinds: each a ``run(definition, store, batch_id, progress) -> DataFrame``; a kind that can
resume a batch also has ``unfinished_batch(definition, store) -> batch_id | None``, and one that needs
more than its definition (a storage) a check of it. Kind ``search``
is the distributed search package's entry point, :mod:`harness.search.batch`."""
from typing import Callable

import pandas as pd

from harness.bench.kinds import cka, memory, oneshot, rank, throughput, train
from harness.search import batch as search

Run = Callable[..., pd.DataFrame]

KIND_RUNNERS: dict[str, Run] = {"search": search.run_batch, "rank": rank.run, "memory": memory.run,
                                "throughput": throughput.run, "cka": cka.run, "train": train.run,
                                "oneshot": oneshot.run}
#: Kinds that resume the unfinished batch of the same definition.
KIND_RESUMERS: dict[str, Callable[..., "str | None"]] = {"search": search.unfinished_batch}
#: Kinds with checks beyond the definition, run before any work: ``check(definition, batch)``.
KIND_CHECKS: dict[str, Callable[..., None]] = {"search": search.check_batch}
