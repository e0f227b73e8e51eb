"""Benchmark definitions: one TOML file (or one CLI command) = one experiment of one kind.

Every key is checked before any work starts: an unknown key, a wrong type, a value out of range,
an unknown dataset / sampler / proxy / sampler option is a :class:`harness.HarnessError` naming
the source, the key and the problem. A ``[full]`` table deep-merges over the rest when the run
asks for the full-size variant (GPU machines). Every default lives in :data:`DEFAULTS`.

Kinds (keys besides ``name``, ``kind``, ``description``, ``space``):

``search``      Optuna search: ``datasets``, ``samplers``, ``budget``, ``seeds``,
                ``seed_offset``, ``workers``, ``proxies`` (each searched separately),
                ``[sampler_options.<sampler>]``, ``[train]``, ``[backbone]``, ``storage`` (a
                database URL or journal file shared by workers on many machines), ``delay_s``
                (seconds each evaluation waits: emulates an expensive proxy).
``rank``        rank correlation vs the ground truth (paper Tables 1/3): ``datasets``,
                ``proxies``, ``sample``, ``draws``, ``top_k``, ``ties``, ``seed``; table proxies
                are scored on every architecture, training proxies on ``train_selections``
                (``random``: ``train.archs`` random ones; ``top_k``: the top-k by ground truth),
                zero-cost proxies (``zc:<measure>``) on ``sample`` random ones, each timed alone on
                the first ``zc_timed`` of them, and also ranked over the ``zc_top_k`` best of
                those by ground truth.
``memory``      bytes saved for backward, Original vs Tr-Net-i-j (paper Table 2): ``batch_size``,
                ``archs`` (random architectures besides the all-conv one), ``seed``, ``i``, ``j``,
                ``supernet`` (true: the space's supernet vs Tr-Supernet-i-j, e.g. DARTS Table 5).
``throughput``  training images/s, Original vs Tr-Net-i-j, interleaved: ``archs`` (random),
                ``batch_size``, ``steps``, ``threads``, ``i``, ``j``, ``modes`` (recipe.MODES),
                ``methods`` (original, tr-net); optionally the prefix feature cache's speed-up of
                Tr-Net evaluation (``cache_archs``, ``cache_modes``, ``cache_rounds``) and images/s
                with K candidates at once (``concurrency``: the K values), :mod:`harness.bench.kinds.throughput_speed`.
``cka``         CKA of backbone blocks vs candidate cells (paper Figs. 1/2): ``archs`` (random
                count) or ``arch_list``, ``n_eval``, ``eval_batch_size``, ``supernet``, ``estimator``,
                ``keep_networks``, ``[train]``, ``[backbone]`` (its ``checkpoint``, else one
                pre-trained by its ``name`` / ``epochs`` and kept, as for Tr-Net proxies).
``train``       train given candidates once each: ``arch_list``, ``proxies`` (train:<method>;
                ``train:tr-net-auto`` chooses Tr-Net-i-j's depth from CKA, NB201 only),
                ``datasets``, ``[train]``, ``[backbone]``, ``[transfer]`` (how tr-net-auto chooses:
                ``threshold``, ``estimator``, ``cka`` table, ``cka_archs``, ``cka_epochs``).
"""
from __future__ import annotations

import copy
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from harness import HarnessError
from harness.analysis.autotransfer import AUTO_METHOD
from harness.analysis.rank import TIES, TRAIN_SELECTIONS
from harness.backbones.resnet import BACKBONES, SHORTCUTS
from harness.data.datasets import DATASETS as TRAIN_DATASETS
from harness.data.sources import NAMED_SOURCES
from harness.definition.splices import check_splices
from harness.methods.oneshot.dartspt import config_from_table, parse_supernet
from harness.methods.samplers import SAMPLERS, make_sampler
from harness.proxies import proxy_kind
from harness.proxies.settings import ON_MISS
from harness.spaces import get_space, space_names
from harness.train.recipe import COSINE_PERIODS, MODES, PRECISIONS
from harness.transfer.depth import CKA_ESTIMATORS, DEFAULT_ESTIMATOR, check_threshold
from harness.transfer.splice import PREFIX_BN

_STR, _INT, _BOOL, _FLOAT = str, int, bool, (int, float)
_LIST_STR = "list[str]"
_LIST_INT = "list[int]"
_TABLE = "table"

