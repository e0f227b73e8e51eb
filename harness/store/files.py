"""Atomic result files: never a half-written file.

Each write goes to a temp file (``.<name>.XXXX.tmp``) in the destination folder and is renamed
over the destination with ``os.replace``, so a reader sees the old file or the new one, never a
partial one. Tables of rows are not appended here: :mod:`harness.store.results` writes each
append as a new part file of a Parquet dataset.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from harness import HarnessError


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


def write_png(fig, path: "str | Path", dpi: int = 120) -> Path:
    """Render a matplotlib ``Figure`` (Agg, no pyplot) to ``path`` atomically."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HarnessError(f"plot: output path must end in .png, got {str(path)!r}")
    FigureCanvasAgg(fig)
    # The temp file has no .png suffix, so name the format explicitly.
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
