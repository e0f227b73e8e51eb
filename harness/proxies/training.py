"""Real-training proxies: train each candidate as "Original" or "Tr-Net-i-j" (paper Sec. 3.2,
4.1), or replay earlier training runs from the results store.

* :func:`train_candidate` -- one training run of one candidate of any space -> a results row;
* :class:`TrainProxy` -- trains every candidate it scores and appends the row to the store's
  ``train`` table; :meth:`TrainProxy.score_many` trains several at once on a GPU
  (:mod:`harness.train.concurrent`), one at a time elsewhere;
* :class:`RecordedProxy` -- the ``train`` table as a lookup (rows of its own training seed); a miss
  trains (``on_miss="train"``) or errors (``on_miss="error"``).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from harness import HarnessError
from harness.backbones.checkpoint import load_backbone
from harness.data.datasets import Dataset, seen_in_training
from harness.proxies.base import GroundTruth, Score
from harness.proxies.settings import TrainSettings, parse_method
from harness.runinfo import run_record
from harness.spaces import SearchSpace
from harness.store.results import ResultsStore
from harness.train.concurrent import concurrency, run_concurrently
from harness.train.loop import TrainResult, train
from harness.train.recipe import TrainConfig
from harness.transfer.cache import PrefixFeatureCache
from harness.transfer.splice import build_tr_net

PRETRAIN_HINT = ("pre-train one first, e.g. `harness pretrain resnet32 --dataset cifar10-valid` "
                 "(writes results/checkpoints/resnet32-cifar10-valid.pt), then pass --backbone PATH")


@lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: "str | Path") -> str:
    """The checkpoint's content hash, recorded in every row that used it (cached per file version)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def check_backbone_leakage(meta: dict, path: "str | Path", dataset: str, allow: bool = False) -> None:
    """Refuse a backbone whose training images include the candidates' validation or test images
    (unless ``allow``): its frozen prefix would carry them into every score."""
    trained_on = meta.get("dataset")
    if trained_on is None or meta.get("split", "train") != "train":
        if not allow:
            raise HarnessError(f"backbone checkpoint {path}: its metadata does not say it was trained on a train split "
                               f"(dataset {trained_on!r}, split {meta.get('split')!r}); pass --allow-backbone-overlap "
                               "(or backbone.allow_overlap = true) if you mean to use it")
        return
    leaked = seen_in_training(trained_on, dataset)
    if leaked and not allow:
        raise HarnessError(f"backbone checkpoint {path}: trained on {trained_on!r}, whose train images include the "
                           f"{'/'.join(leaked)} split of {dataset!r} the candidates are scored on; pre-train on "
                           f"{dataset!r} instead, or pass --allow-backbone-overlap (backbone.allow_overlap = true)")


def build_candidate(space: SearchSpace, arch: Any, method: str, num_classes: int,
                    backbone_path: "str | Path | None" = None, dataset: "str | None" = None,
                    allow_overlap: bool = False, prefix_bn: str = "running", network: "dict | None" = None
                    ) -> tuple[torch.nn.Module, dict]:
    """The network to train (``network``: options of ``space.build_network``, e.g. DARTS ``C``,
    ``layers``), and metadata about the backbone it borrows (empty for Original).
    With ``dataset`` (the candidates' data), a backbone that has seen its valid/test images is refused."""
    ij = parse_method(method)
    network = network or {}
    if ij is None:
        return space.build_network(arch, num_classes=num_classes, **network), {}
    if backbone_path is None:
        raise HarnessError(f"method {method!r} needs a pre-trained backbone checkpoint: {PRETRAIN_HINT}")
    backbone, meta = load_backbone(backbone_path)  # first: its init draws from the seeded RNG too
    if dataset is not None:
        check_backbone_leakage(meta, backbone_path, dataset, allow_overlap)
    model = build_tr_net(space.build_network(arch, num_classes=num_classes, **network), backbone, i=ij[0], j=ij[1],
                         prefix_bn=prefix_bn)
    return model, {"backbone": str(backbone_path), "backbone_sha256": file_sha256(backbone_path),
                   "backbone_meta": json.dumps(meta, sort_keys=True),
                   "prefix_bn": prefix_bn}


def default_config(method: str, space: SearchSpace, data: Dataset) -> TrainConfig:
    """The method's recipe for ``space`` in the default mode of the device ``data`` lives on."""
    return TrainSettings(device=str(data.train.x.device)).config(method, space.name)


