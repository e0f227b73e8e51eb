"""Where an Optuna study lives, and the lock that keeps its trial budget exact.

* ``None`` -> ``None`` (Optuna's in-memory storage, one process);
* a plain file path -> :class:`optuna.storages.JournalStorage` over a
  :class:`~optuna.storages.journal.JournalFileBackend` (Optuna's append-only multi-process file
  storage, one machine or a file system with working ``fcntl`` locks; the parent folder is created,
  for a batch's own journal under ``results/journals``: :func:`check_storage` refuses a given path
  whose folder does not exist).
  Its writes are serialised by a blocking ``fcntl`` lock on ``<file>.write.lock`` instead of
  Optuna's default symlink lock, which polls with a back-off of up to 1 s under contention (most
  of the wall time of 4 workers on a fast proxy) and, left behind by a killed process, stalls
  every writer for 30 s; the kernel drops an ``fcntl`` lock when its process dies. Each write
  reaches the OS at once (a killed process loses nothing) but is forced to disk (``fsync``) at most
  once a second rather than for each of a trial's ~10 operations (0.3-6 ms each here), so a power
  cut may lose the last second of a journal, as it may lose the last Parquet parts;
* ``postgresql://``, ``mysql://`` or ``sqlite://`` URLs (driver suffixes such as
  ``postgresql+psycopg2://`` included) -> :class:`optuna.storages.RDBStorage`. PostgreSQL and
  MySQL work across machines (Optuna's recommendation for distributed studies); SQLite must not be
  shared between processes.

:class:`StudyLock` serialises "count the study's trials, then ask for one" across every worker of
one study: a PostgreSQL transaction-level advisory lock (``pg_advisory_xact_lock``), a MySQL named
lock (``GET_LOCK``), or an exclusive ``fcntl`` lock on ``<file>.budget.lock`` for journal files and
SQLite. A worker that dies while holding it releases it (the server ends its session / the kernel
closes its file).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
import zlib
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc

from harness import HarnessError, one_line

RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: Connections per worker process in Optuna's pool: the worker loop and its heartbeat thread.
POOL_SIZE = 2
#: First key of every advisory lock this harness takes (ASCII "hNAS"), so it cannot collide with
#: another application's single-key locks on the same server.
_LOCK_CLASS = 0x684E4153
#: Errors that mean "the database went away": retried with backoff by the workers.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def storage_kind(url: "str | Path | None") -> str:
    """``"memory"``, ``"journal"``, ``"sqlite"`` or ``"server"`` (PostgreSQL / MySQL)."""
    if url is None:
        return "memory"
    m = _URL.match(str(url).strip())
    if not m:
        return "journal"
    scheme = m.group(1).lower().split("+")[0]
    return "sqlite" if scheme == "sqlite" else "server"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", url)


def _engine_kwargs(text: str, pool_size: int) -> dict:
    kwargs: dict = {"pool_pre_ping": True}  # a connection the server closed is replaced, not used
    scheme = text.split("://", 1)[0].lower()
    if not scheme.startswith("sqlite"):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    if scheme.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def optuna_storage(url: "str | Path | None", *, pool_size: int = POOL_SIZE) -> "optuna.storages.BaseStorage | None":
    """The Optuna storage for ``url`` (see the module docstring); database URLs are connected to
    here, so an unreachable server or a rejected login is a :class:`HarnessError` at once."""
    if url is None:
        return None
    text = _storage_text(url)
    if _URL.match(text):
        try:
            return optuna.storages.RDBStorage(text, engine_kwargs=_engine_kwargs(text, pool_size))
        except Exception as e:  # sqlalchemy / driver errors: bad URL, missing driver, unreachable server
            raise HarnessError(f"optuna storage {redact(text)!r}: cannot open ({one_line(e, 300)})") from None
    path = Path(text)
    if path.is_dir():
        raise HarnessError(f"optuna storage {text!r}: is a folder; expected a journal file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = _JournalFile(path)
    except OSError as e:
        raise HarnessError(f"optuna storage {text!r}: cannot create the journal file ({e.strerror or e})") from None
    try:
        return optuna.storages.JournalStorage(backend)
    except (ValueError, KeyError, TypeError) as e:  # a damaged line (JSONDecodeError is a ValueError)
        raise HarnessError(f"optuna storage {text!r}: not a readable journal file ({one_line(e, 300)})") from None


def _probe(text: str, sql: str = "SELECT 1", **params) -> "sqlalchemy.Row | None":
    """The first row of ``sql`` on a database URL, over a connection of its own: connecting creates
    nothing (Optuna's storage would create its tables); an unreachable server or a rejected login is
    a :class:`HarnessError`."""
    try:
        engine = sqlalchemy.create_engine(text, **_engine_kwargs(text, 1))
    except Exception as e:  # a bad URL or a missing driver
        raise HarnessError(f"optuna storage {redact(text)!r}: cannot open ({one_line(e, 300)})") from None
    try:
        with engine.connect() as conn:
            if sql == "SELECT 1" or sqlalchemy.inspect(conn).has_table("studies"):
                return conn.execute(sqlalchemy.text(sql), params).first()
            return None  # no Optuna tables: no study at all
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise HarnessError(f"optuna storage {redact(text)!r}: cannot open ({one_line(e, 300)})") from None
    finally:
        engine.dispose()


def _sqlite_path(text: str) -> Path:
    """``sqlite:///rel.db`` -> rel.db, ``sqlite:////abs.db`` -> /abs.db."""
    return Path(text.split("://", 1)[1][1:])


def check_storage(url: "str | Path") -> None:
    """Fail now, in one line and creating nothing, if ``url`` cannot hold studies: a server is
    connected to (no table is created), an SQLite file's or a journal file's folder must exist."""
    text = _storage_text(url)
    kind = storage_kind(text)
    if kind == "server":
        _probe(text)
        return
    path = _sqlite_path(text) if kind == "sqlite" else Path(text)
    if path.is_dir():
        raise HarnessError(f"optuna storage {text!r}: is a folder; expected a {'database' if kind == 'sqlite' else 'journal'} "
                           "file path")
    if not path.parent.is_dir():
        raise HarnessError(f"optuna storage {text!r}: folder {str(path.parent)!r} does not exist")


def check_study(url: "str | Path", name: str) -> None:
    """Fail, in one line and creating nothing, unless the storage at ``url`` holds the study ``name``
    or studies ``name/...`` (a batch): checked before Optuna opens it, which would create an empty
    journal file, or its tables in an empty database."""
    text = _storage_text(url)
    kind = storage_kind(text)
    if kind in ("journal", "sqlite"):
        path = _sqlite_path(text) if kind == "sqlite" else Path(text)
        if not path.is_file():
            raise HarnessError(f"optuna storage {text!r}: no such file, so no study {name!r} in it")
        if kind == "journal":
            return  # reading a journal creates nothing; the name is looked up in it next
    prefix = name.rstrip("/") + "/"
    if _probe(text, "SELECT 1 FROM studies WHERE study_name = :name OR substr(study_name, 1, :k) = :prefix",
              name=name, k=len(prefix), prefix=prefix) is None:
        raise HarnessError(f"study {name!r}: no study or batch of that name in the storage {redact(text)!r}")


def _storage_text(url: "str | Path") -> str:
    if not isinstance(url, (str, Path)):
        raise HarnessError(f"optuna storage {url!r}: expected a file path or a database URL")
    text = str(url).strip()
    if not text:
        raise HarnessError("optuna storage '': expected a file path or a database URL")
    m = _URL.match(text)
    if m and m.group(1).lower().split("+")[0] not in RDB_SCHEMES:
        raise HarnessError(f"optuna storage {text!r}: unsupported scheme {m.group(1).lower()!r}; "
                           f"expected {', '.join(s + '://' for s in RDB_SCHEMES)} or a file path")
    return text


def load_study(url: "str | Path", study_name: str, **kwargs) -> optuna.Study:
    """:func:`optuna.load_study`, with a missing study as a :class:`HarnessError` naming it."""
    storage = optuna_storage(url) if isinstance(url, (str, Path)) else url
    try:
        return optuna.load_study(study_name=study_name, storage=storage, **kwargs)
    except KeyError:
        where = redact(str(url)) if isinstance(url, (str, Path)) else "the storage"
        raise HarnessError(f"study {study_name!r}: does not exist in {where!r}") from None


def journal_lock_paths(journal: "str | Path") -> tuple[Path, Path]:
    """The lock files kept next to a journal: its write lock and the budget lock of its studies.
    Not ``<journal>.lock``: Optuna's own journal lock uses that name."""
    journal = Path(journal)
    return journal.with_name(journal.name + ".write.lock"), journal.with_name(journal.name + ".budget.lock")


class _JournalFile(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file format and reader; writes under an ``fcntl`` lock, ``fsync`` at most
    once per :data:`FSYNC_EVERY_S` (see the module docstring)."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self._path, self._lock_path, self._synced = path, journal_lock_paths(path)[0], 0.0

    def append_logs(self, logs: list[dict]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # dropped when the file closes, or the process dies
            with open(self._path, "ab") as f:
                f.write(text)
                if time.monotonic() - self._synced >= FSYNC_EVERY_S:
                    f.flush()
                    os.fsync(f.fileno())
                    self._synced = time.monotonic()


#: Longest time a journal write waits to be forced to disk.
FSYNC_EVERY_S = 1.0


_LOCK_ENGINES: dict[str, sqlalchemy.Engine] = {}


def _forget_lock_engines() -> None:
    """In a forked child: never use the parent's pooled connections (SQLAlchemy's advice for
    ``os.fork``: dispose without closing them, they are the parent's)."""
    for engine in _LOCK_ENGINES.values():
        engine.dispose(close=False)
    _LOCK_ENGINES.clear()


os.register_at_fork(after_in_child=_forget_lock_engines)


class LockLost(RuntimeError):
    """The database session holding a study lock ended before the lock was released."""


class StudyLock:
    """An exclusive, re-usable lock per (storage, study) shared by every process of that study.

    ``with lock: ...`` blocks until no other worker holds it. For database servers it opens its own
    one-connection engine (``pool_pre_ping``: a connection the server closed is replaced); if that
    session dies inside the ``with`` block, leaving it raises :class:`LockLost`, since another
    worker may have held the lock meanwhile.
    """

    def __init__(self, url: "str | Path | None", study_name: str, lock_path: "str | Path | None" = None):
        """``lock_path`` forces an ``fcntl`` lock on that file (one machine); in-memory studies
        (``url`` None) get a thread lock."""
        self.kind = "file" if lock_path is not None else storage_kind(url)
        self.study_name = study_name
        self._key = zlib.crc32(study_name.encode()) - 2**31  # signed int4 for PostgreSQL
        self._engine = None
        self._thread_lock = threading.Lock()
        self._conn = None
        self._file = None
        if self.kind == "server":
            text = str(url).strip()
            self.dialect = text.split("://", 1)[0].lower().split("+")[0]
            if text not in _LOCK_ENGINES:  # one lock connection per process and server, whatever the study
                try:
                    _LOCK_ENGINES[text] = sqlalchemy.create_engine(text, **_engine_kwargs(text, 1))
                except Exception as e:
                    raise HarnessError(f"optuna storage {redact(text)!r}: cannot open ({one_line(e, 300)})") from None
            self._engine = _LOCK_ENGINES[text]
        elif self.kind in ("journal", "sqlite", "file"):
            if lock_path is None:
                base = _sqlite_path(str(url)) if self.kind == "sqlite" else Path(str(url))
                lock_path = journal_lock_paths(base)[1]
            self.lock_path = Path(lock_path)
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "StudyLock":
        self._thread_lock.acquire()
        try:
            if self.kind == "server":
                self._conn = self._engine.connect()
                if self.dialect == "postgresql":
                    self._conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                                       {"a": _LOCK_CLASS, "b": self._key})
                else:  # MySQL: a named lock of the session, released explicitly (or when it ends)
                    self._conn.execute(sqlalchemy.text("SELECT GET_LOCK(:n, -1)"),
                                       {"n": f"harness:{self.study_name}"[:64]})
            elif self.kind != "memory":
                self._file = open(self.lock_path, "a")
                fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._release(failed=False)

    def _release(self, failed: bool) -> None:
        try:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    if failed:
                        conn.rollback()
                    else:
                        if self.dialect != "postgresql":
                            conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"),
                                         {"n": f"harness:{self.study_name}"[:64]})
                        conn.commit()  # ends the transaction: PostgreSQL drops the xact lock here
                except sqlalchemy.exc.SQLAlchemyError as e:
                    conn.invalidate()  # the server ended the session: the lock is gone with it
                    if not failed:
                        raise LockLost(f"study lock of {self.study_name!r}: session lost ({one_line(e, 300)})") from None
                finally:
                    try:
                        conn.close()
                    except sqlalchemy.exc.SQLAlchemyError:
                        pass
            if self._file is not None:
                f, self._file = self._file, None
                f.close()  # closing the descriptor drops the flock
        finally:
            self._thread_lock.release()