TRAIN_SCHEMA = {"data": _STR, "dataset": _STR, "device": _STR, "limit": _INT,
                "limits": {"train": _INT, "valid": _INT, "test": _INT}, "batch_size": _INT, "cutout": _INT, "archs": _INT,
                "epochs": {"*": _INT}, "warmup": {"*": _INT}, "on_miss": _STR, "seed": _INT,
                "cosine_period": _STR, "network": {"*": (int, float, bool)}, "precision": _STR, "channels_last": _BOOL}
BACKBONE_SCHEMA = {"name": _STR, "epochs": _INT, "batch_size": _INT, "checkpoint": _STR, "shortcut": _STR,
                   "allow_overlap": _BOOL, "prefix_bn": _STR, "limit": _INT, "mode": _STR}
#: How train:tr-net-auto chooses its depth (harness.analysis.autotransfer.AutoTransferSettings).
TRANSFER_SCHEMA = {"threshold": _FLOAT, "estimator": _STR, "cka": _STR, "cka_archs": _INT, "cka_epochs": _INT}
#: DARTS+PT settings (harness.methods.oneshot.bilevel.SearchConfig); warmup per supernet name.
ONESHOT_SCHEMA = {"epochs": _INT, "warmup": {"*": _INT}, "tune_epochs": _INT, "project_every": _INT,
                  "batch_size": _INT, "cutout": _INT, "order": _STR, "train_portion": _FLOAT,
                  "hessian_every": _INT, "hessian_batch": _INT, "power_iters": _INT, "select_limit": _INT}
COMMON = {"name": _STR, "kind": _STR, "description": _STR, "space": _STR, "full": _TABLE}
SCHEMAS: dict[str, dict[str, Any]] = {
    "search": {"datasets": _LIST_STR, "samplers": _LIST_STR, "budget": _INT, "seeds": _INT, "seed_offset": _INT,
               "workers": _INT, "proxies": _LIST_STR, "sampler_options": {"*": _TABLE}, "storage": _STR, "delay_s": _FLOAT,
               "train": TRAIN_SCHEMA, "backbone": BACKBONE_SCHEMA},
    "rank": {"datasets": _LIST_STR, "proxies": _LIST_STR, "table": _STR, "sample": _INT, "draws": _INT, "top_k": _INT,
             "ties": _STR, "train_selections": _LIST_STR, "compare_to": _STR, "seed": _INT, "zc_timed": _INT, "zc_top_k": _INT, "train": TRAIN_SCHEMA,
             "backbone": BACKBONE_SCHEMA},
    "memory": {"batch_size": _INT, "archs": _INT, "arch_list": _LIST_STR, "seed": _INT, "i": _INT, "j": _INT,
               "supernet": _BOOL, "backbone": BACKBONE_SCHEMA},
    "throughput": {"batch_size": _INT, "archs": _INT, "arch_list": _LIST_STR, "steps": _INT, "threads": _INT, "seed": _INT, "i": _INT,
                   "j": _INT, "modes": _LIST_STR, "methods": _LIST_STR, "out": _STR,
                   "cache_archs": _INT, "cache_modes": _LIST_STR, "cache_rounds": _INT, "concurrency": _LIST_INT,
                   "backbone": BACKBONE_SCHEMA},
    "cka": {"datasets": _LIST_STR, "archs": _INT, "arch_list": _LIST_STR, "n_eval": _INT, "eval_batch_size": _INT,
            "supernet": _BOOL, "keep_networks": _BOOL, "seed": _INT, "out": _STR, "estimator": _STR, "train": TRAIN_SCHEMA,
            "backbone": BACKBONE_SCHEMA},
    "train": {"datasets": _LIST_STR, "arch_list": _LIST_STR, "proxies": _LIST_STR, "train": TRAIN_SCHEMA,
              "backbone": BACKBONE_SCHEMA, "transfer": TRANSFER_SCHEMA},
    "oneshot": {"datasets": _LIST_STR, "supernets": _LIST_STR, "seeds": _INT, "seed_offset": _INT,
                "warmups": _LIST_INT, "cutouts": _LIST_INT, "search": ONESHOT_SCHEMA,
                "train": {"data": _STR, "device": _STR, "limit": _INT}, "backbone": BACKBONE_SCHEMA},
}
KINDS = tuple(SCHEMAS)

