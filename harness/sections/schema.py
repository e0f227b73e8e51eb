"""The sections and lists several kinds share: their keys, and the checks a kind's ``validate``
calls (:func:`check_sections` for everything a definition names in them, :func:`check_arch_list`).

``[train]``: how candidates train (:class:`harness.proxies.TrainSettings`); ``[backbone]``: the
backbone Tr-Nets borrow (:class:`harness.backbones.pretrain.BackboneSettings`); ``space``,
``datasets``, ``proxies``.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from harness import HarnessError
from harness.backbones.resnet import BACKBONES, SHORTCUTS
from harness.data.datasets import DATASETS as TRAIN_DATASETS
from harness.data.sources import NAMED_SOURCES
from harness.definition.schema import BOOL, INT, STR, Definition
from harness.proxies import proxy_family
from harness.proxies.settings import ON_MISS
from harness.spaces import get_space, space_names
from harness.train.recipe import COSINE_PERIODS, MODES, PRECISIONS
from harness.transfer.splice import PREFIX_BN

TRAIN_SCHEMA = {"data": STR, "dataset": STR, "device": STR, "limit": INT,
                "limits": {"train": INT, "valid": INT, "test": INT}, "batch_size": INT, "cutout": INT, "archs": INT,
                "epochs": {"*": INT}, "warmup": {"*": INT}, "on_miss": STR, "seed": INT,
                "cosine_period": STR, "network": {"*": (int, float, bool)}, "precision": STR, "channels_last": BOOL,
                "compile": BOOL}
BACKBONE_SCHEMA = {"name": STR, "epochs": INT, "batch_size": INT, "checkpoint": STR, "shortcut": STR,
                   "allow_overlap": BOOL, "prefix_bn": STR, "limit": INT, "mode": STR}
#: Largest size option of a space's network (``train.network``: DARTS' C = 36, layers = 20; NB201's
#: N = 5): validation builds the network (on the meta device, still ~35 ms per DARTS cell).
NETWORK_UPPER = 1_000


def family_proxies(d: Definition) -> list[str]:
    """The definition's proxies that a proxy family names (all but those its kind resolves itself)."""
    return [p for p in d.get("proxies", []) if p not in d.spec.own_proxies]


def trained_proxies(d: Definition) -> list[str]:
    """The definition's proxies whose family trains candidates (``train:`` and ``recorded:``)."""
    return [p for p in family_proxies(d) if proxy_family(p).trains]


def check_sections(d: Definition, *, trains: bool = False) -> None:
    """The space and its network options, ``datasets``, ``proxies``, ``[train]``, ``[backbone]``:
    every name known, every dataset with images where the run trains (``trains``: whatever its
    proxies, as a CKA run)."""
    src = d.source
    d.one_of("space", d["space"], space_names())
    space = get_space(d["space"])
    options = [p for p in inspect.signature(space.build_network).parameters if p not in ("arch", "num_classes")]
    for key, value in d.get("train", {}).get("network", {}).items():
        d.one_of("train.network", key, options)  # options of the space's build_network, e.g. darts C, layers
        if not isinstance(value, bool) and value > NETWORK_UPPER:  # a network of that many cells would not fit
            raise HarnessError(f"{src}: key 'train.network.{key}' = {value} is more than this machine can run "
                               f"(at most {NETWORK_UPPER:,})")
    if "datasets" in d:
        if not d["datasets"]:
            raise HarnessError(f"{src}: key 'datasets' must not be empty")
        for ds in d["datasets"]:
            d.one_of("datasets", ds, space.datasets)
    for p in family_proxies(d):
        try:
            family = proxy_family(p)
        except HarnessError as e:
            raise HarnessError(f"{src}: key 'proxies': {e}") from None
        if family.space(p) not in (None, space.name):
            raise HarnessError(f"{src}: key 'proxies': {p!r} is a table of another space than {space.name!r}")
    train = d.get("train", {})
    if (trains or trained_proxies(d)) and train.get("data", "embedded") in NAMED_SOURCES:  # both CIFAR-10 only
        for ds in d.get("datasets", []):
            if ds != "cifar10":  # the only images shipped: never stand in for another dataset
                raise HarnessError(f"{src}: key 'datasets' = {ds!r} needs its images for real training: set "
                                   "'train.data' to an .npz or a folder of official archives "
                                   "(`harness data download`); only CIFAR-10 images are embedded")
    for key, known in (("dataset", TRAIN_DATASETS), ("on_miss", ON_MISS), ("cosine_period", COSINE_PERIODS),
                       ("precision", PRECISIONS)):
        if key in train:
            d.one_of(f"train.{key}", train[key], known)
    for key in ("epochs", "warmup") if "proxies" in d.spec.schema else ():
        for method in train.get(key, {}):
            if f"train:{method}" not in d.get("proxies", []) and f"recorded:{method}" not in d.get("proxies", []):
                raise HarnessError(f"{src}: key 'train.{key}.{method}': no proxy train:{method} or "
                                   f"recorded:{method} in 'proxies'")
    backbone = d.get("backbone", {})
    for key, known in (("name", BACKBONES), ("prefix_bn", PREFIX_BN), ("shortcut", SHORTCUTS), ("mode", MODES)):
        if key in backbone:
            d.one_of(f"backbone.{key}", backbone[key], known)


def check_arch_list(d: Definition, *, files: bool = False) -> None:
    """Every ``arch_list`` entry is an architecture of the space (its string or index), or with
    ``files`` an existing file (a network checkpoint)."""
    space = get_space(d["space"])
    for a in d.get("arch_list", []):
        try:
            space.canonical(int(a) if a.isdigit() else a)
        except HarnessError as e:
            if not (files and Path(a).is_file()):
                raise HarnessError(f"{d.source}: key 'arch_list': {e}") from None
