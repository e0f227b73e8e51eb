"""Fetch the official CIFAR python archives: stream, verify MD5, rename atomically, extract safely.

Nothing half-done is left behind: the archive is streamed to a temp file and only renamed to
its real name once its MD5 matches; it is extracted into a temp folder that is renamed into
place once complete. Archive members must be plain files or folders under the archive's one
top-level folder (no absolute paths, no ``..``, no links or devices).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from harness import HarnessError
from harness.data.sources import CIFAR_LAYOUTS
from harness.progress import bars_shown


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str
    filename: str
    folder: str  # the one top-level folder inside
    files: tuple[str, ...]  # what the folder must hold


def _archive(name: str, url: str, md5: str) -> Archive:
    layout = CIFAR_LAYOUTS[name]
    return Archive(url, md5, layout.archive, layout.folder, layout.train + layout.test)


ARCHIVES = {
    "cifar10": _archive("cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a"),
    "cifar100": _archive("cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                         "eb9058c3a382ffc7106e4002c42a8d85"),
}
_CHUNK = 1 << 20


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _complete(folder: Path, files: tuple[str, ...]) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in files)


def _fetch(url: str, dest: Path, md5: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into a temp file next to ``dest``; rename it onto ``dest`` iff the MD5 matches."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    size = resp.headers.get("Content-Length")
                    total = int(size) if size and size.isdigit() else None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                              disable=not (progress and bars_shown())) as bar:
                        for block in iter(lambda: resp.read(_CHUNK), b""):
                            out.write(block)
                            h.update(block)
                            bar.update(len(block))
            except urllib.error.HTTPError as e:
                raise HarnessError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                raise HarnessError(f"download of {url} failed: {reason}") from None
        got = h.hexdigest()
        if got != md5:
            raise HarnessError(f"checksum mismatch for {url}: expected md5 {md5}, got {got}; "
                               f"the download was discarded")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _safe_members(tar: tarfile.TarFile, folder: str, archive: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != folder:
            raise HarnessError(f"{archive}: refusing member {m.name!r} (outside {folder}/)")
        if not (m.isfile() or m.isdir()):
            raise HarnessError(f"{archive}: refusing member {m.name!r} (not a file or folder)")
    return members


def extract(archive: Path, root: Path, folder: str, files: tuple[str, ...]) -> Path:
    """Extract ``archive`` (.tar.gz holding ``folder/``) into ``root/folder``, all or nothing."""
    target = root / folder
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar, folder, archive)
                # the "data" filter (Python >= 3.10.12) re-checks links and permissions too
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **extra)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise HarnessError(f"{archive} is not a valid .tar.gz archive ({e})") from None
        missing = [f for f in files if not (tmp / folder / f).is_file()]
        if missing:
            raise HarnessError(f"{archive} lacks {folder}/{missing[0]}")
        os.replace(tmp / folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download(name: str, root: "str | Path", url: "str | None" = None, md5: "str | None" = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download and extract the official ``cifar10`` / ``cifar100`` python archive into ``root``.

    ``url`` overrides the official address (a mirror); ``md5`` defaults to the official checksum.
    Returns the extracted folder (``root/cifar-10-batches-py`` ...), usable as ``data_dir``;
    ``root`` works too. Already extracted -> returned without a download.
    """
    key = name.lower().replace("-", "")
    if key not in ARCHIVES:
        raise HarnessError(f"cannot download {name!r}: choose cifar10 or cifar100 "
                           f"(ImageNet16-120 needs the NB201 batches, passed with --data-dir)")
    spec = ARCHIVES[key]
    url, md5 = url or spec.url, (md5 or spec.md5).lower()
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise HarnessError(f"download root {root} is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if _complete(root / spec.folder, spec.files):
        return root / spec.folder
    if (root / spec.folder).exists():
        raise HarnessError(f"{root / spec.folder} exists but is incomplete; remove it and retry")
    archive = root / spec.filename
    if not (archive.is_file() and _md5(archive) == md5):
        _fetch(url, archive, md5, progress, timeout)
    try:
        return extract(archive, root, spec.folder, spec.files)
    except HarnessError:
        archive.unlink(missing_ok=True)  # its bytes matched the MD5 but it is unusable
        raise