def prepare_network(space: SearchSpace, arch: Any, method: str, data: Dataset, *, cfg: "TrainConfig | None" = None,
                    backbone: "str | Path | None" = None, seed: int = 0, label: "str | None" = None,
                    progress: bool = True, allow_overlap: bool = False, prefix_bn: str = "running",
                    network: "dict | None" = None, feature_cache: "PrefixFeatureCache | None" = None,
                    compiled: bool = False) -> tuple[torch.nn.Module, Callable[[], TrainResult], dict]:
    """Build one candidate now (its initial weights drawn from the global RNG seeded with ``seed``)
    -> (model, a job that trains it, backbone metadata). Jobs may run concurrently
    (:func:`harness.train.concurrent.run_concurrently`): training draws only from its own seeded
    generator. A Tr-Net with ``feature_cache`` is evaluated on the cache's prefix features (exact, faster);
    ``compiled`` trains through ``torch.compile`` (:func:`harness.train.loop.train`)."""
    cfg = cfg or default_config(method, space, data)
    torch.manual_seed(seed)  # the initial weights are part of what a seed reproduces
    model, backbone_info = build_candidate(space, arch, method, data.num_classes, backbone, data.name, allow_overlap,
                                           prefix_bn, network)
    label = label or f"{method} {space.format(arch)}"
    evaluator = feature_cache.evaluator(data, cfg, backbone_info["backbone_sha256"]) \
        if feature_cache is not None and backbone_info else None

    def job() -> TrainResult:
        return train(model, data, cfg, seed=seed, label=label, progress=progress, evaluator=evaluator,
                     compiled=compiled)
    return model, job, backbone_info


def train_network(space: SearchSpace, arch: Any, method: str, data: Dataset, **options
                  ) -> tuple[torch.nn.Module, TrainResult, dict]:
    """Build and train one candidate -> (trained model, training result, backbone metadata);
    ``options`` as :func:`prepare_network`'s."""
    model, job, backbone_info = prepare_network(space, arch, method, data, **options)
    return model, job(), backbone_info


def prepare_candidate(space: SearchSpace, arch: Any, method: str, data: Dataset, *,
                      cfg: "TrainConfig | None" = None, **options) -> Callable[[], dict]:
    """Build one candidate now; returns the job that trains it and returns its flat results row
    (accuracies, cost, provenance). ``options`` as :func:`prepare_network`'s."""
    arch = space.canonical(arch)
    cfg = cfg or default_config(method, space, data)
    network = options.get("network")
    _, job, backbone_info = prepare_network(space, arch, method, data, cfg=cfg, **options)

    def run() -> dict:
        return _row(space, arch, method, data, cfg, network, job(), backbone_info, options.get("seed", 0),
                    options.get("compiled", False))
    return run


def train_candidate(space: SearchSpace, arch: Any, method: str, data: Dataset, *,
                    cfg: "TrainConfig | None" = None, backbone: "str | Path | None" = None, seed: int = 0,
                    progress: bool = True, allow_overlap: bool = False, prefix_bn: str = "running",
                    network: "dict | None" = None, feature_cache: "PrefixFeatureCache | None" = None,
                    compiled: bool = False) -> dict:
    """Train one candidate; returns a flat results row (accuracies, cost, provenance)."""
    return prepare_candidate(space, arch, method, data, cfg=cfg, backbone=backbone, seed=seed, progress=progress,
                             allow_overlap=allow_overlap, prefix_bn=prefix_bn, network=network,
                             feature_cache=feature_cache, compiled=compiled)()


def _row(space: SearchSpace, arch: Any, method: str, data: Dataset, cfg: TrainConfig, network: "dict | None",
         r: TrainResult, backbone_info: dict, seed: int, compiled: bool) -> dict:
    arch_str = space.format(arch)
    index = space.index_of(arch) if hasattr(space, "index_of") else None
    return {
        "space": space.name, "arch_str": arch_str, "arch_index": index, "method": method, "dataset": data.name,
        "data_source": data.source, "n_train": len(data.train),
        "n_valid": len(data.valid) if data.valid is not None else 0, "n_test": len(data.test),
        "val_acc": r.val_acc, "test_acc": r.test_acc, "train_loss": r.train_loss, "epochs": r.epochs,
        "warmup_epochs": cfg.warmup_epochs, "steps": r.steps, "wall_s": r.wall_s,
        "images_per_s": r.images_per_s, "saved_bytes": r.saved_bytes, "peak_cuda_bytes": r.peak_cuda_bytes,
        "peak_rss_bytes": r.peak_rss_bytes, "params": r.params, "trainable_params": r.trainable_params,
        "config": config_json(cfg, network), "compiled": compiled, "history": json.dumps(r.history),
        **backbone_info, **run_record(seed=seed, device=str(data.train.x.device)),
    }


