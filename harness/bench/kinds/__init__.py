"""Benchmark kinds, registered here, one entry each: a kind is one module holding its definition's
keys, defaults and validation (:class:`harness.definition.schema.KindSpec`) next to its runner,
bound in a :class:`harness.definition.schema.Kind`. Kind ``search`` is the distributed search
package's entry point (:mod:`harness.search.batch`, its keys in :mod:`harness.search.spec`)."""
from harness.bench.kinds import cka, memory, oneshot, rank, throughput, train
from harness.definition.schema import Kind
from harness.search import batch as search

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    search.KIND,
    rank.KIND,
    memory.KIND,
    throughput.KIND,
    cka.KIND,
    train.KIND,
    oneshot.KIND,
)}
