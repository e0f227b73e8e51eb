"""Every Tr-Net-i-j and Tr-Supernet-i-j a definition names, and its network options, checked when it
is validated (paper Sec. 3.2).

Whether a depth exists is only known once the splice is built: ``i`` must leave a trainable cell of
the network (how many search cells it has depends on its options: NB201's ``N``, DARTS' ``layers``),
``j`` a block of the backbone, and the backbone's block ``j`` must output the shape the module after
cell ``i`` takes for the dataset's images. So the splice is built here with the same
:func:`harness.transfer.splice.build_tr_net` that training uses, on PyTorch's ``meta`` device:
modules without storage, shapes propagated, no weights (milliseconds; a second for a first DARTS
network of 20 cells, cached per process). Otherwise a depth the network
cannot have would pass validation and fail only after a backbone was pre-trained for hours.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness import HarnessError, one_line
from harness.backbones.checkpoint import load_backbone
from harness.backbones.resnet import BACKBONES, build_backbone
from harness.data.datasets import input_size
from harness.definition.schema import Definition
from harness.proxies import TRAIN_DATASET, parse_method, proxy_family
from harness.proxies.training import check_backbone_leakage
from harness.proxies.zero_cost.trnet import SuffixNetwork
from harness.sections.schema import family_proxies
from harness.spaces import get_space
from harness.transfer.splice import build_tr_net, build_tr_supernet

#: Images of the memory and throughput kinds (random CIFAR-sized batches).
CIFAR_INPUT = (3, 32, 32)


@functools.lru_cache(maxsize=64)
def _network(space_name: str, space_id: int, options: tuple, supernet: bool) -> nn.Module:
    """The space's network (or supernet) on the meta device; ``space_id`` keys the cache by the
    registered space object, so a space registered again under a name is built afresh."""
    space = get_space(space_name)
    with torch.device("meta"):
        if supernet:
            return space.build_supernet()
        return space.build_network(space.random(np.random.default_rng(0)), **dict(options))


@functools.lru_cache(maxsize=16)
def _backbone(name: str, shortcut: str) -> nn.Module:
    with torch.device("meta"):
        return build_backbone(name, shortcut=shortcut)


def _network_of(defn: Definition, options: dict, supernet: bool) -> tuple:
    """The cache key of the definition's space's network with ``options``; built once here, so
    options its constructor refuses are a :class:`HarnessError` naming ``train.network``."""
    space = get_space(defn["space"])
    key = (space.name, id(space), tuple(sorted(options.items())), supernet)
    try:
        _network(*key)
    except HarnessError as e:
        raise HarnessError(f"{defn.source}: key 'train.network': {e}") from None
    except Exception as e:  # noqa: BLE001 -- any constructor error: the user's values went into it
        raise HarnessError(f"{defn.source}: key 'train.network': the {space.name} network cannot be built with "
                           f"{options} ({one_line(e, 200)})") from None
    return key


def _backbone_of(defn: Definition, by_name_only: bool) -> tuple[tuple[str, str], "Path | None", dict]:
    """(name, shortcut) of the backbone the splices borrow -- an existing ``backbone.checkpoint``'s
    (read, so a damaged one is refused now), else what ``backbone.name`` would pre-train -- with the
    checkpoint's path and metadata."""
    settings = defn.get("backbone", {})
    path = None if by_name_only or not settings.get("checkpoint") else Path(settings["checkpoint"])
    if path is not None and path.is_file():
        try:
            model, meta = load_backbone(path)
        except HarnessError as e:
            raise HarnessError(f"{defn.source}: key 'backbone.checkpoint': {e}") from None
        name = next(n for n, spec in BACKBONES.items() if spec == (model.depth, model.widths))
        return (name, model.shortcut), path, meta
    return (settings.get("name", "resnet32"), settings.get("shortcut", "avgpool_conv")), None, {}


@functools.lru_cache(maxsize=1024)
def _splice_problem(network_key: tuple, backbone_key: tuple, i: int, j: int, size: tuple, suffix: bool) -> "str | None":
    """Why Tr-Net-i-j (Tr-Supernet-i-j for a supernet) of that network and backbone cannot be built
    for ``size`` images (None: it can). The probe the splice pushes through the prefix lives on the
    meta device like the modules; no device mode here, it would slow each op down ~50x."""
    build = build_tr_supernet if network_key[-1] else build_tr_net
    try:
        spliced = build(_network(*network_key), _backbone(*backbone_key), i, j, input_size=size)
        if suffix:
            SuffixNetwork(spliced.tail)  # a zero-cost proxy of the suffix needs a one-input tail
    except HarnessError as e:
        return str(e)
    return None


def _train_datasets(defn: Definition) -> list[str]:
    """The training datasets of the definition's table datasets (``train.dataset`` overrides)."""
    given = defn.get("train", {}).get("dataset")
    return [given] if given else [TRAIN_DATASET.get(ds, ds) for ds in defn.get("datasets", ["cifar10"])]


def check_splices(defn: Definition, supernets: "dict[str, tuple[int, int] | None] | None" = None) -> None:
    """Raise a :class:`HarnessError` naming the file and the key for a Tr-Net / Tr-Supernet depth the
    space's network or the backbone cannot have, or network options its constructor refuses: the
    Tr-Nets the proxies name, and ``supernets`` (a ``supernets`` entry -> its (i, j), None for the
    Original supernet). A kind's ``validate`` calls it last: the depths are checked against a
    network built from validated options."""
    options = dict(defn.get("train", {}).get("network", {}))
    if options:
        _network_of(defn, options, supernet=False)
    named = [("supernets", name, depth, False, True) for name, depth in (supernets or {}).items()]
    for proxy in family_proxies(defn):
        family = proxy_family(proxy)
        method = family.tr_net(proxy)  # a zero-cost proxy of a Tr-Net sees only its suffix (zero_cost.trnet)
        named.append(("proxies", proxy, None if method is None else parse_method(method), family.zero_cost, False))
    named = [n for n in named if n[2] is not None]
    if not named:
        return
    backbone, path, meta = _backbone_of(defn, by_name_only=False)
    for key, label, (i, j), suffix, supernet in named:
        net = _network_of(defn, {} if supernet else options, supernet)
        for dataset in _train_datasets(defn):
            try:
                if path is not None and not (suffix or supernet):  # trained candidates, as build_candidate
                    check_backbone_leakage(meta, path, dataset, defn.get("backbone", {}).get("allow_overlap", False))
                problem = _splice_problem(net, backbone, i, j, input_size(dataset), suffix)
            except HarnessError as e:
                problem = str(e)
            if problem:
                raise HarnessError(f"{defn.source}: key {key!r}: {label!r} on {dataset}: {problem}")


def check_fixed_depth(defn: Definition, supernet: bool) -> None:
    """Tr-Net-i-j (Tr-Supernet-i-j with ``supernet``) of the definition's ``i``, ``j`` with the named
    backbone, on CIFAR-sized images (the memory and throughput kinds' random batches)."""
    backbone, _, _ = _backbone_of(defn, by_name_only=True)
    i, j = defn["i"], defn["j"]
    problem = _splice_problem(_network_of(defn, {}, supernet), backbone, i, j, CIFAR_INPUT, False)
    if problem:
        key = "'i'" if problem.startswith("i=") else "'j'" if problem.startswith("j=") else "'i', 'j'"
        raise HarnessError(f"{defn.source}: key {key}: Tr-{'Supernet' if supernet else 'Net'}-{i}-{j}: {problem}")
