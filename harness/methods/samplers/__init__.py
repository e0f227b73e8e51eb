"""Optuna samplers by name: Regularized Evolution and Optuna's own random and TPE baselines.

Every sampler is built by :func:`make_sampler` from a name, a seed, the search space and the
definition's options; an option the sampler does not take is an error, never ignored.
"""
from __future__ import annotations

from typing import Any, Callable

import optuna

from harness import HarnessError
from harness.methods.samplers.rea import RegularizedEvolutionSampler
from harness.spaces import SearchSpace


def _rea(seed: "int | None", space: "SearchSpace | str", **options: Any) -> optuna.samplers.BaseSampler:
    return RegularizedEvolutionSampler(seed=seed, space=space, **options)


def _random(seed: "int | None", space: "SearchSpace | str", **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **options)


def _tpe(seed: "int | None", space: "SearchSpace | str", **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, **options)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "rea": _rea, "random": _random, "tpe": _tpe,
}


def make_sampler(name: str, seed: "int | None" = None, space: "SearchSpace | str" = "nb201", /,
                 **options: Any) -> optuna.samplers.BaseSampler:
    """A sampler by name (``rea``, ``random``, ``tpe``) for ``space``; ``options`` go to its constructor
    (positional-only parameters: an option named ``seed`` is a bad option, not a Python error)."""
    if name not in SAMPLERS:
        raise HarnessError(f"sampler {name!r}: unknown (known: {', '.join(SAMPLERS)})")
    try:
        return SAMPLERS[name](seed, space, **options)
    except TypeError as e:
        # An unknown keyword: name the sampler and the option rather than a Python signature.
        raise HarnessError(f"sampler {name!r}: bad options {sorted(options)}: {e}") from None


def is_stateless(sampler: optuna.samplers.BaseSampler) -> bool:
    """True when a sampler's randomness depends only on the trial, not on calls it has seen,
    so every worker may get the same seed."""
    return bool(getattr(sampler, "stateless", False))


__all__ = ["RegularizedEvolutionSampler", "SAMPLERS", "make_sampler", "is_stateless"]
