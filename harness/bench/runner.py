"""Run a benchmark definition: Optuna searches or rank correlations, rows appended to Parquet.

Files under the results folder (every write atomic, appended, never rewriting another run's rows):

* ``runs.parquet``    -- one row per evaluation (run id, benchmark, method, sampler, seed, dataset,
                         trial, arch, proxy value, ground truth, cumulative wall time, peak memory,
                         device, commit, versions);
* ``summary.parquet`` -- one row per search run (best-by-proxy architecture and its ground truth);
* ``rank.parquet``    -- one row per dataset x proxy x selection;
* ``train.parquet``   -- every real training run (the ``recorded`` evaluator replays these).

Each ``harness bench`` invocation gets a ``batch_id``; the leaderboard reads the latest batch of
each benchmark.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from harness import HarnessError
from harness.bench.definition import Definition
from harness.store.files import append_parquet
from harness.runinfo import run_record
from harness.proxies.evaluators import (TRAIN_DATASET, Evaluator, RecordedEvaluator, TabularEvaluator,
                                       TrainEvaluator)
from harness.methods.query.samplers import make_sampler
from harness.spaces.nb201.params import suggest_nb201
from harness.spaces.nb201 import encoding as space


def new_batch_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def evaluate_trial(trial: optuna.Trial, evaluator: Evaluator) -> tuple[float, dict]:
    """Suggest an NB201 cell, evaluate it, store what it cost as user attributes; (value, row)."""
    ops = suggest_nb201(trial)
    ev = evaluator(ops)
    for key in ("ground_truth", "wall_s", "peak_bytes", "device"):
        trial.set_user_attr(key, getattr(ev, key))
    return ev.value, {"trial": trial.number, "arch_str": space.to_str(ops), "proxy": ev.value,
                      "ground_truth": ev.ground_truth, "wall_s": ev.wall_s, "peak_bytes": ev.peak_bytes,
                      "device": ev.device, "cached": ev.cached}


def search_once(evaluator: Evaluator, sampler: optuna.samplers.BaseSampler, budget: int) -> list[dict]:
    """One in-process Optuna study of ``budget`` trials; one dict per trial (in trial order)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rows: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        value, row = evaluate_trial(trial, evaluator)
        rows.append(row)
        return value

    study.optimize(objective, n_trials=budget)
    return _with_cumulative(pd.DataFrame(rows))


