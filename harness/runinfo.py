"""What every recorded run carries so it can be reproduced: commit, versions, device."""
from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy
import optuna
import pandas
import torch

import harness


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` when code differs from it), or ``unknown``.

    Only code counts: results, benchmark outputs and plots under ``results/`` change with every
    run and say nothing about which code produced a row. An installed copy (site-packages) has no
    checkout of its own: a repository that merely contains the environment is someone else's code."""
    root = Path(__file__).resolve().parents[1]
    try:
        top, sha = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
                                  text=True, timeout=5, check=True).stdout.splitlines()
        if Path(top).resolve() != root:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: "str | None" = None) -> str:
    """Human-readable device: the CUDA card name, or the CPU model and the threads torch uses."""
    dev = torch.device(device) if device else default_device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def default_device() -> "torch.device":
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def versions() -> dict[str, str]:
    # str(): torch.__version__ is a TorchVersion, which weights_only checkpoints refuse to load.
    return {"harness": harness.__version__, "torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "pandas": str(pandas.__version__), "optuna": str(optuna.__version__),
            "python": platform.python_version()}


def run_record(seed: "int | None" = None, device: "str | None" = None) -> dict[str, object]:
    """Flat provenance columns for a results row."""
    rec: dict[str, object] = {"commit": git_commit(), "device": device_name(device)}
    rec.update({f"version_{k}": v for k, v in versions().items()})
    if seed is not None:
        rec["seed"] = seed
    return rec
