"""Reading and validating benchmark definitions of the registered kinds (:data:`harness.bench.kinds.KINDS`):
what the CLI, the scripts and the tests call. The generic checks are
:mod:`harness.definition.schema`'s; each kind's own are in its module."""
from __future__ import annotations

from pathlib import Path

from harness.bench.kinds import KINDS
from harness.definition import schema
from harness.definition.schema import Definition, KindSpec


def kind_specs() -> dict[str, KindSpec]:
    """Name -> :class:`KindSpec` of every registered kind, in registry order."""
    return {name: kind.spec for name, kind in KINDS.items()}


def build_definition(raw: dict, source: str, *, full: bool = False, overrides: "dict | None" = None) -> Definition:
    """Validate a definition given as a dict (``[full]`` merged when asked, then ``overrides``)."""
    return schema.build_definition(raw, source, kind_specs(), full=full, overrides=overrides)


def load_definition(path: "str | Path", *, full: bool = False, overrides: "dict | None" = None) -> Definition:
    """Read and validate a TOML definition file."""
    return schema.load_definition(path, kind_specs(), full=full, overrides=overrides)
