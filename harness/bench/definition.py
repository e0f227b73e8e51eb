"""Parse and validate one benchmark definition file (TOML).

Every key is checked: an unknown key, a wrong type, an unknown dataset / sampler / method or a
budget <= 0 is a :class:`harness.HarnessError` naming the file, the key and the problem. A
``[full]`` table deep-merges over the rest when the run asks for the full-size variant (GPU).

Kinds:

``kind = "search"``  Optuna search over NB201: ``datasets``, ``samplers``, ``budget``, ``seeds``,
                     ``[evaluator]`` (``kind = "tabular" | "train" | "recorded"``), optional
                     ``[sampler_options.<name>]`` and, for real training, ``[backbone]``.
``kind = "rank"``    rank correlation of table proxies (``proxies``, ``sample``, ``draws``,
                     ``top_k``, ``ties``) and, with ``[train]``, of real-trained proxies.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HarnessError

_STR, _INT, _BOOL, _FLOAT = str, int, bool, (int, float)
_LIST_STR = "list[str]"
_TABLE = "table"

SCHEMA: dict[str, Any] = {
    "name": _STR, "kind": _STR, "description": _STR, "space": _STR, "datasets": _LIST_STR,
    "samplers": _LIST_STR, "budget": _INT, "seeds": _INT, "seed_offset": _INT, "workers": _INT,
    "proxies": _LIST_STR, "sample": _INT, "draws": _INT, "top_k": _INT, "ties": _STR,
    "sampler_options": {"*": _TABLE},
    "evaluator": {"kind": _STR, "metric": _STR, "epochs": _INT, "methods": _LIST_STR, "data": _STR,
                  "limit": _INT, "batch_size": _INT, "cutout": _INT, "on_miss": _STR, "record": _STR,
                  "method_epochs": {"*": _INT}, "method_warmup": {"*": _INT}},
    "train": {"archs": _INT, "methods": _LIST_STR, "data": _STR, "limit": _INT, "batch_size": _INT,
              "method_epochs": {"*": _INT}, "method_warmup": {"*": _INT}, "record": _STR},
    "backbone": {"name": _STR, "epochs": _INT, "checkpoint": _STR, "batch_size": _INT},
    "full": _TABLE,
}
KINDS = ("search", "rank")
EVALUATORS = ("tabular", "train", "recorded")


@dataclass
class Definition:
    path: Path
    raw: dict

    def __getitem__(self, key):
        return self.raw[key]

    def __contains__(self, key) -> bool:
        return key in self.raw

    def get(self, key, default=None):
        return self.raw.get(key, default)

    @property
    def name(self) -> str:
        return self.raw["name"]


def _type_ok(value: Any, spec: Any) -> bool:
    if spec == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if spec == _TABLE:
        return isinstance(value, dict)
    if spec is _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def _spec_name(spec: Any) -> str:
    if isinstance(spec, dict):
        return "table"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, tuple):
        return "number"
    return spec.__name__


def _check(path: Path, data: dict, schema: dict, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        spec = schema.get(key, schema.get("*"))
        if spec is None:
            raise HarnessError(f"{path}: unknown key {where!r} (known: {', '.join(k for k in schema if k != '*')})")
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise HarnessError(f"{path}: key {where!r} must be a table, got {type(value).__name__}")
            _check(path, value, spec, where + ".")
        elif not _type_ok(value, spec):
            raise HarnessError(f"{path}: key {where!r} must be {_spec_name(spec)}, got {value!r}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_definition(path: "str | Path", *, full: bool = False, overrides: "dict | None" = None) -> Definition:
    """Read, merge (``[full]`` when asked, then ``overrides``), and validate a definition."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"benchmark file {str(path)!r}: does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    _check(path, raw, SCHEMA)
    fullpart = raw.pop("full", {})
    _check(path, fullpart, {k: v for k, v in SCHEMA.items() if k != "full"}, "full.")
    if full:
        raw = _merge(raw, fullpart)
    if overrides:
        raw = _merge(raw, {k: v for k, v in overrides.items() if v is not None})
        _check(path, raw, SCHEMA)
    _validate(path, raw)
    return Definition(path, raw)


def _validate(path: Path, d: dict) -> None:
    from harness.analysis.rank import TABLE_PROXIES, TIES
    from harness.methods.query.samplers import SAMPLERS
    from harness.tabular.nb201 import DATASETS, METRICS
    from harness.proxies.training import parse_method

    def need(key: str) -> None:
        if key not in d:
            raise HarnessError(f"{path}: missing key {key!r}")

    def one_of(key: str, value: str, known) -> None:
        if value not in known:
            raise HarnessError(f"{path}: key {key!r}: unknown value {value!r} (known: {', '.join(known)})")

    def positive(key: str, value: int) -> None:
        if value <= 0:
            raise HarnessError(f"{path}: key {key!r} must be > 0, got {value}")

    for key in ("name", "kind", "datasets"):
        need(key)
    one_of("kind", d["kind"], KINDS)
    one_of("space", d.get("space", "nb201"), ("nb201",))
    if not d["datasets"]:
        raise HarnessError(f"{path}: key 'datasets' must not be empty")
    for ds in d["datasets"]:
        one_of("datasets", ds, DATASETS)
    for key in ("budget", "seeds", "workers", "sample", "draws", "top_k"):
        if key in d:
            positive(key, d[key])
    for section in ("evaluator", "train"):
        for m in d.get(section, {}).get("methods", []):
            try:
                parse_method(m)
            except HarnessError as e:
                raise HarnessError(f"{path}: key '{section}.methods': {e}") from None
    if d["kind"] == "search":
        for key in ("samplers", "budget", "seeds", "evaluator"):
            need(key)
        for s in d["samplers"]:
            one_of("samplers", s, SAMPLERS)
        for s in d.get("sampler_options", {}):
            one_of("sampler_options", s, SAMPLERS)
        ev = d["evaluator"]
        one_of("evaluator.kind", ev.get("kind", ""), EVALUATORS)
        if ev["kind"] == "tabular":
            one_of("evaluator.metric", ev.get("metric", "val_acc"), METRICS)
        elif not ev.get("methods"):
            raise HarnessError(f"{path}: key 'evaluator.methods' must list at least one method for {ev['kind']!r}")
    else:
        for p in d.get("proxies", []):
            one_of("proxies", p, TABLE_PROXIES)
        one_of("ties", d.get("ties", "drop"), TIES)
