import numpy as np
import pytest

from harness import HarnessError
from harness.spaces.nb201 import encoding as nb201

INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_round_trip_all_encodings_over_all_archs():
    seen = set()
    for i in range(nb201.NUM_ARCHS):
        ops = nb201.from_index(i)
        s = nb201.to_str(ops)
        assert nb201.parse(s) == ops
        assert nb201.from_naslib(nb201.to_naslib(ops)) == ops
        assert nb201.from_code(nb201.to_code(ops)) == ops
        assert nb201.index_of(s) == i
        assert nb201.index_of(ops) == i
        assert nb201.index_of(tuple(nb201.to_naslib(ops))) == i
        seen.add(s)
    assert len(seen) == nb201.NUM_ARCHS


def test_vectorised_indices_match_scalar():
    strs = [nb201.to_str(nb201.from_index(i)) for i in (0, 7, 15624, 1234)]
    assert nb201.indices_of(strs).tolist() == [0, 7, 15624, 1234]
    assert nb201.indices_of(np.array([3, 4])).tolist() == [3, 4]


def test_index0_is_the_benchmark_first_arch():
    assert nb201.to_str(nb201.from_index(0)) == INDEX0


def test_naslib_edge_and_op_order():
    # NASLib edge (1,4) == our node 0 -> node 3 (string position 3); op index 2 == nor_conv_3x3.
    ops = ("none", "none", "none", "nor_conv_3x3", "none", "none")
    assert nb201.to_naslib(ops) == (1, 1, 2, 1, 1, 1)
    assert nb201.from_naslib((0, 1, 1, 1, 1, 4)) == ("skip_connect", "none", "none", "none", "none", "avg_pool_3x3")


@pytest.mark.parametrize("bad, msg", [
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
    ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
    ("|none~3|+|none~0|none~1|+|none~0|none~1|none~2|", "must come from node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 incoming"),
    ("none~0+none~0|none~1+x", "must look like"),
])
def test_malformed_strings_name_the_input(bad, msg):
    with pytest.raises(HarnessError, match=msg) as e:
        nb201.parse(bad)
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize("bad", [-1, 15625])
def test_index_out_of_range(bad):
    with pytest.raises(HarnessError, match=f"arch index {bad} out of range"):
        nb201.from_index(bad)


def test_bad_naslib_and_ops():
    with pytest.raises(HarnessError, match="NASLib op indices"):
        nb201.from_naslib((0, 1, 2, 3, 4, 5))
    with pytest.raises(HarnessError, match="expected 6 op names"):
        nb201.to_str(("none",) * 5)


def test_mutation_changes_exactly_one_edge(rng):
    for mode in ("nb201", "uniform_edge"):
        ops = nb201.random_ops(rng)
        for _ in range(200):
            child = nb201.mutate(ops, rng, mode)
            assert sum(a != b for a, b in zip(ops, child)) == 1
            ops = child


def test_nb201_mutation_prefers_the_single_edge_into_node_1(rng):
    # Random node first, then an incoming edge: edge 0->1 is picked 1/3 of the time, not 1/6.
    base = ("none",) * 6
    hits = sum(nb201.mutate(base, rng, "nb201")[0] != "none" for _ in range(3000))
    assert 0.29 < hits / 3000 < 0.38
    hits = sum(nb201.mutate(base, rng, "uniform_edge")[0] != "none" for _ in range(3000))
    assert 0.13 < hits / 3000 < 0.21
