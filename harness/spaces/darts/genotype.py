"""DARTS genotypes: the text format the DARTS code and NASLib print, parsed without ``eval``.

``Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
reduce=[...], reduce_concat=[2, 3, 4, 5])`` (Liu et al., ICLR 2019, reference ``genotypes.py``;
``range(2, 6)`` is accepted for a concat, as Python 3 prints the reference's). Each cell has 4
intermediate nodes, numbered 2..5 as in the reference (0 and 1 are the cell's two inputs); node k
is the sum of two ops applied to two *different* earlier nodes, listed as the pairs
``2(k-2)`` and ``2(k-2)+1``; the cell output concatenates nodes 2..5.

The text is read with :func:`ast.parse` (a parser: nothing is evaluated) and only literal
strings, integers, lists/tuples and ``range(a, b)`` are accepted. The order of the two pairs of
a node is kept: it is the order of the evaluation network's modules (so the parameters a seed
draws), and the Optuna encoding keeps it too.
"""
from __future__ import annotations

import ast
from typing import Any, NamedTuple

from harness import HarnessError
from harness.spaces.darts.ops import GENOTYPE_OPS

STEPS = 4
CONCAT: tuple[int, ...] = tuple(range(2, 2 + STEPS))
CELLS = ("normal", "reduce")
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

Pair = tuple[str, int]


class Genotype(NamedTuple):
    """The canonical encoding: tuples throughout, so it is hashable."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def cell(self, kind: str) -> tuple[Pair, ...]:
        return self.normal if kind == "normal" else self.reduce


DARTS_V1 = "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501
DARTS_V2 = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _literal(node: ast.AST, src: str, what: str) -> Any:
    """A literal of the restricted grammar: str, int, list/tuple of literals, ``range(a, b)``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, src, what) for e in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 2):
        bounds = [_literal(a, src, what) for a in node.args]
        if all(isinstance(b, int) for b in bounds):
            return list(range(*bounds))
    raise HarnessError(f"genotype {_short(src)!r}: {what} must be literals (strings, integers, lists, "
                       f"range(a, b)), got {ast.dump(node)[:40]}")


def parse(text: str) -> Genotype:
    """``Genotype(...)`` text -> validated :class:`Genotype`."""
    if not isinstance(text, str):
        raise HarnessError(f"genotype {text!r}: expected text like {DARTS_V2[:40]}...")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise HarnessError(f"genotype {_short(text)!r}: expected Genotype(normal=[(op, input), ...], "
                           "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])")
    if len(tree.args) > len(_FIELDS):
        raise HarnessError(f"genotype {_short(text)!r}: {len(tree.args)} positional fields, expected at most 4")
    fields = {name: _literal(arg, text, name) for name, arg in zip(_FIELDS, tree.args)}
    for kw in tree.keywords:
        if kw.arg not in _FIELDS or kw.arg in fields:
            raise HarnessError(f"genotype {_short(text)!r}: field {kw.arg!r} is unknown or given twice "
                               f"(fields: {', '.join(_FIELDS)})")
        fields[kw.arg] = _literal(kw.value, text, kw.arg)
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise HarnessError(f"genotype {_short(text)!r}: missing field {', '.join(missing)}")
    return validate(fields["normal"], fields["normal_concat"], fields["reduce"], fields["reduce_concat"])


def validate(normal: Any, normal_concat: Any, reduce: Any, reduce_concat: Any) -> Genotype:
    """Check one genotype given as plain sequences; errors name the cell, the node and the problem."""
    cells = {}
    for kind, pairs, concat in (("normal", normal, normal_concat), ("reduce", reduce, reduce_concat)):
        cells[kind] = _check_cell(kind, pairs)
        if not isinstance(concat, (list, tuple, range)) or tuple(concat) != CONCAT:
            raise HarnessError(f"genotype {kind}_concat {list(concat) if isinstance(concat, range) else concat!r}: "
                               f"the DARTS space concatenates nodes {list(CONCAT)} (range(2, 6))")
    return Genotype(cells["normal"], CONCAT, cells["reduce"], CONCAT)


def _check_cell(kind: str, pairs: Any) -> tuple[Pair, ...]:
    if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * STEPS:
        n = len(pairs) if isinstance(pairs, (list, tuple)) else type(pairs).__name__
        raise HarnessError(f"genotype {kind} cell: expected {2 * STEPS} (op, input) pairs, 2 per node 2..5, "
                           f"got {n}")
    out = []
    for p, pair in enumerate(pairs):
        node = 2 + p // 2
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
            raise HarnessError(f"genotype {kind} cell, node {node}: {pair!r} is not an (op, input) pair")
        op, src = pair
        if op == "none":
            raise HarnessError(f"genotype {kind} cell, node {node}: op 'none' is not allowed in a genotype")
        if op not in GENOTYPE_OPS:
            raise HarnessError(f"genotype {kind} cell, node {node}: unknown op {op!r} "
                               f"(known: {', '.join(GENOTYPE_OPS)})")
        if not 0 <= src < node:
            raise HarnessError(f"genotype {kind} cell, node {node}: input {src} is not an earlier node "
                               f"(0..{node - 1})")
        out.append((op, src))
    for node in range(2, 2 + STEPS):
        a, b = out[2 * (node - 2)][1], out[2 * (node - 2) + 1][1]
        if a == b:
            raise HarnessError(f"genotype {kind} cell, node {node}: both inputs are node {a} "
                               "(a node takes two different earlier nodes)")
    return tuple(out)


def to_str(g: Genotype) -> str:
    """The DARTS/NASLib text (concat as a list)."""
    def cell(pairs: tuple[Pair, ...]) -> str:
        return "[" + ", ".join(f"({op!r}, {src})" for op, src in pairs) + "]"
    return (f"Genotype(normal={cell(g.normal)}, normal_concat={list(g.normal_concat)}, "
            f"reduce={cell(g.reduce)}, reduce_concat={list(g.reduce_concat)})")


def to_genotype(arch: Any) -> Genotype:
    """Text, a :class:`Genotype`, or any object with the four fields (the reference's own
    namedtuple) -> validated :class:`Genotype`."""
    if isinstance(arch, str):
        return parse(arch)
    if all(hasattr(arch, f) for f in _FIELDS):
        return validate(*(getattr(arch, f) for f in _FIELDS))
    raise HarnessError(f"genotype {arch!r}: expected Genotype text or a Genotype")
