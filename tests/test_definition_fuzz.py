"""A property of validation, over definitions made by mutating the committed ones (benchmarks/**.toml):
each is either accepted, or refused with ONE line naming its file (``harness bench``: exit 2), and
either way nothing is written -- no results folder, no journal, no checkpoint -- and no traceback.

Validation only: every definition goes through :func:`build_definition` and the runner's
:func:`check_benchmark` in-process (a handful through ``harness bench --check``, the real CLI entry),
never through a run, so no generated definition can start training. The examples are drawn from a
fixed seed (``make test`` is reproducible); ``HARNESS_FUZZ_EXAMPLES=5000 HARNESS_FUZZ_RANDOM=1``
explores further.
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import HarnessError
from harness.bench.definitions import build_definition, kind_specs
from harness.bench.runner import check_benchmark
from harness.cli import main
from harness.proxies import TABLE_PROXIES, ZERO_COST

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "benchmarks").rglob("*.toml"))
BASES = {p.relative_to(ROOT).as_posix(): tomllib.loads(p.read_text()) for p in FILES}
EXAMPLES = int(os.environ.get("HARNESS_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("HARNESS_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

KINDS = tuple(kind_specs())
SCHEMAS = {name: spec.schema for name, spec in kind_specs().items()}


def _keys(schema: dict) -> set[str]:
    out = set()
    for key, spec in schema.items():
        out.add(key)
        if isinstance(spec, dict):
            out |= _keys(spec)
    return out - {"*"}


KNOWN_KEYS = sorted(_keys({k: v for schema in SCHEMAS.values() for k, v in schema.items()}) | {"name", "kind", "space"})
ODD_STRINGS = ["", " ", ".", "../../x", "a/b", "\t", "é", "\U0001F4A5", "nb201", "darts", "toy", "cifar10",
               "cifar10-valid", "ImageNet16-120", "original", "tr-net-5-5", "tr-supernet-5-5", "tr-supernet-99-1",
               "tr-net-0-0", "rea", "random", "tpe", "running", "batch", "fp32", "bf16", "embedded", "data",
               "x.npz", "nope/x.jsonl", "x.jsonl", "sqlite:///nope/x.db", "postgresql://postgres@127.0.0.1:1/x",
               "mysql://u@127.0.0.1:1/x", "ftp://x", "resnet20", "resnet99", *KINDS]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # TOML holds no lone surrogates
INTS = st.one_of(st.integers(-3, 40), st.sampled_from([-2**63, -2**31, 10**6, 2**31, 2**63 - 1]))
PROXIES = st.one_of(
    st.sampled_from([*TABLE_PROXIES, "train:original", "recorded:original", "zc:synflow", "zc:nope", "train:", "x"]),
    st.builds("{}tr-net-{}-{}".format, st.sampled_from(["train:", "recorded:", "zc:synflow@", "zc:jacov@"]),
              st.integers(-1, 30), st.integers(-1, 30)),
    st.builds("zc:{}".format, st.sampled_from(ZERO_COST)),
    TEXT,
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0, 1e300]))
SCALARS = st.one_of(INTS, FLOATS, st.booleans(),
                    st.sampled_from(ODD_STRINGS), TEXT, PROXIES)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(KNOWN_KEYS) | TEXT, inner,
                                                                       max_size=3)),
                      max_leaves=6)


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of ``d``, tables included."""
    out = []
    for k, v in d.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out += _paths(v, prefix + (k,))
    return out


def _table(d: dict, path: tuple) -> dict:
    for k in path:
        d = d[k]
    return d


def _near(old):
    """A value of about the kind already there: integers at and beyond their bounds, lists of
    proxy names and depths, odd strings."""
    if isinstance(old, bool) or not isinstance(old, (int, float, str, list)):
        return VALUES
    if isinstance(old, (int, float)):
        return st.one_of(INTS, FLOATS, st.sampled_from([old - 1, old + 1, -old, old * 1000, float(old), str(old)]))
    if isinstance(old, str):
        return st.one_of(st.sampled_from(ODD_STRINGS), PROXIES, INTS)
    return st.one_of(st.lists(PROXIES, max_size=3), st.lists(st.sampled_from(ODD_STRINGS), max_size=3),
                     st.lists(INTS, max_size=3), VALUES)


def _known_at(kind: str, table: tuple) -> list[str]:
    """The keys the kind's schema knows in the table at ``table`` (``full`` mirrors the top level)."""
    spec = {**SCHEMAS.get(kind, {}), "name": str, "kind": str, "space": str}
    for k in table[1:] if table[:1] == ("full",) else table:
        spec = spec.get(k, spec.get("*")) if isinstance(spec, dict) else None
    return sorted(k for k in spec if k != "*") if isinstance(spec, dict) else []


def _depth(draw, kind: str) -> dict:
    """A Tr-Net / Tr-Supernet depth where the kind takes one (i, j from -1 to 30)."""
    i, j = draw(st.integers(-1, 30)), draw(st.integers(-1, 30))
    if kind in ("memory", "throughput"):
        return {"i": i, "j": j}
    if kind == "oneshot":
        return {"supernets": ["original", f"tr-supernet-{i}-{j}"]}
    prefix = draw(st.sampled_from(["train:", "recorded:", "zc:synflow@", "zc:nwot@"]))
    return {"proxies": [f"{prefix}tr-net-{i}-{j}"]} if "proxies" in SCHEMAS.get(kind, {}) else {}


