"""A search batch: the one entry point of ``harness bench`` (kind ``search``) and ``harness worker``.

Kind ``search`` runs Optuna searches (paper Sec. 4.2, Fig. 4; NB201 paper Table 5).

For every dataset x proxy x sampler x seed one study of ``budget`` trials; one ``runs`` row per
trial and one ``summary`` row per study (the best-by-proxy candidate and its ground truth).
Every study lives in an Optuna storage, the record a crashed or interrupted batch resumes from:
``storage`` (a PostgreSQL / MySQL URL or a journal file, shared with workers on other machines,
:mod:`harness.search.studies`) or, by default, one journal file per batch under
``results/journals/``, removed once every study of the batch has its rows and summary.

Running the same definition again (same content, overrides and results folder) resumes its latest
unfinished batch instead of starting a new one: the definition stored with the studies must equal
this one (``--new-batch`` starts a new batch anyway). The trials a crash left running are failed
and their candidates evaluated again once (:mod:`harness.search.faults`), so the batch
ends with exactly its budget of trials. With ``workers = 1`` and one worker per study the trials
are those of a single in-memory Optuna study with the same seed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from harness import HarnessError
from harness.definition.schema import Definition, Kind
from harness.proxies import proxy_family
from harness.search.faults import FAULTS, Faults
from harness.search.loop import FINALISED
from harness.search.processes import run_processes
from harness.search.spec import SPEC
from harness.search.storage import check_storage, check_study, journal_lock_paths, optuna_storage, redact
from harness.search.studies import (
    CONFIG,
    RUN,
    create_studies,
    join_studies,
    join_study,
    runs_of,
    study_config,
    study_meta,
    write_rows,
)
from harness.sections.context import proxy_context
from harness.spaces import get_space
from harness.store.results import ResultsStore

JOURNALS = "journals"


def journal_path(store: ResultsStore, batch_id: str) -> Path:
    """The journal a search batch keeps when its definition names no ``storage``."""
    return store.root / JOURNALS / f"{batch_id}.jsonl"


def check_batch(defn: Definition, batch: "str | None") -> None:
    """Before any work, creating nothing: the definition's ``storage`` can hold studies (a server
    answers, a journal's folder exists), and a ``batch`` to resume has studies in it."""
    if defn.get("storage") is None:
        return
    try:
        check_storage(defn["storage"])
        if batch is not None:
            check_study(defn["storage"], batch)
    except HarnessError as e:
        raise HarnessError(f"{defn.source}: key 'storage' (--storage): {e}") from None


def _batches(storage: optuna.storages.BaseStorage, config: dict) -> dict[str, list[optuna.Study]]:
    """batch id -> its studies in ``storage`` that were created from ``config``."""
    out: dict[str, list[optuna.Study]] = {}
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if s.user_attrs.get(CONFIG) == config and isinstance(s.user_attrs.get(RUN), dict):
            study = optuna.load_study(study_name=s.study_name, storage=storage)
            out.setdefault(s.user_attrs[RUN]["batch_id"], []).append(study)
    return out


def unfinished_batch(defn: Definition, store: ResultsStore) -> "str | None":
    """The latest batch of exactly this definition that a crash or an interrupt left unfinished
    (some study not finalised), or None. Prints what it resumes."""
    config = json.loads(json.dumps(study_config(defn)))  # as stored: JSON types
    if defn.get("storage") is not None:
        candidates = [(None, defn["storage"])]
    else:
        candidates = [(p, str(p)) for p in sorted((store.root / JOURNALS).glob(f"{defn.name}-*.jsonl"))]
    found = []
    for journal, url in candidates:
        for batch_id, studies in _batches(optuna_storage(url), config).items():
            if all(FINALISED in s.user_attrs for s in studies) and len(studies) == len(runs_of(defn, batch_id)):
                if journal is not None and journal == journal_path(store, batch_id):
                    _remove_journal(journal)  # finished; a crash came before its journal was removed
                continue
            done = sum(len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) for s in studies)
            found.append((batch_id.rsplit("-", 2)[-2:], batch_id, done))
    if not found:
        return None
    _, batch_id, done = max(found)
    total = defn["budget"] * len(runs_of(defn, batch_id))
    print(f"{defn.name}: resuming batch {batch_id}: {done}/{total} trials done (--new-batch starts a new one)",
          flush=True)
    return batch_id


