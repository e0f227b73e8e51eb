"""Benchmark definitions: one TOML file (or one CLI command) = one experiment of one kind.

This module knows no kind: each benchmark kind brings a :class:`KindSpec` (its keys with their
types, its defaults, its required keys and a ``validate`` function), kept next to its runner
(``harness/bench/kinds/<kind>.py``, the search kind in ``harness/search/``) and registered in one
place (:data:`harness.bench.kinds.KINDS`). Here: the checks every kind shares. Every key is checked
before any work starts: an unknown key, a wrong type, a value out of range is a
:class:`harness.HarnessError` naming the source, the key and the problem. A ``[full]`` table
deep-merges over the rest when the run asks for the full-size variant (GPU machines).
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import tomllib

from harness import HarnessError

#: Key types of a schema: a Python type, a number, a list, a free table, or a nested schema (a dict,
#: ``"*"`` matching any key).
STR, INT, BOOL, FLOAT = str, int, bool, (int, float)
LIST_STR = "list[str]"
LIST_INT = "list[int]"
TABLE = "table"

#: Keys of every kind.
COMMON = {"name": STR, "kind": STR, "description": STR, "space": STR, "full": TABLE, "ablation_of": STR}
#: Integer keys that must be >= 1 wherever they appear (``limit``, ``archs``, ``epochs`` may be 0
#: where documented).
POSITIVE = ("budget", "seeds", "workers", "sample", "draws", "top_k", "batch_size", "steps", "n_eval",
            "eval_batch_size", "i", "j", "cache_rounds", "limits", "cka_archs")
NON_NEGATIVE = ("seed_offset", "seed", "archs", "limit", "cutout", "threads", "epochs", "zc_timed", "cache_archs",
                "cka_epochs")
#: Sizes no run on one machine needs; larger ones would only hang it (a full-scale search is
#: 10 seeds x 100 queries; NB201 has 15,625 candidates). Workers: processes on this machine.
UPPER = {"budget": 1_000_000, "seeds": 10_000, "draws": 100_000, "workers": 4 * (os.cpu_count() or 1),
         "batch_size": 65_536, "archs": 1_000_000, "steps": 100_000, "n_eval": 1_000_000}


@dataclass(frozen=True)
class KindSpec:
    """What a definition of one kind may hold: ``schema`` (key -> type, besides :data:`COMMON`),
    ``defaults`` (every default; a definition's value wins), ``required`` keys, and ``validate``,
    which raises a :class:`HarnessError` for what the types cannot say (unknown names, ranges that
    depend on other keys), once the generic checks have passed."""

    name: str
    schema: dict
    defaults: dict
    validate: Callable[["Definition"], None]
    required: tuple = ()
    #: Proxy names the kind resolves itself before any proxy is built (the train kind's
    #: ``train:tr-net-auto``, whose depth the run chooses): no proxy family checks them.
    own_proxies: tuple = ()


@dataclass(frozen=True)
class Kind:
    """A registered benchmark kind: its :class:`KindSpec` and how a run of it goes.
    ``run(definition, store, batch_id, progress) -> DataFrame``; ``resume(definition, store)`` the
    unfinished batch of the same definition to continue, if the kind can; ``check(definition,
    batch)`` what a run needs beyond its file, checked before any work."""

    spec: KindSpec
    run: Callable[..., Any]
    resume: "Callable[..., str | None] | None" = None
    check: "Callable[..., None] | None" = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Definition:
    """A validated definition; ``defn[key]`` falls back to the kind's default."""

    source: str   # file path, or the CLI command that built it
    raw: dict
    spec: KindSpec = field(repr=False)
    #: When to stop (``time.time()``), between two candidates, for kinds that train them one by
    #: one (``rank``); a run option, not part of what the rows record: a rerun continues.
    stop_at: "float | None" = None

    def __getitem__(self, key: str) -> Any:
        if key in self.raw:
            return self.raw[key]
        return self.spec.defaults[key]

    def __contains__(self, key: str) -> bool:
        return key in self.raw or key in self.spec.defaults

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def kind(self) -> str:
        return self.raw["kind"]

    def as_config(self) -> dict:
        """Every option, defaults filled in: what each result row records."""
        return {**copy.deepcopy(self.spec.defaults), **copy.deepcopy(self.raw)}

    def one_of(self, key: str, value: Any, known) -> None:
        """Raise the one-line error for ``value`` of ``key`` not among ``known``."""
        if value not in known:
            raise HarnessError(f"{self.source}: key {key!r} = {value!r} is unknown (known: {', '.join(map(str, known))})")


def _type_ok(value: Any, spec: Any) -> bool:
    if spec == LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if spec == LIST_INT:
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if spec == TABLE:
        return isinstance(value, dict)
    if spec is INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def _spec_name(spec: Any) -> str:
    return {LIST_STR: "a list of strings", LIST_INT: "a list of integers", TABLE: "a table"}.get(spec, None) if isinstance(spec, str) \
        else ("a number" if isinstance(spec, tuple) else f"{'an' if spec is INT else 'a'} {spec.__name__}")


def _check(src: str, data: dict, schema: dict, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        spec = schema.get(key, schema.get("*"))
        if spec is None:
            raise HarnessError(f"{src}: unknown key {where!r} (known: {', '.join(k for k in schema if k != '*')})")
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise HarnessError(f"{src}: key {where!r} must be a table, got {type(value).__name__}")
            _check(src, value, spec, where + ".")
        elif not _type_ok(value, spec):
            raise HarnessError(f"{src}: key {where!r} must be {_spec_name(spec)}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):  # every row records the config as JSON
            raise HarnessError(f"{src}: key {where!r} must be a finite number, got {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):
            leaf = key if key != "*" else prefix.rstrip(".").rsplit(".", 1)[-1]
            if (leaf in POSITIVE or prefix.rstrip(".").rsplit(".", 1)[-1] in POSITIVE) and value < 1:
                raise HarnessError(f"{src}: key {where!r} must be >= 1, got {value}")
            if (leaf in NON_NEGATIVE or prefix.rstrip(".").rsplit(".", 1)[-1] in NON_NEGATIVE) and value < 0:
                raise HarnessError(f"{src}: key {where!r} must be >= 0, got {value}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_definition(raw: dict, source: str, kinds: Mapping[str, KindSpec], *, full: bool = False,
                     overrides: "dict | None" = None) -> Definition:
    """Validate a definition given as a dict against its kind in ``kinds`` (``[full]`` merged when
    asked, then ``overrides``)."""
    raw = copy.deepcopy(raw)
    for key in ("name", "kind"):
        if key not in raw:
            raise HarnessError(f"{source}: missing key {key!r}")
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in kinds:
        raise HarnessError(f"{source}: key 'kind' = {kind!r} is unknown (known: {', '.join(kinds)})")
    spec = kinds[kind]
    schema = {**COMMON, **spec.schema}
    _check(source, raw, schema)
    fullpart = raw.pop("full", {})
    _check(source, fullpart, {k: v for k, v in schema.items() if k != "full"}, "full.")
    if fullpart.get("kind", kind) != kind:  # its keys were checked against this kind's schema
        raise HarnessError(f"{source}: key 'full.kind' = {fullpart['kind']!r}: the full-size variant must be of "
                           f"the same kind ({kind!r})")
    if full:
        raw = _merge(raw, fullpart)
    if overrides:
        raw = _merge(raw, {k: v for k, v in overrides.items() if v is not None})
        _check(source, raw, schema)
    defn = Definition(source, raw, spec)
    _validate_generic(defn)
    spec.validate(defn)
    return defn


def load_definition(path: "str | Path", kinds: Mapping[str, KindSpec], *, full: bool = False,
                    overrides: "dict | None" = None) -> Definition:
    """Read and validate a TOML definition file."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"benchmark file {str(path)!r}: does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    return build_definition(raw, str(path), kinds, full=full, overrides=overrides)


def _file_safe(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and not name.startswith(".")


def _validate_generic(d: Definition) -> None:
    """Sizes, the name, the kind's required keys."""
    src = d.source
    for key, most in UPPER.items():
        if key in d.raw and isinstance(d.raw[key], int) and d.raw[key] > most:
            raise HarnessError(f"{src}: key {key!r} = {d.raw[key]} is more than this machine can run "
                               f"(at most {most:,}{' on its ' + str(os.cpu_count()) + ' cores' if key == 'workers' else ''})")
    name = d.name
    if not _file_safe(name):
        raise HarnessError(f"{src}: key 'name' = {name!r} must be a non-empty file-name-safe string "
                           "(letters, digits, '-', '_', '.')")
    of = d.raw.get("ablation_of")
    if of is not None and (not _file_safe(of) or of == name):
        raise HarnessError(f"{src}: key 'ablation_of' = {of!r} must name another benchmark definition "
                           "(letters, digits, '-', '_', '.')")
    for key in d.spec.required:
        if key not in d.raw:
            raise HarnessError(f"{src}: missing key {key!r} (needed by kind {d.kind!r})")
