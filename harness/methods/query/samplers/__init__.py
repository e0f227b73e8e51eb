"""Optuna samplers by name: Regularized Evolution and Optuna's own baselines (issue 5, items 1-2)."""
from __future__ import annotations

from typing import Any, Callable

import optuna

from harness import HarnessError
from harness.methods.query.samplers.rea import RegularizedEvolutionSampler


def _rea(seed: "int | None", **options: Any) -> optuna.samplers.BaseSampler:
    return RegularizedEvolutionSampler(seed=seed, **options)


def _random(seed: "int | None", **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **options)


def _tpe(seed: "int | None", **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, **options)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "rea": _rea, "random": _random, "tpe": _tpe,
}


def make_sampler(name: str, seed: "int | None" = None, **options: Any) -> optuna.samplers.BaseSampler:
    """A sampler by name (``rea``, ``random``, ``tpe``); ``options`` go to its constructor."""
    if name not in SAMPLERS:
        raise HarnessError(f"sampler {name!r}: unknown (known: {', '.join(SAMPLERS)})")
    try:
        return SAMPLERS[name](seed, **options)
    except TypeError as e:
        # An unknown keyword: name the sampler and the option rather than a Python signature.
        raise HarnessError(f"sampler {name!r}: bad options {sorted(options)}: {e}") from None


def is_stateless(sampler: optuna.samplers.BaseSampler) -> bool:
    """True when a sampler's randomness depends only on the trial, not on calls it has seen,
    so every worker may get the same seed."""
    return bool(getattr(sampler, "stateless", False))


__all__ = ["RegularizedEvolutionSampler", "SAMPLERS", "make_sampler", "is_stateless"]