#: Every default, per kind; a definition's value wins.
DEFAULTS: dict[str, dict[str, Any]] = {
    "search": {"space": "nb201", "seeds": 1, "seed_offset": 0, "workers": 1, "proxies": ["nb201-12ep-val"],
               "sampler_options": {}, "train": {}, "backbone": {}},
    "rank": {"space": "nb201", "proxies": ["nb201-12ep-val"], "draws": 20, "ties": "drop", "seed": 0,
             "train_selections": ["random"], "zc_timed": 10, "train": {}, "backbone": {}},
    "memory": {"space": "nb201", "batch_size": 256, "archs": 50, "seed": 0, "i": 5, "j": 5, "supernet": False,
               "backbone": {}},
    "throughput": {"space": "nb201", "batch_size": 256, "archs": 1, "steps": 5, "threads": 0, "seed": 0,
                   "i": 5, "j": 5, "modes": ["fp32"], "methods": ["original", "tr-net"], "backbone": {},
                   "cache_archs": 0, "cache_modes": [], "cache_rounds": 3, "concurrency": []},
    "cka": {"space": "nb201", "datasets": ["cifar10"], "archs": 3, "n_eval": 500, "eval_batch_size": 250,
            "supernet": False, "keep_networks": False, "seed": 0, "estimator": DEFAULT_ESTIMATOR, "train": {},
            "backbone": {}},
    "train": {"space": "nb201", "datasets": ["cifar10"], "proxies": ["train:original"], "train": {},
              "backbone": {}, "transfer": {}},
    "oneshot": {"space": "nb201", "datasets": ["cifar10"], "supernets": ["original", "tr-supernet-5-5"],
                "seeds": 1, "seed_offset": 0, "warmups": [], "cutouts": [], "search": {}, "train": {},
                "backbone": {}},
}
REQUIRED = {"search": ("datasets", "samplers", "budget"), "rank": ("datasets",), "memory": (),
            "throughput": (), "cka": (), "train": ("arch_list",), "oneshot": ()}
#: Integer keys that must be >= 1 (``limit``, ``archs``, ``epochs`` may be 0 where documented).
POSITIVE = ("budget", "seeds", "workers", "sample", "draws", "top_k", "batch_size", "steps", "n_eval",
            "eval_batch_size", "i", "j", "cache_rounds", "limits", "cka_archs")
#: Sizes no run on one machine needs; larger ones would only hang it (a full-scale search is
#: 10 seeds x 100 queries; NB201 has 15,625 candidates). Workers: processes on this machine.
UPPER = {"budget": 1_000_000, "seeds": 10_000, "draws": 100_000, "workers": 4 * (os.cpu_count() or 1),
         "batch_size": 65_536, "archs": 1_000_000, "steps": 100_000, "n_eval": 1_000_000}
#: Largest size option of a space's network (``train.network``: DARTS' C = 36, layers = 20; NB201's
#: N = 5): validation builds the network (on the meta device, still ~35 ms per DARTS cell).
NETWORK_UPPER = 1_000
NON_NEGATIVE = ("seed_offset", "seed", "archs", "limit", "cutout", "threads", "epochs", "zc_timed", "cache_archs",
                "cka_epochs")


@dataclass
class Definition:
    """A validated definition; ``defn[key]`` falls back to the kind's default."""

    source: str   # file path, or the CLI command that built it
    raw: dict
    #: When to stop (``time.time()``), between two candidates, for kinds that train them one by
    #: one (``rank``); a run option, not part of what the rows record: a rerun continues.
    stop_at: "float | None" = None

    def __getitem__(self, key: str) -> Any:
        if key in self.raw:
            return self.raw[key]
        return DEFAULTS[self.kind][key]

    def __contains__(self, key: str) -> bool:
        return key in self.raw or key in DEFAULTS[self.kind]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def kind(self) -> str:
        return self.raw["kind"]

    def as_config(self) -> dict:
        """Every option, defaults filled in: what each result row records."""
        return {**copy.deepcopy(DEFAULTS[self.kind]), **copy.deepcopy(self.raw)}


def _type_ok(value: Any, spec: Any) -> bool:
    if spec == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if spec == _LIST_INT:
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if spec == _TABLE:
        return isinstance(value, dict)
    if spec is _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def _spec_name(spec: Any) -> str:
    return {_LIST_STR: "a list of strings", _LIST_INT: "a list of integers", _TABLE: "a table"}.get(spec, None) if isinstance(spec, str) \
        else ("a number" if isinstance(spec, tuple) else f"{'an' if spec is _INT else 'a'} {spec.__name__}")


