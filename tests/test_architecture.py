"""docs/architecture.md's layer table is the import-linter contract, in order, and every module of
``harness/`` sits in exactly one layer of it (a new package cannot be left out of the contract)."""
import re
from pathlib import Path

import tomllib

import harness

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [sorted(part.strip() for part in layer.split("|")) for layer in contract["layers"]]


def documented_layers() -> list[list[str]]:
    text = DOC.read_text()
    table = text[text.index("| layer | what it holds |"):].split("\n\n", 1)[0].splitlines()[2:]
    return [sorted(re.findall(r"`(harness(?:\.[a-z_]+)*)`", row.split(" | ", 1)[0])) for row in table]


def test_the_documented_layers_are_the_contract_in_order():
    assert documented_layers() == contract_layers()


def test_report_is_the_layer_right_under_the_cli():
    assert contract_layers()[:2] == [["harness.cli"], ["harness.report"]]


def test_every_harness_module_is_in_exactly_one_layer():
    modules = {f"harness.{p.stem if p.is_file() else p.name}" for p in (ROOT / "harness").iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    listed = [m for layer in contract_layers() for m in layer]
    assert sorted(listed) == sorted(set(listed)), "a module is in two layers"
    assert set(listed) == modules


def test_where_a_new_thing_goes_names_paths_that_exist():
    text = DOC.read_text()
    table = text[text.index("| new | where | then |"):].split("\n\n", 1)[0]
    paths = re.findall(r"`(harness/[A-Za-z0-9_/.]+|tests/[A-Za-z0-9_/.]+)`", table)
    assert len(paths) >= 8
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_the_package_docstring_names_every_layer_in_order():
    """``harness.__doc__`` lists the real packages and top-level modules, top layer first."""
    named = [f"harness.{name}" for name in re.findall(r"``([a-z_]+)``", harness.__doc__)]
    order = {m: n for n, layer in enumerate(contract_layers()) for m in layer}
    assert sorted(named) == sorted(order), "every package and module named once"
    assert [order[m] for m in named] == sorted(order[m] for m in named), "in layer order"
