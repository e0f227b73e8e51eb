"""A search batch that a crash (SIGKILL) left unfinished is resumed by running the same command
again: exactly its budget of rows, no duplicate, one summary per run, no file left behind; the
journal that makes this possible changes no trial of a one-worker search."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from harness import HarnessError
from harness.bench.definitions import build_definition, load_definition
from harness.bench.runner import run_benchmark
from harness.methods.samplers import make_sampler
from harness.proxies import TableProxy
from harness.search.batch import journal_path, unfinished_batch
from harness.search.faults import CLAIMED, FAULTS, RETRY_DEPTH, RETRY_OF
from harness.search.storage import optuna_storage
from harness.search.studies import create_studies
from harness.spaces import get_space, suggest
from harness.store.results import ResultsStore

optuna.logging.set_verbosity(optuna.logging.WARNING)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
NB201 = get_space("nb201")
BUDGET, SEEDS = 12, 2
DEFINITION = f"""name = "resume"
kind = "search"
datasets = ["cifar10"]
samplers = ["rea"]
budget = {BUDGET}
seeds = {SEEDS}
delay_s = 0.1
"""


def bench(toml: Path, results: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "bench", str(toml), "--workers", str(workers), "--results",
            str(results), "--quiet"]


def trials(journal: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = optuna_storage(journal)
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            for s in optuna.get_all_study_summaries(storage)}


def complete(journal: Path) -> int:
    return sum(t.state == TrialState.COMPLETE for ts in trials(journal).values() for t in ts)


def _arch(params: dict) -> "str | None":
    """The candidate of a trial's parameters; None when a crash came before all were drawn."""
    try:
        return NB201.format(NB201.from_params(params))
    except HarnessError:
        return None


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 1])
def test_a_killed_search_resumes_to_exactly_its_budget_when_run_again(tmp_path, workers):
    toml, results = tmp_path / "resume.toml", tmp_path / "results"
    toml.write_text(DEFINITION)
    proc = subprocess.Popen(bench(toml, results, workers), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, journal = time.time() + 90, None
    while time.time() < deadline and proc.poll() is None:
        found = list((results / "journals").glob("resume-*.jsonl"))
        if found and complete(found[0]) >= 6:
            journal = found[0]
            break
        time.sleep(0.05)
    assert journal is not None, proc.communicate()
    local_workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # reaped: a zombie would still look alive
    deadline = time.time() + 15
    while not all(exited(pid) for pid in local_workers) and time.time() < deadline:
        time.sleep(0.05)
    assert all(exited(pid) for pid in local_workers), "the workers die with the process that started them"
    before = trials(journal)
    done = sum(t.state == TrialState.COMPLETE for ts in before.values() for t in ts)
    running = [(study, t.number, _arch(t.params), CLAIMED in t.user_attrs,
                t.system_attrs.get(RETRY_DEPTH, 0) >= FAULTS.max_retries)
               for study, ts in before.items() for t in ts if t.state == TrialState.RUNNING]
    # A worker that outlived a dying sibling by milliseconds may already have failed the sibling's
    # trial and queued its candidate again (WAITING).
    queued = [(study, t.system_attrs[RETRY_OF], _arch(t.params))
              for study, ts in before.items() for t in ts if t.state == TrialState.WAITING]
    assert (running or queued) and done < BUDGET * SEEDS, "killed in the middle of the batch"

    again = subprocess.run(bench(toml, results, workers), env=ENV, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    batch = journal.stem
    assert f"resume: resuming batch {batch}: {done}/{BUDGET * SEEDS} trials done" in again.stdout
    store = ResultsStore(results)
    runs, summary = store.read("runs"), store.read("summary")
    assert len(runs) == BUDGET * SEEDS and set(runs["batch_id"]) == {batch}
    assert not runs.duplicated(["run_id", "trial"]).any()
    assert sorted(runs["run_id"].value_counts()) == [BUDGET] * SEEDS
    assert sorted(summary["run_id"]) == sorted(set(runs["run_id"])) and set(summary["trials"]) == {BUDGET}
    retry_of = runs["retry_of"] if "retry_of" in runs.columns else pd.Series(None, index=runs.index)
    for study, number, arch, claimed, last_retry in running:  # the trials a crash left running
        mine = runs[runs["run_id"] == study]
        retries = mine[retry_of[mine.index] == number]
        if claimed:  # killed between evaluating and telling: completed with its value, not evaluated again
            assert list(mine.loc[mine["trial"] == number, "arch_str"]) == [arch] and retries.empty
            continue
        assert number not in set(mine["trial"])  # failed
        if last_retry:  # itself the re-evaluation of a trial whose worker died: not tried a third time
            assert retries.empty
        else:  # its candidate evaluated again once (a candidate drawn only in part is completed anew)
            assert len(retries) == 1 and arch in (None, retries["arch_str"].iloc[0])
    for study, number, arch in queued:
        mine = runs[runs["run_id"] == study]
        assert list(mine.loc[retry_of[mine.index] == number, "arch_str"]) == [arch] or arch is None
    assert not list((results / "journals").iterdir()), "the finished batch's journal and locks are removed"
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp") or p.is_symlink()], "no temp file left"

    # A finished batch is not resumed: the same definition starts a new batch.
    again = run_benchmark(load_definition(str(toml)), results, progress=False)
    assert set(again["batch_id"]) != {batch} and len(store.read("summary")) == 2 * SEEDS


def test_only_an_unfinished_batch_of_the_same_definition_is_resumed(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    raw = {"name": "resume", "kind": "search", "datasets": ["cifar10"], "samplers": ["random"], "budget": 5}
    defn = build_definition(raw, "test")
    batch = "resume-20260101T000000-aaaaaa"
    create_studies(defn, str(journal_path(store, batch)), batch)  # a crash before any trial finished
    assert unfinished_batch(build_definition({**raw, "budget": 6}, "test"), store) is None  # another definition
    assert unfinished_batch(build_definition({**raw, "name": "other"}, "test"), store) is None
    assert unfinished_batch(defn, store) == batch
    assert f"resume: resuming batch {batch}: 0/5 trials done" in capsys.readouterr().out

    fresh = run_benchmark(defn, tmp_path, progress=False, new_batch=True)
    assert set(fresh["batch_id"]) != {batch} and journal_path(store, batch).exists()
    resumed = run_benchmark(defn, tmp_path, progress=False)
    assert set(resumed["batch_id"]) == {batch} and set(resumed["trials"]) == {5}
    assert not journal_path(store, batch).exists() and unfinished_batch(defn, store) is None
    runs = store.read("runs")
    assert sorted(runs["batch_id"].value_counts()) == [5, 5]


def test_a_damaged_journal_of_an_earlier_batch_is_named_before_any_work(tmp_path):
    defn = build_definition({"name": "resume", "kind": "search", "datasets": ["cifar10"], "samplers": ["random"],
                             "budget": 3}, "test")
    journal = journal_path(ResultsStore(tmp_path), "resume-20260101T000000-bbbbbb")
    journal.parent.mkdir(parents=True)
    journal.write_text('{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\nnot json\n{}\n')
    with pytest.raises(HarnessError, match=f"'{journal}': not a readable journal file"):
        run_benchmark(defn, tmp_path, progress=False)
    assert ResultsStore(tmp_path).read("runs") is None
    assert set(run_benchmark(defn, tmp_path, progress=False, new_batch=True)["trials"]) == {3}


@pytest.mark.parametrize("sampler", ["rea", "random", "tpe"])
def test_one_worker_reproduces_a_single_in_memory_study(tmp_path, sampler):
    """The journal a search keeps to resume changes no trial: same seed, same candidates, same order."""
    raw = {"name": "same", "kind": "search", "datasets": ["cifar100"], "samplers": [sampler], "budget": 15,
           "seed_offset": 3}
    run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    rows = ResultsStore(tmp_path).read("runs").sort_values("trial")
    proxy = TableProxy("nb201-12ep-val", NB201, "cifar100")
    memory = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, 3, NB201))  # plain Optuna
    memory.optimize(lambda trial: proxy(suggest(NB201, trial)).value, n_trials=15)
    assert list(rows["arch_str"]) == [NB201.format(NB201.from_params(t.params)) for t in memory.trials]
    assert list(rows["trial"]) == list(range(15))
