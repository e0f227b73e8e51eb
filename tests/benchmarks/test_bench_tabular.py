"""Speed of the tabular benchmark: loading the table and a vectorised query of all 15,625 architectures
(guarded as medians in bench-ci, compared against the committed baseline)."""
import numpy as np

from harness.spaces.nb201 import encoding as nb201
from harness.tabular import nb201 as tab


def test_bench_table_load(benchmark):
    def load():
        tab._shipped.cache_clear()
        return tab.NB201Table.load()

    table = benchmark(load)
    assert len(table) == nb201.NUM_ARCHS


def test_bench_query_all_indices(benchmark):
    table = tab.NB201Table.load()
    idx = np.arange(nb201.NUM_ARCHS)
    vals = benchmark(table.query, idx, "cifar10", "test_acc", 200)
    assert vals.shape == (nb201.NUM_ARCHS,)


def test_bench_query_all_strings(benchmark):
    table = tab.NB201Table.load()
    strs = [nb201.to_str(nb201.from_index(i)) for i in range(nb201.NUM_ARCHS)]
    vals = benchmark(table.query, strs, "cifar10", "test_acc", 200)
    assert vals.shape == (nb201.NUM_ARCHS,)
