"""Where an Optuna study lives: in memory, a journal file, or a database.

* ``None`` -> ``None`` (Optuna's in-memory storage, one process);
* a plain file path -> :class:`optuna.storages.JournalStorage` over a
  :class:`~optuna.storages.journal.JournalFileBackend` (Optuna's append-only multi-process file
  storage; the parent folder is created);
* ``postgresql://``, ``mysql://`` or ``sqlite://`` URLs (driver suffixes such as
  ``postgresql+psycopg2://`` included) -> :class:`optuna.storages.RDBStorage`, which works
  across machines.
"""
from __future__ import annotations

import re
from pathlib import Path

import optuna

from harness import HarnessError

RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def optuna_storage(url: "str | Path | None") -> "optuna.storages.BaseStorage | None":
    """The Optuna storage for ``url`` (see the module docstring)."""
    if url is None:
        return None
    if not isinstance(url, (str, Path)):
        raise HarnessError(f"optuna storage {url!r}: expected a file path or a database URL")
    text = str(url).strip()
    if not text:
        raise HarnessError("optuna storage '': expected a file path or a database URL")
    m = _URL.match(text)
    if m:
        scheme = m.group(1).lower()
        if scheme.split("+")[0] not in RDB_SCHEMES:
            raise HarnessError(f"optuna storage {text!r}: unsupported scheme {scheme!r}; "
                               f"expected {', '.join(s + '://' for s in RDB_SCHEMES)} or a file path")
        try:
            return optuna.storages.RDBStorage(text)
        except Exception as e:  # sqlalchemy / driver errors: bad URL, missing driver, unreachable server
            msg = " ".join(f"{type(e).__name__}: {e}".split())
            raise HarnessError(f"optuna storage {text!r}: cannot open ({msg[:300]})") from None
    path = Path(text)
    if path.is_dir():
        raise HarnessError(f"optuna storage {text!r}: is a folder; expected a journal file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as e:
        raise HarnessError(f"optuna storage {text!r}: cannot create the journal file ({e.strerror or e})") from None
    return optuna.storages.JournalStorage(backend)