def _extend(raw: dict, more: dict) -> None:
    """Set the keys of ``more``; a list is appended to a list already there (kept: a proxy dropped
    would orphan its [train] epochs, and the refusal would say nothing about the new entries)."""
    for key, value in more.items():
        old = raw.get(key)
        raw[key] = old + value if isinstance(old, list) and isinstance(value, list) else value


@st.composite
def mutated(draw) -> tuple[str, dict, bool]:
    """(committed file, its definition with 1-3 mutations, whether its [full] table applies)."""
    name = draw(st.sampled_from(sorted(BASES)))
    raw = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 3))):
        kind = raw.get("kind") if isinstance(raw.get("kind"), str) else ""
        op = draw(st.sampled_from(["replace"] * 3 + ["delete", "add", "add", "proxies", "depth", "depth",
                                                     "network", "kind"]))
        paths = _paths(raw)
        if op == "replace" and paths:
            *table, key = draw(st.sampled_from(paths))
            _table(raw, table)[key] = draw(_near(_table(raw, table)[key]))
        elif op == "delete" and paths:
            *table, key = draw(st.sampled_from(paths))
            del _table(raw, table)[key]
        elif op == "add":  # mostly a key the table knows, with any value; else any key
            table = draw(st.sampled_from([()] + [p for p in paths if isinstance(_table(raw, p), dict)]))
            known = _known_at(kind, table)
            key = draw(st.sampled_from(known) | TEXT if known else TEXT | st.sampled_from(KNOWN_KEYS))
            _table(raw, table)[key] = draw(VALUES if key not in known else _near(BASES[name].get(key, 0)) | VALUES)
        elif op == "proxies" and "proxies" in SCHEMAS.get(kind, {}):
            _extend(raw, {"proxies": draw(st.lists(PROXIES, max_size=2))})
        elif op == "depth":
            _extend(raw, _depth(draw, kind))
        elif op == "network" and "train" in SCHEMAS.get(kind, {}):
            option = draw(st.sampled_from(["C", "N", "layers", "auxiliary", "drop_path_prob", "x"]))
            raw.setdefault("train", {})
            if isinstance(raw["train"], dict):
                # few distinct sizes: each new one builds a network (a 40-cell DARTS one takes a second)
                value = st.sampled_from([-1, 0, 1, 2, 3, 8, 10**6, 2**31, True, 0.5, math.nan, math.inf])
                raw["train"]["network"] = {option: draw(value)}
        elif op == "kind":
            raw["kind"] = draw(st.sampled_from(KINDS))
    return name, raw, draw(st.booleans())


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _refused_in_one_line(text: str, source: str) -> None:
    assert "\n" not in text.strip() and "Traceback" not in text, text
    assert source in text, f"the message does not name the file {source!r}: {text}"


@FUZZ
@given(case=mutated())
def test_mutated_definitions_are_valid_or_refused_in_one_line_writing_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths the definition names (storage, data, checkpoint) land here
    name, raw, full = case
    source = f"mutated-{Path(name).name}"
    try:
        defn = build_definition(raw, source, full=full)
        check_benchmark(defn, tmp_path / "results")
        json.dumps(defn.as_config(), allow_nan=False)  # every row records it: standard JSON, no NaN / Infinity
        event("accepted")
    except HarnessError as e:
        _refused_in_one_line(str(e), source)
        event("refused: " + str(e).split(": ", 2)[1][:40])  # the key (--hypothesis-show-statistics)
    assert _files(tmp_path) == [], "validation wrote something"


def _toml(raw: dict) -> str:
    """``raw`` as TOML (top-level keys, tables inline): enough for what the mutations make."""
    def key(k: str) -> str:
        return json.dumps(k, ensure_ascii=False).replace("\x7f", "\\u007f")

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return key(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"

    return "".join(f"{key(k)} = {value(v)}\n" for k, v in raw.items())


@settings(FUZZ, max_examples=max(EXAMPLES // 15, 10))
@given(case=mutated())
def test_mutated_definition_files_through_harness_bench_check(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name, raw, full = case
    path = tmp_path / f"mutated-{Path(name).name}"
    path.write_text(_toml(raw), encoding="utf-8")
    assert tomllib.loads(path.read_text(encoding="utf-8")).keys() == raw.keys()  # the file holds the mutation
    code = main(["bench", str(path), "--check", "--results", str(tmp_path / "results"), *(["--full"] if full else [])])
    out, err = capsys.readouterr()
    path.unlink()
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("harness bench: error: ") and out == ""
        _refused_in_one_line(err, str(path))
    else:
        assert err == "" and out.startswith(f"{path}: ok ({raw['kind']} ") and out.count("\n") == 1, out
    assert _files(tmp_path) == [], "harness bench --check wrote something"


@pytest.mark.parametrize("name", sorted(BASES))
def test_every_committed_definition_passes_the_check_unmutated(name, tmp_path):
    """The fuzz starts from valid definitions (a refusal of a mutation then says something)."""
    check_benchmark(build_definition(BASES[name], name), tmp_path / "results")
