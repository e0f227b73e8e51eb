"""The NB201 cell space as Optuna parameters: one categorical ``edge_k`` per edge.

Edges follow NB201's string order (:data:`harness.spaces.nb201.EDGES`: 0->1, 0->2, 1->2, 0->3,
1->3, 2->3) and each chooses one of :data:`harness.spaces.nb201.OPS`, so a trial's params are
exactly one of the 5**6 = 15,625 cells (Dong & Yang, ICLR 2020).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from optuna.distributions import CategoricalDistribution

from harness import HarnessError
from harness.spaces.nb201 import encoding as nb201

PARAM_NAMES: tuple[str, ...] = tuple(f"edge_{k}" for k in range(nb201.NUM_EDGES))

#: param name -> distribution; samplers and objectives must use these very objects' values.
SEARCH_SPACE: dict[str, CategoricalDistribution] = {
    name: CategoricalDistribution(nb201.OPS) for name in PARAM_NAMES
}


def suggest_nb201(trial: Any) -> tuple[str, ...]:
    """Ask ``trial`` for one NB201 cell; returns its 6 op names in string order."""
    return tuple(trial.suggest_categorical(name, nb201.OPS) for name in PARAM_NAMES)


def ops_from_params(params: Mapping[str, Any]) -> tuple[str, ...]:
    """Trial params (``edge_0``..``edge_5``; other keys ignored) -> 6 op names."""
    missing = [name for name in PARAM_NAMES if name not in params]
    if missing:
        raise HarnessError(f"trial params {dict(params)!r}: missing {', '.join(missing)}")
    ops = tuple(params[name] for name in PARAM_NAMES)
    for name, op in zip(PARAM_NAMES, ops):
        if op not in nb201.OPS:
            raise HarnessError(f"trial param {name}={op!r}: unknown op (known: {', '.join(nb201.OPS)})")
    return ops


def params_from_ops(ops: Sequence[str]) -> dict[str, str]:
    """6 op names (string order) -> ``{"edge_0": op, ...}``."""
    ops = nb201.to_ops(tuple(ops))
    return dict(zip(PARAM_NAMES, ops))


def has_nb201_params(params: Mapping[str, Any]) -> bool:
    """Whether ``params`` hold a complete, valid NB201 cell."""
    return all(params.get(name) in nb201.OPS for name in PARAM_NAMES)
