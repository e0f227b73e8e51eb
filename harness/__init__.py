"""harness: a benchmark harness for Transfer-NAS (TR-NAS).

Pipeline, one subpackage per stage:
``spaces`` (encodings) -> ``tabular`` (NB201 table) -> ``networks`` (cells, backbones,
Tr-Net splice) -> ``data`` / ``train`` (real training) -> ``search`` (Optuna samplers,
evaluators, benchmark runner) -> ``analysis`` (rank correlation, CKA) -> ``results``
(Parquet, leaderboard, plots).
"""

__version__ = "0.1.0"


class HarnessError(ValueError):
    """Bad user input. The CLI prints the message on one line and exits with code 2."""


def one_line(e: BaseException, limit: "int | None" = None) -> str:
    """``e`` as ``"<type>: <message>"`` on one line (whitespace runs collapsed), for error messages
    that must stay on one line; ``limit`` cuts it to that many characters (None = whole)."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if limit is None else text[:limit]
