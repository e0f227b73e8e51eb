"""What every kind shares: building proxy contexts from a definition, and each row's provenance."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness import HarnessError
from harness.backbones.pretrain import BackboneSettings
from harness.data.sources import NAMED_SOURCES
from harness.definition.schema import Definition
from harness.proxies import ProxyContext, TrainSettings, proxy_family
from harness.runinfo import run_record
from harness.sections.schema import family_proxies, trained_proxies
from harness.spaces import get_space
from harness.store.results import ResultsStore


def train_settings(defn: Definition) -> TrainSettings:
    """The definition's ``[train]`` section as :class:`TrainSettings`: each field the section sets
    (tables copied, so the settings never share them with the definition; ``limit`` 0 = all images),
    the field's default otherwise; keys that are no field (``archs``: the count a rank run trains) are
    read elsewhere."""
    t = defn.get("train", {})
    given = {f.name: dict(t[f.name]) if isinstance(t[f.name], dict) else t[f.name]
             for f in dataclasses.fields(TrainSettings) if f.name in t}
    if "limit" in given:
        given["limit"] = given["limit"] or None
    return TrainSettings(**given)


def backbone_settings(defn: Definition) -> BackboneSettings:
    return BackboneSettings(**defn.get("backbone", {}))


def proxy_context(defn: Definition, dataset: str, store: ResultsStore, batch_id: str, progress: bool) -> ProxyContext:
    """Proxies for ``dataset``; their training rows carry this batch and benchmark."""
    return ProxyContext(space=get_space(defn["space"]), dataset=dataset, store=store, train=train_settings(defn),
                        backbone=backbone_settings(defn), results=store.root, progress=progress,
                        meta={"batch_id": batch_id, "benchmark": defn.name}, table=defn.get("table"))


def check_inputs(defn: Definition, *, reads_images: bool = False, borrows_backbone: bool = False) -> None:
    """The files a run of ``defn`` reads exist on this machine: its images (an .npz file or a folder
    of official archives) and the backbone checkpoint it names, where its proxies need them or the
    kind says so (``reads_images``: it trains whatever its proxies; ``borrows_backbone``: it splices
    the backbone whatever its proxies). Not part of validating the file: a ``[full]`` table names
    data only GPU machines hold."""
    checkpoint = defn.get("backbone", {}).get("checkpoint")
    borrows = borrows_backbone or any(proxy_family(p).needs_backbone(p) for p in family_proxies(defn))
    if checkpoint and borrows and not Path(checkpoint).is_file():
        raise HarnessError(f"{defn.source}: key 'backbone.checkpoint' = {checkpoint!r}: no such file (`harness "
                           "pretrain` writes one; without the key the backbone is pre-trained on demand)")
    data = defn.get("train", {}).get("data", "embedded")
    needs = reads_images or trained_proxies(defn) or any(proxy_family(p).needs_data for p in family_proxies(defn))
    if not needs or data in NAMED_SOURCES:
        return
    path = Path(data)
    if not (path.is_file() if data.endswith(".npz") else path.is_dir()):
        raise HarnessError(f"{defn.source}: key 'train.data' = {data!r}: no such {'file' if data.endswith('.npz') else 'folder'} "
                           "(an .npz, or a folder of official archives: `harness data download`)")


def run_meta(defn: Definition, batch_id: str, seed: "int | None" = None, *, trains: bool = False, **extra) -> dict:
    """Provenance every row of a run carries: batch, benchmark, space, the full config (every
    option, defaults filled in; for a run that trains -- its proxies do, or ``trains`` -- the
    concrete precision and memory format its device defaulted to), commit, versions, device, seed."""
    config = defn.as_config()
    if trains or trained_proxies(defn):
        precision, channels_last = train_settings(defn).mode()
        config["train"] = {**config["train"], "precision": precision, "channels_last": channels_last}
    return {"batch_id": batch_id, "benchmark": defn.name, "kind": defn.kind, "space": defn["space"],
            "config": json.dumps(config, sort_keys=True), **extra,
            **{k: v for k, v in run_record(seed=seed).items() if k != "device"}}  # device: per row
