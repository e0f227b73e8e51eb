"""What a search space is: the protocol every space implements.

A *space* says what a candidate is and nothing about how it is scored or searched: its text
format, a canonical (hashable) encoding, the Optuna distributions a search samples, random
sampling and mutation (for REA), how to build the candidate's network and the space's
supernet, and the datasets a benchmark of the space may use. Samplers, proxies and the splice only talk to spaces through this protocol, so adding
a space is one package under ``harness/spaces/`` plus one ``register_space`` line.

The network a space builds must be *spliceable* (paper Sec. 3.2): it exposes ``search_positions``
(where search cells 1..L sit in its body) and ``tail(start)`` (a module running the body from
position ``start`` to the logits), which is all :mod:`harness.transfer.splice` needs.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, Protocol, runtime_checkable

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from torch import nn

from harness import HarnessError

Arch = Hashable  # a space's canonical encoding, e.g. NB201's 6-tuple of op names


@runtime_checkable
class SearchSpace(Protocol):
    name: str
    #: Mutation modes ``mutate`` accepts; the first is the default.
    mutations: tuple[str, ...]
    #: The table datasets a benchmark of this space may name (each trains on its training
    #: dataset: ``harness.proxies.settings.TRAIN_DATASET``). The space's original training recipe
    #: is a training matter: ``harness.train.recipe.SPACE_RECIPES``, by space name.
    datasets: tuple[str, ...]

    def parse(self, text: str) -> Arch:
        """The space's text format (e.g. an NB201 string) -> canonical encoding."""

    def format(self, arch: Arch) -> str:
        """Canonical encoding -> the text format; ``parse(format(a)) == a``."""

    def canonical(self, arch: Any) -> Arch:
        """Any encoding the space accepts (text, index, ...) -> canonical encoding."""

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna parameter name -> distribution; one complete assignment is one candidate."""

    def to_params(self, arch: Arch) -> dict[str, Any]:
        """Canonical encoding -> Optuna params (keys of :meth:`distributions`)."""

    def from_params(self, params: Mapping[str, Any]) -> Arch:
        """Optuna params -> canonical encoding (other keys ignored; missing or bad -> error)."""

    def random(self, rng: np.random.Generator) -> Arch:
        """One candidate drawn uniformly."""

    def mutate(self, arch: Arch, rng: np.random.Generator, mode: "str | None" = None) -> Arch:
        """One mutation (REA): a different candidate one step away; ``mode`` from ``mutations``."""

    def build_network(self, arch: Arch, num_classes: int = 10, **options: Any) -> nn.Module:
        """The candidate's stand-alone (spliceable) network."""

    def build_supernet(self, num_classes: int = 10, **options: Any) -> nn.Module:
        """The one-shot supernet over the whole space."""


def suggest(space: SearchSpace, trial: Any) -> Arch:
    """Ask an Optuna trial for one candidate of ``space``, parameter by parameter in the order of
    ``space.distributions()`` (the order fixes what seeded samplers draw)."""
    params = {}
    for name, dist in space.distributions().items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step)
        else:
            raise HarnessError(f"space {space.name!r}: parameter {name!r} has an unsupported distribution "
                               f"{type(dist).__name__} (categorical or int only)")
    return space.from_params(params)


def is_complete(space: SearchSpace, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` hold one valid candidate of ``space``."""
    try:
        space.from_params(params)
    except HarnessError:
        return False
    return True
