"""Search spaces by name: ``get_space("nb201")``. A new space registers one factory here."""
from __future__ import annotations

from typing import Callable

from harness import HarnessError
from harness.spaces.base import SearchSpace

_FACTORIES: dict[str, Callable[[], SearchSpace]] = {}
_INSTANCES: dict[str, SearchSpace] = {}


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    """Make ``factory()`` available as ``get_space(name)``; re-registering a name replaces it."""
    _FACTORIES[name] = factory
    _INSTANCES.pop(name, None)


def get_space(name: str) -> SearchSpace:
    if name not in _FACTORIES:
        raise HarnessError(f"search space {name!r}: unknown (known: {', '.join(space_names())})")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


def space_names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def dataset_order() -> tuple[str, ...]:
    """Every registered space's datasets, each once, in registration order: the order reports list
    datasets in."""
    return tuple(dict.fromkeys(ds for name in space_names() for ds in get_space(name).datasets))