def _remove_journal(journal: Path) -> None:
    for path in (journal, *journal_lock_paths(journal)):
        path.unlink(missing_ok=True)


def _keep_finished(defn: Definition, store: ResultsStore, storage: str, batch_id: str) -> None:
    """On an interrupt: the finished trials of every unfinished study as ``runs`` rows marked
    ``interrupted`` (finalising the study later replaces them with all of its rows)."""
    space, opened = get_space(defn["space"]), optuna_storage(storage)
    for run in runs_of(defn, batch_id):
        try:
            study = optuna.load_study(study_name=run["run_id"], storage=opened)
        except KeyError:
            continue
        if FINALISED not in study.user_attrs:
            write_rows(study, space, study_meta(defn, run, run["run_id"]), store, interrupted=True)


def _print_groups(defn: Definition, summaries: pd.DataFrame, wall_s: float) -> None:
    for (dataset, proxy_name, sampler), s in summaries.groupby(["dataset", "proxy_name", "sampler"], sort=False):
        print(f"{defn.name}: {dataset:<14} {proxy_name:<19} {sampler:<6} best-by-proxy ground truth "
              f"{s['best_ground_truth'].mean():.2f} ± {s['best_ground_truth'].std(ddof=0):.2f} "
              f"over {len(s)} seeds", flush=True)
    print(f"{defn.name}: {len(summaries)} studies done in {wall_s:.1f} s", flush=True)


def run_batch(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    """Create (or resume) every study of the batch, run them with ``workers`` local workers per
    study (others may join from any machine with ``harness worker``); finalisers write the rows."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    own_journal = defn.get("storage") is None
    storage = str(journal_path(store, batch_id)) if own_journal else defn["storage"]
    names = create_studies(defn, storage, batch_id)
    if not own_journal or defn["workers"] > 1:
        print(f"{defn.name}: {len(names)} studies in {redact(storage)}; more workers join with: harness worker "
              f"--storage {'URL' if not own_journal else storage} --study {batch_id}", flush=True)
    for run in runs_of(defn, batch_id):
        family = proxy_family(run["proxy_name"])
        if family.trains and family.needs_backbone(run["proxy_name"]):
            proxy_context(defn, run["dataset"], store, batch_id, progress).backbone_path()  # pre-train once, here
    t0 = time.perf_counter()
    try:
        if defn["workers"] == 1:
            for name in names:
                join_study(storage, name, str(store.root), progress=progress, index=0)
        else:  # every local worker walks the batch's studies in order
            run_processes(defn["workers"], "harness.search.studies:join_process",
                          {"storage_url": storage, "name": batch_id, "results": str(store.root)}, timeout_s=7 * 86400,
                          torch_free=all(proxy_family(p).torch_free for p in defn["proxies"]))
    except KeyboardInterrupt:
        _keep_finished(defn, store, storage, batch_id)
        raise
    summaries = store.read("summary")
    mine = pd.DataFrame(columns=["run_id"]) if summaries is None else summaries[summaries["run_id"].isin(names)]
    missing = [n for n in names if n not in set(mine["run_id"])]
    if missing:  # finalised on a machine whose results folder is not this one
        raise HarnessError(f"{defn.name}: studies finished but their summaries are in another results folder "
                           f"(first: {missing[0]})")
    mine = mine.drop_duplicates("run_id").set_index("run_id").loc[names].reset_index()  # run order
    _print_groups(defn, mine, time.perf_counter() - t0)
    if own_journal:
        _remove_journal(Path(storage))
    return mine


def join(storage_url: str, name: str, results: str = "results", *, progress: bool = False,
         faults: Faults = FAULTS) -> dict[str, list[int]]:
    """``harness worker``: work on a study, or on every study of a batch in run order, from any
    machine; study -> the numbers of the trials this worker ran."""
    if not 0 < faults.heartbeat_s < faults.grace_s or faults.reconnect_s < 0:
        raise HarnessError(f"--heartbeat {faults.heartbeat_s:g} s / --grace {faults.grace_s:g} s / --reconnect "
                           f"{faults.reconnect_s:g} s: need 0 < heartbeat < grace (a live worker beats within "
                           "the grace; e.g. --heartbeat 1 --grace 5) and reconnect >= 0")
    check_study(storage_url, name)  # before Optuna opens the storage: that would create a journal or tables
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return join_studies(storage_url, name, results, progress=progress, faults=faults)


KIND = Kind(SPEC, run_batch, resume=unfinished_batch, check=check_batch)