def _with_cumulative(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("trial", ignore_index=True)
    rows["cum_wall_s"] = rows["wall_s"].cumsum()
    return rows


def tabular_worker_objective(trial: optuna.Trial, *, dataset: str, metric: str, epochs: int,
                             runs_path: str, meta: dict) -> float:
    """Objective for ``workers > 1`` processes: evaluate, then append this trial's row itself."""
    value, row = evaluate_trial(trial, _worker_evaluator(dataset, metric, epochs))
    append_parquet([{**row, **meta}], runs_path)
    return value


_WORKER_EVALUATORS: dict = {}


def _worker_evaluator(dataset: str, metric: str, epochs: int) -> TabularEvaluator:
    key = (dataset, metric, epochs)
    if key not in _WORKER_EVALUATORS:
        _WORKER_EVALUATORS[key] = TabularEvaluator(dataset, metric, epochs)
    return _WORKER_EVALUATORS[key]


def search_with_workers(defn: Definition, dataset: str, sampler_name: str, seed: int, options: dict,
                        meta: dict, results: Path) -> pd.DataFrame:
    """One study run by ``defn['workers']`` processes sharing a JournalFileBackend file."""
    from harness.methods.query.workers import run_workers

    ev = defn["evaluator"]
    if ev["kind"] != "tabular":
        raise HarnessError(f"{defn.path}: key 'workers' > 1 is supported with evaluator.kind = 'tabular' only")
    journal = results / "journals" / (meta["run_id"].replace("/", "_") + ".jsonl")
    journal.parent.mkdir(parents=True, exist_ok=True)
    runs_path = results / "runs.parquet"
    run_workers(defn["workers"], journal, meta["run_id"], "harness.bench.runner:tabular_worker_objective",
                defn["budget"], sampler_name=sampler_name, seed=seed, sampler_options=options,
                objective_kwargs={"dataset": dataset, "metric": ev.get("metric", "val_acc"),
                                  "epochs": ev.get("epochs", 12), "runs_path": str(runs_path), "meta": meta})
    rows = pd.read_parquet(runs_path)
    return _with_cumulative(rows[rows["run_id"] == meta["run_id"]].copy())


def summarise(rows: pd.DataFrame) -> dict:
    """Best-by-proxy architecture of one run (ties -> earliest trial) and what it really reaches."""
    best = rows.loc[rows["proxy"].idxmax()]
    return {"best_arch": best["arch_str"], "best_proxy": best["proxy"], "best_ground_truth": best["ground_truth"],
            "oracle_ground_truth": rows["ground_truth"].max(), "trials": len(rows),
            "wall_s": rows["wall_s"].sum(), "peak_bytes": rows["peak_bytes"].mean()}


def _train_data(defn: Definition, section: str, dataset: str):
    from harness.data.datasets import load_dataset

    sec = defn[section]
    src = sec.get("data", "embedded")
    kw = {} if src == "embedded" else ({"npz": src} if src.endswith(".npz") else {"data_dir": src})
    return load_dataset(TRAIN_DATASET[dataset], limit=sec.get("limit") or None, **kw)  # 0 = all


def _backbone(defn: Definition, methods: list[str], data, results: Path, progress: bool) -> "Path | None":
    """The checkpoint Tr-Net methods use; pre-trained here (and kept) when it does not exist yet."""
    from harness.backbones.pretrain import default_checkpoint_path, pretrain
    from harness.train.recipe import BACKBONE

    if all(m == "original" for m in methods):
        return None
    bb = defn.get("backbone", {})
    name = bb.get("name", "resnet32")
    path = Path(bb["checkpoint"]) if "checkpoint" in bb else default_checkpoint_path(results, name, data.name)
    if not path.exists():
        cfg = BACKBONE.with_(epochs=bb.get("epochs"), batch_size=bb.get("batch_size"))
        meta = pretrain(name, data, path, cfg=cfg, progress=progress)
        print(f"pre-trained {name} on {data.name} ({meta['n_train']} images, {cfg.epochs} epochs): "
              f"val {meta['val_acc']:.2f}% -> {path}")
    return path


def _train_cfg(section: dict, method: str):
    from harness.proxies.training import default_config

    return default_config(method).with_(epochs=section.get("method_epochs", {}).get(method),
                                        warmup_epochs=section.get("method_warmup", {}).get(method),
                                        batch_size=section.get("batch_size"), cutout=section.get("cutout"))


def _evaluators(defn: Definition, dataset: str, results: Path, progress: bool) -> dict[str, Evaluator]:
    ev = defn["evaluator"]
    if ev["kind"] == "tabular":
        return {"original": TabularEvaluator(dataset, ev.get("metric", "val_acc"), ev.get("epochs", 12))}
    data = _train_data(defn, "evaluator", dataset)
    methods = ev["methods"]
    backbone = _backbone(defn, methods, data, results, progress)
    record = Path(ev.get("record", results / "train.parquet"))
    out: dict[str, Evaluator] = {}
    for m in methods:
        cfg = _train_cfg(ev, m)
        trainer = TrainEvaluator(m, data, cfg=cfg, backbone=backbone, record_path=record, table_dataset=dataset,
                                 progress=progress)
        out[m] = trainer if ev["kind"] == "train" else RecordedEvaluator(
            record, m, data.name, on_miss=ev.get("on_miss", "train"), trainer=trainer,
            config=cfg.as_dict(), table_dataset=dataset)
    return out


def run_search(defn: Definition, results: Path, batch_id: str, progress: bool = True) -> pd.DataFrame:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = range(defn.get("seed_offset", 0), defn.get("seed_offset", 0) + defn["seeds"])
    summaries = []
    for dataset in defn["datasets"]:
        for method, evaluator in _evaluators(defn, dataset, results, progress).items():
            for sampler_name in defn["samplers"]:
                options = defn.get("sampler_options", {}).get(sampler_name, {})
                t0 = time.perf_counter()
                for seed in seeds:
                    prov = {k: v for k, v in run_record(seed=seed).items() if k != "device"}
                    meta = {"run_id": f"{batch_id}/{dataset}/{method}/{sampler_name}/s{seed}", "batch_id": batch_id,
                            "benchmark": defn.name, "method": method, "evaluator": evaluator.name,
                            "sampler": sampler_name, "dataset": dataset, **prov}
                    if defn.get("workers", 1) > 1:
                        rows = search_with_workers(defn, dataset, sampler_name, seed, options, meta, results)
                    else:
                        rows = search_once(evaluator, make_sampler(sampler_name, seed, **options), defn["budget"])
                        for k, v in meta.items():
                            rows[k] = v
                        append_parquet(rows, results / "runs.parquet")
                    summaries.append({**{k: meta[k] for k in ("run_id", "batch_id", "benchmark", "method",
                                                              "evaluator", "sampler", "dataset", "commit")},
                                      "seed": seed, "budget": defn["budget"], **summarise(rows),
                                      "device": rows["device"].iloc[0]})
                s = pd.DataFrame(summaries[-len(seeds):])
                print(f"{defn.name}: {dataset:<14} {method:<11} {sampler_name:<6} best-by-proxy 200-ep test "
                      f"{s['best_ground_truth'].mean():.2f} ± {s['best_ground_truth'].std(ddof=0):.2f} "
                      f"over {len(s)} seeds ({time.perf_counter() - t0:.1f} s)")
    out = pd.DataFrame(summaries)
    append_parquet(out, results / "summary.parquet")
    return out


def run_rank(defn: Definition, results: Path, batch_id: str, progress: bool = True) -> pd.DataFrame:
    from harness.analysis.rank import rank_proxy, rank_table_proxy
    from harness.tabular.nb201 import NB201Table

    table = NB201Table.load()
    rows = []
    for ds in defn["datasets"]:
        for proxy in defn.get("proxies", ["nb201-12ep-val"]):
            if "sample" in defn or "top_k" not in defn:
                rows.append(rank_table_proxy(table, ds, proxy, sample=defn.get("sample"),
                                             draws=defn.get("draws", 20)).row())
            if "top_k" in defn:
                rows.append(rank_table_proxy(table, ds, proxy, top=defn["top_k"], ties=defn.get("ties", "drop")).row())
        if defn.get("train", {}).get("archs", 0) > 0:
            rows.extend(_rank_trained(defn, ds, table, results, progress))
    df = pd.DataFrame(rows)
    df["batch_id"], df["benchmark"], df["truth"] = batch_id, defn.name, "test_acc@200"
    for k, v in run_record().items():
        df[k] = v
    append_parquet(df, results / "rank.parquet")
    return df


def _rank_trained(defn: Definition, dataset: str, table, results: Path, progress: bool) -> list[dict]:
    """Train ``train.archs`` random architectures per method, rank their val acc vs ground truth."""
    from harness.analysis.rank import rank_proxy

    sec = defn["train"]
    data = _train_data(defn, "train", dataset)
    methods = sec.get("methods", ["original", "tr-net-5-5"])
    backbone = _backbone(defn, methods, data, results, progress)
    rng = np.random.default_rng(defn.get("seed_offset", 0))
    archs = rng.choice(space.NUM_ARCHS, size=sec["archs"], replace=False)
    truth = table.column(dataset, "test_acc", 200)
    record = Path(sec.get("record", results / "train.parquet"))
    rows = []
    for m in methods:
        ev = RecordedEvaluator(record, m, data.name, on_miss="train", config=_train_cfg(sec, m).as_dict(),
                               trainer=TrainEvaluator(m, data, cfg=_train_cfg(sec, m), backbone=backbone,
                                                      record_path=record, table_dataset=dataset, progress=progress),
                               table_dataset=dataset)
        evals = [ev(space.from_index(int(a))) for a in archs]
        proxy = np.full(space.NUM_ARCHS, np.nan)
        proxy[archs] = [e.value for e in evals]
        r = rank_proxy(proxy, truth, dataset=dataset, proxy_name=f"trained:{m}", draws=1)
        rows.append({**r.row(), "wall_s": float(np.mean([e.wall_s for e in evals])),
                     "peak_bytes": float(np.mean([e.peak_bytes for e in evals]))})
    return rows


def run_benchmark(defn: Definition, results: "str | Path" = "results", progress: bool = True) -> pd.DataFrame:
    results = Path(results)
    batch_id = new_batch_id(defn.name)
    run = run_search if defn["kind"] == "search" else run_rank
    return run(defn, results, batch_id, progress)