def config_json(cfg: TrainConfig, network: "dict | None" = None) -> str:
    """The ``config`` column: the recipe, plus the network options when any were given (so
    recorded proxies never mix runs of differently sized networks)."""
    return json.dumps({**cfg.as_dict(), **({"network": dict(network)} if network else {})}, sort_keys=True)


def _score_of(row: dict, truth: float) -> Score:
    peak = row["peak_cuda_bytes"] if row["peak_cuda_bytes"] is not None else row["saved_bytes"]
    value = row["val_acc"] if row["val_acc"] is not None else row["test_acc"]
    return Score(value, truth, row["wall_s"], peak, row["device"])


class TrainProxy:
    """Real training of each candidate (``train:<method>``); rows appended to ``store``'s ``train``
    table. The score is the validation accuracy (test accuracy when the dataset has no valid split)."""

    def __init__(self, space: SearchSpace, method: str, data: Dataset, *, table_dataset: str,
                 cfg: "TrainConfig | None" = None, backbone: "str | Path | None" = None, seed: int = 0,
                 store: "ResultsStore | None" = None, progress: bool = False, meta: "dict | None" = None,
                 allow_overlap: bool = False, prefix_bn: str = "running", network: "dict | None" = None,
                 compiled: bool = False):
        parse_method(method)
        self.network = dict(network or {})
        self.meta, self.allow_overlap, self.prefix_bn, self.compiled = dict(meta or {}), allow_overlap, prefix_bn, compiled
        self.space, self.method, self.data, self.cfg, self.backbone, self.seed = space, method, data, cfg, backbone, seed
        self.store, self.progress = store, progress
        self.feature_cache = PrefixFeatureCache()  # evaluation features of the frozen prefix, for all candidates
        self.name = f"train:{method}"
        self._truth = GroundTruth(space, table_dataset)

    def _job(self, arch: Any, extra: "dict | None" = None) -> Callable[[], dict]:
        """Build ``arch`` now; the job trains it and appends its row (with ``extra`` columns)."""
        run = prepare_candidate(self.space, arch, self.method, self.data, cfg=self.cfg, backbone=self.backbone,
                                seed=self.seed, progress=self.progress, allow_overlap=self.allow_overlap,
                                prefix_bn=self.prefix_bn, network=self.network, feature_cache=self.feature_cache,
                                compiled=self.compiled)

        def job() -> dict:
            row = {**run(), **self.meta, **(extra or {})}
            if self.store is not None:
                self.store.append("train", [row])
            return row
        return job

    def train_row(self, arch: Any) -> dict:
        return self._job(arch)()

    def train_rows(self, archs: list, k: "int | None" = None) -> list[dict]:
        """Train every arch -> their rows, in order, ``k`` at a time. By default (``k=None``) on
        CUDA the first trains alone and its ``max_memory_allocated`` peak (x2: peaks differ between
        architectures) sets how many of the rest train at once
        (:func:`harness.train.concurrent.concurrency`); elsewhere k = 1, exactly :meth:`train_row` in a
        loop. Rows trained k > 1 at a time record ``concurrent`` = k (on CUDA their
        ``peak_cuda_bytes`` is the device's peak over all of them)."""
        device, done = self.data.train.x.device, []
        if k is None:
            k = 1
            if device.type == "cuda" and len(archs) > 1:
                done, archs = [self.train_row(archs[0])], archs[1:]
                k = concurrency(device, 2 * max(int(done[0]["peak_cuda_bytes"] or 0), 1))
        if k == 1:
            return done + [self.train_row(a) for a in archs]
        jobs = [self._job(a, {"concurrent": k}) for a in archs]  # built here, one at a time (global RNG)
        return done + run_concurrently(jobs, k, device)

    def score_many(self, archs: list) -> list[Score]:
        """Scores of ``archs`` in order, trained as :meth:`train_rows` trains them."""
        return [_score_of(row, self._truth(a)) for a, row in zip(archs, self.train_rows(archs))]

    def __call__(self, arch: Any) -> Score:
        return _score_of(self.train_row(arch), self._truth(arch))


