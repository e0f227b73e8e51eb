"""harness: a benchmark harness for Transfer-NAS (TR-NAS).

Its packages, in layer order (a layer imports only from those below it: the import-linter
contract in ``pyproject.toml``, docs/architecture.md):
``cli`` (the command line) -> ``report`` (leaderboard, plots, heatmaps) -> ``bench`` (the benchmark
kinds, each its keys, validation and runner; their registry and the runner; beside it the
``ci_guard`` module) -> ``search`` (distributed Optuna search) -> ``sections`` (what kinds share:
the [train] and [backbone] sections, proxies, splice depths) -> ``analysis`` (rank correlation,
CKA, automatic transfer depth) -> ``methods`` (samplers, one-shot methods) -> ``proxies`` (how a
candidate is scored) -> ``transfer`` (the Tr-Net splice) -> ``backbones`` (CIFAR ResNets) ->
``train`` (the training loop and recipes) -> ``tabular`` (tabular benchmarks) and ``data``
(datasets) -> ``spaces`` (search spaces) -> ``measure`` (parameter counts, memory) -> ``store``
(the results store), with the modules ``progress``, ``runinfo`` and ``stats`` and the package
``definition`` (benchmark definitions of any kind: the generic checks).
"""

__version__ = "0.1.0"


class HarnessError(ValueError):
    """Bad user input. The CLI prints the message on one line and exits with code 2."""


def one_line(e: BaseException, limit: "int | None" = None) -> str:
    """``e`` as ``"<type>: <message>"`` on one line (whitespace runs collapsed), for error messages
    that must stay on one line; ``limit`` cuts it to that many characters (None = whole)."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if limit is None else text[:limit]
