"""The README and docs/ stay true to the code: every relative link resolves (anchors included),
every ``make <target>`` and ``harness <subcommand>`` they name exists, the definitions page lists
every registered kind and key with its type and default, ``make help`` lists
every Makefile target, and every CLI help ends with a runnable example.

Commands are looked for in code only (fenced blocks and inline code spans), where they are meant
to be typed; prose such as "make the mode" is not a command.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.bench.definitions import kind_specs
from harness.cli import build_parser
from harness.definition.schema import COMMON

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFINITIONS = ROOT / "docs" / "benchmark-definitions.md"

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MAKE = re.compile(r"(?<![\w./$-])make((?:[ \t]+[^\s;&|#`'\")]+)+)")
HARNESS = re.compile(r"(?<![\w.-])harness[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?")
TARGET = re.compile(r"^([A-Za-z0-9][\w.-]*)[ \t]*:(?!=)", re.M)

SPECS = kind_specs()
KINDS = tuple(SPECS)
SCHEMAS = {name: spec.schema for name, spec in SPECS.items()}
DEFAULTS = {name: spec.defaults for name, spec in SPECS.items()}


def split_code(text: str) -> tuple[str, list[str]]:
    """(prose without code, [code segments]): fenced blocks and inline spans."""
    code = [m.group(0) for m in FENCE.finditer(text)]
    prose = FENCE.sub("\n", text)
    code += [m.group(2) for m in SPAN.finditer(prose)]
    return SPAN.sub(" ", prose), code


def slugs(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1 -2 for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", FENCE.sub("", text), re.M):
        base = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture(scope="module")
def makefile_targets() -> set[str]:
    return set(TARGET.findall((ROOT / "Makefile").read_text()))


@pytest.fixture(scope="module")
def subcommands() -> dict[str, set[str]]:
    """Subcommand -> its own subcommands (empty when it has none)."""
    return {name: set(sub_choices(p)) for name, p in sub_choices(build_parser()).items()}


def sub_choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def test_docs_exist():
    assert (ROOT / "README.md").is_file() and DEFINITIONS.is_file()
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160, "README.md: keep the front page short"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_relative_links_resolve(doc):
    prose, _ = split_code(doc.read_text())
    bad = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text()):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{doc_id(doc)}: " + "; ".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_make_targets_exist(doc, makefile_targets):
    _, code = split_code(doc.read_text())
    named = {arg for segment in code for m in MAKE.finditer(segment) for arg in m.group(1).split()
             if re.fullmatch(r"[a-z][\w.-]*", arg)}  # not options (-s), variables (X=1), placeholders
    missing = sorted(named - makefile_targets)
    assert not missing, f"{doc_id(doc)} names make targets the Makefile lacks: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_harness_subcommands_exist(doc, subcommands):
    _, code = split_code(doc.read_text())
    bad = []
    for segment in code:
        for first, second in HARNESS.findall(segment):
            if first not in subcommands:
                bad.append(first)
            elif subcommands[first] and second not in subcommands[first]:
                bad.append(f"{first} {second}")
    assert not bad, f"{doc_id(doc)} names harness subcommands the CLI lacks: {sorted(set(bad))}"


# --------------------------------------------------------------------------- definitions page

def type_name(spec) -> str:
    if isinstance(spec, dict):
        return "table"
    names = {str: "string", int: "integer", bool: "boolean", (int, float): "number",
             "list[str]": "list of strings", "list[int]": "list of integers", "table": "table"}
    return names[spec]


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    return repr(value)


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    """``## heading`` -> {key: [cells after the key]} of the key tables in that section."""
    out: dict[str, dict[str, list[str]]] = {}
    rows: dict[str, list[str]] = {}
    columns = 0
    for line in text.splitlines():
        if line.startswith("## "):
            rows = out.setdefault(line[3:].strip(), {})
        elif line.startswith("| key |"):
            columns = line.count("|") - 1
        elif m := re.match(r"^\| `([\w.]+)` \|", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|", columns - 1)]
            rows[m.group(1)] = cells[1:]
    return out


def nested_tables() -> dict[str, dict]:
    """Table name -> the union of its keys' specs over every kind (``[train]``, ``[backbone]``, ...);
    wildcard tables (``sampler_options``: any sampler name) have no fixed keys."""
    tables: dict[str, dict] = {}
    for schema in SCHEMAS.values():
        for key, spec in schema.items():
            if isinstance(spec, dict) and "*" not in spec:
                tables.setdefault(key, {}).update(spec)
    return tables


@pytest.fixture(scope="module")
def definition_sections():
    return sections(DEFINITIONS.read_text())


def test_definitions_page_lists_every_kind(definition_sections):
    documented = {h.split("`")[1] for h in definition_sections if h.startswith("Kind `")}
    assert documented == set(KINDS), f"kinds: page has {sorted(documented)}, the code {sorted(KINDS)}"
    overview = set(re.findall(r"^\| `(\w+)` \| [^|]*\| [^|]*\|$", DEFINITIONS.read_text().split("## Kinds\n")[1]
                              .split("\n## ")[0], re.M))
    assert overview == set(KINDS), f"the Kinds table lists {sorted(overview)}, the code has {sorted(KINDS)}"


def check_rows(where: str, rows: dict, schema: dict, defaults: "dict | None") -> list[str]:
    """Problems of one section's rows against its schema (and defaults, when the table has them).
    A table key with fixed keys of its own must name them, unless it has its own section."""
    problems = [f"{where}: key {k!r} is not documented" for k in schema if k not in rows]
    problems += [f"{where}: documents {k!r}, which the code does not have" for k in rows if k not in schema]
    for key, spec in schema.items():
        if key not in rows:
            continue
        cells = rows[key]
        if cells[0] != type_name(spec):
            problems.append(f"{where}: {key!r} type is {type_name(spec)!r}, page says {cells[0]!r}")
        if defaults is not None:
            want = f"`{toml(defaults[key])}`" if key in defaults else "–"
            if cells[1] != want:
                problems.append(f"{where}: {key!r} default is {want}, page says {cells[1]}")
        if isinstance(spec, dict) and "*" not in spec and key not in nested_tables():
            problems += [f"{where}: {key!r} does not name its key `{sub}`" for sub in spec if f"`{sub}`" not in cells[-1]]
    return problems


def test_definitions_page_lists_every_key_type_and_default(definition_sections):
    problems = []
    for kind in KINDS:
        schema = {k: v for k, v in SCHEMAS[kind].items() if k not in COMMON}
        defaults = {k: v for k, v in DEFAULTS[kind].items() if k not in COMMON}
        problems += check_rows(f"Kind `{kind}`", definition_sections.get(f"Kind `{kind}`", {}), schema, defaults)
    common = definition_sections.get("Keys of every kind", {})
    for kind in KINDS:
        problems += check_rows(f"Keys of every kind ({kind})", common, COMMON,
                               {k: v for k, v in DEFAULTS[kind].items() if k in COMMON})
    for name, schema in nested_tables().items():
        problems += check_rows(f"Table `[{name}]`", definition_sections.get(f"Table `[{name}]`", {}), schema, None)
    assert not problems, "docs/benchmark-definitions.md is out of date:\n" + "\n".join(sorted(set(problems)))


# --------------------------------------------------------------------------- make help, CLI help

@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_target(makefile_targets):
    out = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    listed = {}
    for line in out.splitlines():
        name, _, desc = line.strip().partition(" ")
        listed[name] = desc.strip()
    missing = sorted(t for t in makefile_targets if not listed.get(t))
    assert not missing, f"give these targets a '## <one-line description>' on their rule line: {missing}"
    phony = set(re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split())
    assert makefile_targets <= phony, f"not in .PHONY: {sorted(makefile_targets - phony)}"


def all_parsers(parser: argparse.ArgumentParser, prefix: str = "harness"):
    yield prefix, parser
    for name, sub in sub_choices(parser).items():
        yield from all_parsers(sub, f"{prefix} {name}")


@pytest.mark.parametrize("name", [n for n, _ in all_parsers(build_parser())])
def test_every_help_ends_with_a_runnable_example(name):
    parser = dict(all_parsers(build_parser()))[name]
    help_text = parser.format_help().rstrip()
    assert "\nexample:\n" in help_text, f"{name} --help has no example"
    examples = help_text.rsplit("\nexample:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  harness ") for line in examples), examples
    for line in examples:
        argv = shlex.split(line.split("  #")[0])[1:]
        build_parser().parse_args(argv)  # exits (SystemExit) on a bad example
    assert examples[-1].split("  #")[0].split()[:len(name.split())] == name.split(), \
        f"{name} --help: the last example should run {name}"