def _check(src: str, data: dict, schema: dict, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        spec = schema.get(key, schema.get("*"))
        if spec is None:
            raise HarnessError(f"{src}: unknown key {where!r} (known: {', '.join(k for k in schema if k != '*')})")
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise HarnessError(f"{src}: key {where!r} must be a table, got {type(value).__name__}")
            _check(src, value, spec, where + ".")
        elif not _type_ok(value, spec):
            raise HarnessError(f"{src}: key {where!r} must be {_spec_name(spec)}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):  # every row records the config as JSON
            raise HarnessError(f"{src}: key {where!r} must be a finite number, got {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):
            leaf = key if key != "*" else prefix.rstrip(".").rsplit(".", 1)[-1]
            if (leaf in POSITIVE or prefix.rstrip(".").rsplit(".", 1)[-1] in POSITIVE) and value < 1:
                raise HarnessError(f"{src}: key {where!r} must be >= 1, got {value}")
            if (leaf in NON_NEGATIVE or prefix.rstrip(".").rsplit(".", 1)[-1] in NON_NEGATIVE) and value < 0:
                raise HarnessError(f"{src}: key {where!r} must be >= 0, got {value}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_definition(raw: dict, source: str, *, full: bool = False, overrides: "dict | None" = None) -> Definition:
    """Validate a definition given as a dict (``[full]`` merged when asked, then ``overrides``)."""
    raw = copy.deepcopy(raw)
    for key in ("name", "kind"):
        if key not in raw:
            raise HarnessError(f"{source}: missing key {key!r}")
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise HarnessError(f"{source}: key 'kind' = {kind!r} is unknown (known: {', '.join(KINDS)})")
    schema = {**COMMON, **SCHEMAS[kind]}
    _check(source, raw, schema)
    fullpart = raw.pop("full", {})
    _check(source, fullpart, {k: v for k, v in schema.items() if k != "full"}, "full.")
    if fullpart.get("kind", kind) != kind:  # its keys were checked against this kind's schema
        raise HarnessError(f"{source}: key 'full.kind' = {fullpart['kind']!r}: the full-size variant must be of "
                           f"the same kind ({kind!r})")
    if full:
        raw = _merge(raw, fullpart)
    if overrides:
        raw = _merge(raw, {k: v for k, v in overrides.items() if v is not None})
        _check(source, raw, schema)
    defn = Definition(source, raw)
    _validate(defn)
    return defn


def load_definition(path: "str | Path", *, full: bool = False, overrides: "dict | None" = None) -> Definition:
    """Read and validate a TOML definition file."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"benchmark file {str(path)!r}: does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid TOML: {e}") from None
    return build_definition(raw, str(path), full=full, overrides=overrides)


def _validate(d: Definition) -> None:
    src = d.source

    def one_of(key: str, value, known) -> None:
        if value not in known:
            raise HarnessError(f"{src}: key {key!r} = {value!r} is unknown (known: {', '.join(map(str, known))})")

    for key, most in UPPER.items():
        if key in d.raw and isinstance(d.raw[key], int) and d.raw[key] > most:
            raise HarnessError(f"{src}: key {key!r} = {d.raw[key]} is more than this machine can run "
                               f"(at most {most:,}{' on its ' + str(os.cpu_count()) + ' cores' if key == 'workers' else ''})")
    name = d.name
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise HarnessError(f"{src}: key 'name' = {name!r} must be a non-empty file-name-safe string "
                           "(letters, digits, '-', '_', '.')")
    for key in REQUIRED[d.kind]:
        if key not in d.raw:
            raise HarnessError(f"{src}: missing key {key!r} (needed by kind {d.kind!r})")
    one_of("space", d["space"], space_names())
    space = get_space(d["space"])
    options = [p for p in inspect.signature(space.build_network).parameters if p not in ("arch", "num_classes")]
    for key, value in d.get("train", {}).get("network", {}).items():
        one_of("train.network", key, options)  # options of the space's build_network, e.g. darts C, layers
        if not isinstance(value, bool) and value > NETWORK_UPPER:  # a network of that many cells would not fit
            raise HarnessError(f"{src}: key 'train.network.{key}' = {value} is more than this machine can run "
                               f"(at most {NETWORK_UPPER:,})")
    if "datasets" in d:
        if not d["datasets"]:
            raise HarnessError(f"{src}: key 'datasets' must not be empty")
        for ds in d["datasets"]:
            one_of("datasets", ds, space.datasets)
    for p in d.get("proxies", []):
        try:
            kind = _proxy_kind(d, p)
        except HarnessError as e:
            raise HarnessError(f"{src}: key 'proxies': {e}") from None
        if kind == "table" and not p.startswith(space.name + "-"):
            raise HarnessError(f"{src}: key 'proxies': {p!r} is a table of another space than {space.name!r}")
        if d.kind == "train" and kind != "train":
            raise HarnessError(f"{src}: key 'proxies': kind 'train' takes train:<method> proxies, got {p!r}")
    if d.kind == "train":
        _validate_transfer(d)
        if "estimator" in d["transfer"]:
            one_of("transfer.estimator", d["transfer"]["estimator"], CKA_ESTIMATORS)
    train = d.get("train", {})
    trains = [p for p in d.get("proxies", []) if _proxy_kind(d, p) in ("train", "recorded")] or d.kind == "cka"
    if trains and train.get("data", "embedded") in NAMED_SOURCES:  # both are CIFAR-10 only
        for ds in d.get("datasets", []):
            if ds != "cifar10":  # the only images shipped: never stand in for another dataset
                raise HarnessError(f"{src}: key 'datasets' = {ds!r} needs its images for real training: set "
                                   "'train.data' to an .npz or a folder of official archives "
                                   "(`harness data download`); only CIFAR-10 images are embedded")
    if "dataset" in train:
        one_of("train.dataset", train["dataset"], TRAIN_DATASETS)
    if "on_miss" in train:
        one_of("train.on_miss", train["on_miss"], ON_MISS)
    if "cosine_period" in train:
        one_of("train.cosine_period", train["cosine_period"], COSINE_PERIODS)
    if "precision" in train:
        one_of("train.precision", train["precision"], PRECISIONS)
    if d.kind == "throughput":
        for m in d["modes"]:
            one_of("modes", m, MODES)
        for m in d["methods"]:
            one_of("methods", m, ("original", "tr-net"))
        for m in d["cache_modes"]:
            one_of("cache_modes", m, MODES)
        if any(k < 1 for k in d["concurrency"]):
            raise HarnessError(f"{src}: key 'concurrency': every K must be >= 1, got {d['concurrency']}")
    for key in ("epochs", "warmup") if "proxies" in SCHEMAS[d.kind] else ():
        for method in train.get(key, {}):
            if f"train:{method}" not in d.get("proxies", []) and f"recorded:{method}" not in d.get("proxies", []):
                raise HarnessError(f"{src}: key 'train.{key}.{method}': no proxy train:{method} or "
                                   f"recorded:{method} in 'proxies'")
    if "name" in d.get("backbone", {}):
        one_of("backbone.name", d["backbone"]["name"], BACKBONES)
    if "prefix_bn" in d.get("backbone", {}):
        one_of("backbone.prefix_bn", d["backbone"]["prefix_bn"], PREFIX_BN)
    if "shortcut" in d.get("backbone", {}):
        one_of("backbone.shortcut", d["backbone"]["shortcut"], SHORTCUTS)
    if "mode" in d.get("backbone", {}):
        one_of("backbone.mode", d["backbone"]["mode"], MODES)
    if d.kind == "search":
        for s in d["samplers"]:
            one_of("samplers", s, SAMPLERS)
        if d.get("delay_s", 0) < 0:
            raise HarnessError(f"{src}: key 'delay_s' must be >= 0, got {d['delay_s']}")
        for s, options in d["sampler_options"].items():
            one_of("sampler_options", s, SAMPLERS)
            try:
                make_sampler(s, 0, space, **options)  # an option the sampler does not take is an error
            except HarnessError as e:
                raise HarnessError(f"{src}: key 'sampler_options.{s}': {e}") from None
    if d.kind == "rank":
        one_of("ties", d["ties"], TIES)
        trained = [p for p in d["proxies"] if proxy_kind(p) in ("train", "recorded")]
        zero_cost = [p for p in d["proxies"] if proxy_kind(p) == "zero_cost"]
        if zero_cost and "sample" not in d.raw:
            raise HarnessError(f"{src}: key 'sample' is needed: the number of random architectures the "
                               f"zero-cost proxies {', '.join(zero_cost)} score")
        if "zc_top_k" in d.raw and not (zero_cost and 2 <= d["zc_top_k"] <= d.get("sample", 0)):
            raise HarnessError(f"{src}: key 'zc_top_k' must be in 2..sample ({d.get('sample', 0)}) and needs "
                               f"zc: proxies, got {d['zc_top_k']}")
        if "compare_to" in d.raw:
            one_of("compare_to", d["compare_to"], d["proxies"])
        if not d["train_selections"] or len(set(d["train_selections"])) != len(d["train_selections"]):
            raise HarnessError(f"{src}: key 'train_selections' must list each of {', '.join(TRAIN_SELECTIONS)} "
                               f"at most once, and at least one, got {d['train_selections']}")
        for selection in d["train_selections"]:
            one_of("train_selections", selection, TRAIN_SELECTIONS)
        if trained and {"random", "ordered"} & set(d["train_selections"]) and d["train"].get("archs", 0) < 2:
            raise HarnessError(f"{src}: key 'train.archs' must be >= 2 to rank the trained proxies "
                               f"{', '.join(trained)}")
        if trained and "top_k" in d["train_selections"] and d.get("top_k", 0) < 2:
            raise HarnessError(f"{src}: key 'top_k' must be >= 2 to rank the trained proxies "
                               f"{', '.join(trained)} on the top-k (train_selections has 'top_k')")
    if d.kind in ("cka", "train", "memory", "throughput"):
        for a in d.get("arch_list", []):
            try:
                space.canonical(int(a) if a.isdigit() else a)
            except HarnessError as e:
                if d.kind != "cka" or not Path(a).is_file():
                    raise HarnessError(f"{src}: key 'arch_list': {e}") from None
    if d.kind == "oneshot":
        _validate_oneshot(d)
    if d.kind == "cka":
        one_of("estimator", d["estimator"], CKA_ESTIMATORS)
        if d["space"] != "nb201" and (not d["supernet"] or d.get("arch_list") or d["archs"]):
            raise HarnessError(f"{src}: space {d['space']!r}: kind 'cka' compares only its supernet (paper "
                               "Fig. 2): set supernet = true and archs = 0")
    check_splices(d)  # last: the depths are checked against a network built from validated options


AUTO_PROXY = f"train:{AUTO_METHOD}"


def _proxy_kind(d: Definition, proxy: str) -> str:
    """:func:`proxy_kind`, and ``train`` for :data:`AUTO_PROXY` in a ``train`` definition (a Tr-Net
    training proxy once the run has chosen its depth; no other kind chooses one)."""
    return "train" if d.kind == "train" and proxy == AUTO_PROXY else proxy_kind(proxy)


def _validate_transfer(d: Definition) -> None:
    """``train:tr-net-auto`` (NB201 only: the choice compares NB201 cells with backbone blocks) and
    its ``[transfer]`` threshold."""
    auto = AUTO_PROXY in d["proxies"]
    if auto and d["space"] != "nb201":
        raise HarnessError(f"{d.source}: key 'proxies': {AUTO_PROXY!r} chooses the depth from the CKA of NB201 "
                           f"cells: only for space 'nb201' (got {d['space']!r})")
    if d["transfer"] and not auto:
        raise HarnessError(f"{d.source}: key 'transfer': how {AUTO_PROXY} chooses its depth, but 'proxies' does "
                           "not name it")
    if "threshold" in d["transfer"]:
        try:
            check_threshold(d["transfer"]["threshold"])
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'transfer.threshold': {e}") from None


def _validate_oneshot(d: Definition) -> None:
    """Every supernet name, and the search settings each run would get (axes included)."""
    for name in d["supernets"]:
        try:
            parse_supernet(name)
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'supernets': {e}") from None
    if not d["supernets"]:
        raise HarnessError(f"{d.source}: key 'supernets' must not be empty")
    for key in ("warmups", "cutouts"):
        if any(v < 0 for v in d[key]):
            raise HarnessError(f"{d.source}: key {key!r} must hold integers >= 0, got {d[key]}")
    for supernet in d["supernets"]:
        for warmup in d["warmups"] or [None]:
            for cutout in d["cutouts"] or [None]:
                try:
                    config_from_table(d["search"], supernet, warmup, cutout)
                except HarnessError as e:
                    raise HarnessError(f"{d.source}: key 'search' ({supernet}): {e}") from None
