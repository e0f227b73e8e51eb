"""Atomic result files: never a half-written file, never another run's rows lost.

Appends take an exclusive lock on ``<file>.lock`` so several worker processes can add rows
to one Parquet file; each write goes to a temp file in the same folder and is renamed over.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: "str | Path", write) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_parquet(df: pd.DataFrame, path: "str | Path") -> Path:
    return write_atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_text(text: str, path: "str | Path") -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def append_parquet(rows: "pd.DataFrame | list[dict]", path: "str | Path") -> Path:
    """Append rows to a Parquet file (created if missing), atomically and under a file lock."""
    new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    path = Path(path)
    with _locked(path):
        if path.exists():
            old = pd.read_parquet(path)
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        return write_parquet(new, path)


def write_png(fig, path: "str | Path", dpi: int = 120) -> Path:
    """Render a matplotlib ``Figure`` (Agg, no pyplot) to ``path`` atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from harness import HarnessError

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HarnessError(f"plot: output path must end in .png, got {str(path)!r}")
    FigureCanvasAgg(fig)
    # The temp file has no .png suffix, so name the format explicitly.
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