class RecordedProxy:
    """Earlier training runs (``recorded:<method>``) as a lookup table.

    Rows match on space, arch, method, dataset, the full training config, the training seed, the
    data (source and the number of train / valid images) and, for a Tr-Net, the backbone's content
    hash, so runs with another budget, other images, another seed or another backbone are never
    mixed in (a second seed is a second measurement, e.g. of the noise between seeds). How the
    same recipe was executed -- the device, ``compiled`` -- is recorded but not matched: like another
    CPU, it rounds the same arithmetic differently; it is not another recipe."""

    def __init__(self, trainer: TrainProxy, on_miss: str = "train"):
        if on_miss not in ("train", "error"):
            raise HarnessError(f"on_miss {on_miss!r}: expected 'train' or 'error'")
        if trainer.store is None:
            raise HarnessError(f"proxy recorded:{trainer.method}: needs a results store to read runs from")
        self.trainer, self.on_miss, self.space = trainer, on_miss, trainer.space
        self.name = f"recorded:{trainer.method}"
        self.config = config_json(trainer.cfg or default_config(trainer.method, trainer.space, trainer.data),
                                  trainer.network)
        self._rows = self._load()

    def _load(self):
        df = self.trainer.store.read("train")
        if df is None:
            return None
        keep = (df["method"] == self.trainer.method) & (df["dataset"] == self.trainer.data.name) \
            & (df["config"] == self.config)
        if "space" in df.columns:
            keep &= df["space"].fillna("nb201") == self.space.name
        if "seed" in df.columns:
            keep &= df["seed"].fillna(0).astype(int) == self.trainer.seed
        data = self.trainer.data
        wanted = {"data_source": data.source, "n_train": len(data.train),
                  "n_valid": len(data.valid) if data.valid is not None else 0}
        if parse_method(self.trainer.method) is not None:  # rows before the option used running statistics
            bn = df["prefix_bn"].fillna("running") if "prefix_bn" in df.columns else "running"
            keep &= bn == self.trainer.prefix_bn
            wanted["backbone_sha256"] = file_sha256(self.trainer.backbone)
        for column, value in wanted.items():
            # A column no row recorded (absent, or declared but all null) says nothing about the rows.
            if column in df.columns and df[column].notna().any():
                keep &= df[column] == value
        return df[keep]

    def _match(self, arch_str: str):
        return None if self._rows is None else self._rows[self._rows["arch_str"] == arch_str]

    def _recorded(self, arch: Any) -> "Score | None":
        """The recorded score of ``arch``; None (or an error, ``on_miss="error"``) when there is none."""
        arch_str = self.space.format(arch)
        rows = self._match(arch_str)
        if rows is None or rows.empty:  # another worker may have trained it since we loaded
            self._rows = self._load()
            rows = self._match(arch_str)
        if rows is None or rows.empty:
            if self.on_miss == "error":
                raise HarnessError(f"recorded results {str(self.trainer.store.path('train'))!r}: no "
                                   f"{self.trainer.method} run of {arch_str} on {self.trainer.data.name} with this "
                                   "training config; train it first or use on_miss = 'train'")
            return None
        peak = rows["peak_cuda_bytes"].astype(float).fillna(rows["saved_bytes"].astype(float)).mean()
        val = rows["val_acc"].astype(float)
        value = float(val.mean()) if val.notna().all() else float(rows["test_acc"].astype(float).mean())
        return Score(value, self.trainer._truth(arch), float(rows["wall_s"].astype(float).mean()), int(peak),
                     str(rows["device"].iloc[0]), cached=True)

    def __call__(self, arch: Any) -> Score:
        return self._recorded(arch) or self.trainer(arch)

    def score_many(self, archs: list) -> list[Score]:
        """Scores of ``archs`` in order; the misses trained together (:meth:`TrainProxy.score_many`)."""
        scores = [self._recorded(a) for a in archs]
        misses = [n for n, s in enumerate(scores) if s is None]
        for n, s in zip(misses, self.trainer.score_many([archs[n] for n in misses])):
            scores[n] = s
        return scores
