"""The SearchSpace protocol, as properties every space must have (each registered space + the toy).

A new space gets these checks for free: register it in ``harness/spaces/__init__.py`` and it is
parametrized in here.
"""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, IntDistribution

from harness import HarnessError
from harness.spaces import SearchSpace, get_space, is_complete, space_names, suggest
from harness.spaces.nb201 import encoding as nb201
from harness.spaces.nb201.space import PARAM_NAMES

SPACE_NAMES = sorted(set(space_names()) | {"toy"})
seeds = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module", params=SPACE_NAMES)
def space(request, toy_space) -> SearchSpace:
    return get_space(request.param)


def in_distribution(value, dist) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, IntDistribution):
        return dist.low <= value <= dist.high and (value - dist.low) % dist.step == 0
    raise AssertionError(f"unexpected distribution {dist!r}")


def test_registered_spaces_satisfy_the_protocol(space):
    assert isinstance(space, SearchSpace)
    assert get_space(space.name) is space, "the registry hands out one instance, under its own name"
    assert space.mutations and all(isinstance(m, str) for m in space.mutations)
    assert space.distributions(), "a space with no parameters cannot be searched"


@FAST
@given(seed=seeds)
def test_text_format_round_trips(space, seed):
    arch = space.random(np.random.default_rng(seed))
    text = space.format(arch)
    assert isinstance(text, str)
    assert space.parse(text) == arch
    assert space.format(space.parse(text)) == text


@FAST
@given(seed=seeds)
def test_canonical_is_idempotent_and_accepts_text(space, seed):
    arch = space.random(np.random.default_rng(seed))
    assert space.canonical(arch) == arch
    assert space.canonical(space.canonical(arch)) == space.canonical(arch)
    assert space.canonical(space.format(arch)) == arch
    hash(arch)  # canonical encodings key caches and sets


@FAST
@given(seed=seeds)
def test_params_round_trip_and_lie_inside_the_distributions(space, seed):
    arch = space.random(np.random.default_rng(seed))
    params = space.to_params(arch)
    dists = space.distributions()
    assert list(params) == list(dists)
    for name, value in params.items():
        assert in_distribution(value, dists[name]), (name, value)
    assert space.from_params(params) == arch
    assert space.from_params({**params, "lr": 0.1}) == arch, "other keys are ignored"
    assert is_complete(space, params)
    assert suggest(space, optuna.trial.FixedTrial(params)) == arch


@FAST
@given(seed=seeds)
def test_mutation_changes_exactly_one_parameter(space, seed):
    rng = np.random.default_rng(seed)
    arch = space.random(rng)
    for mode in (None, *space.mutations):
        child = space.mutate(arch, rng, mode)
        assert space.canonical(child) == child, "a mutant is a canonical candidate of the space"
        before, after = space.to_params(arch), space.to_params(child)
        changed = [k for k in before if before[k] != after[k]]
        assert len(changed) == 1, (mode, arch, child)
    with pytest.raises(HarnessError):
        space.mutate(arch, rng, "no-such-mode")


def test_random_covers_every_choice(space):
    """Uniform draws: in 300 candidates every choice of every parameter shows up."""
    rng = np.random.default_rng(0)
    drawn = [space.to_params(space.random(rng)) for _ in range(300)]
    for name, dist in space.distributions().items():
        assert {p[name] for p in drawn} == set(dist.choices), name


def test_missing_or_bad_params_are_errors(space):
    params = space.to_params(space.random(np.random.default_rng(0)))
    first = next(iter(params))
    for bad in ({k: v for k, v in params.items() if k != first}, {**params, first: "no-such-op"}):
        with pytest.raises(HarnessError):
            space.from_params(bad)
        assert not is_complete(space, bad)


@pytest.mark.parametrize("text", ["", "garbage", "|||", "conv3x3", "x|y|z|w"])
def test_bad_text_is_a_harness_error(space, text):
    with pytest.raises(HarnessError):
        space.parse(text)


def test_networks_are_spliceable(space):
    import torch

    net = space.build_network(space.random(np.random.default_rng(0)), num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    net.eval()
    logits = net(x)
    assert logits.shape == (2, 7)
    positions = net.search_positions()
    assert positions == sorted(positions) and len(positions) >= 2
    tail = net.tail(positions[0] + 1)
    assert tail.inputs >= 1
    assert len(net.expected_input(positions[0] + 1, (3, 32, 32))) == 3


# -- NB201 specifics -----------------------------------------------------------------------------

NB201 = get_space("nb201")


@FAST
@given(index=st.integers(0, nb201.NUM_ARCHS - 1))
def test_nb201_encodings_round_trip(index):
    ops = nb201.from_index(index)
    text = nb201.to_str(ops)
    naslib = nb201.to_naslib(ops)
    assert nb201.index_of(text) == nb201.index_of(ops) == nb201.index_of(naslib) == index
    assert nb201.parse(text) == nb201.to_ops(index) == nb201.from_naslib(naslib) == ops
    assert NB201.canonical(index) == NB201.canonical(naslib) == NB201.parse(text) == ops
    assert NB201.index_of(NB201.format(ops)) == index
    assert nb201.from_code(nb201.to_code(ops)) == ops


def test_nb201_naslib_conversion_by_hand():
    """NASLib lists edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) and ops skip, none, 3x3, 1x1, pool."""
    ops = nb201.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    # string order: 0->1 3x3, 0->2 none, 1->2 skip, 0->3 pool, 1->3 1x1, 2->3 none
    # NASLib order: 0->1, 0->2, 0->3, 1->2, 1->3, 2->3
    assert nb201.to_naslib(ops) == (2, 1, 4, 0, 3, 1)


@FAST
@given(seed=seeds)
def test_nb201_mutation_is_hamming_one_with_a_new_op(seed):
    rng = np.random.default_rng(seed)
    ops = NB201.random(rng)
    for mode in NB201.mutations:
        child = NB201.mutate(ops, rng, mode)
        diff = [k for k in range(6) if ops[k] != child[k]]
        assert len(diff) == 1 and child[diff[0]] in nb201.OPS and child[diff[0]] != ops[diff[0]]


def test_nb201_space_layout():
    assert list(NB201.distributions()) == list(PARAM_NAMES) == [f"edge_{k}" for k in range(6)]
    assert all(d == CategoricalDistribution(nb201.OPS) for d in NB201.distributions().values())
    ops = nb201.parse(nb201.ALL_CONV3X3)
    assert NB201.to_params(ops) == {f"edge_{k}": "nor_conv_3x3" for k in range(6)}


@pytest.mark.parametrize("text, match", [
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|", "expected 3 nodes"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must come from node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 incoming"),
])
def test_nb201_bad_strings_name_the_problem(text, match):
    with pytest.raises(HarnessError, match=match):
        NB201.parse(text)
    with pytest.raises(HarnessError):
        nb201.index_of(text)
