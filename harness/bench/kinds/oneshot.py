"""Kind ``oneshot``: one-shot search -- DARTS+PT by default -- on the Original supernet vs
Tr-Supernet-i-j (TR-NAS paper Sec. 4.3, Table 4, Figs. 5, 6, 8, 9).

For every dataset x supernet x warmup x cutout x seed x method one search (the method's ``search``,
:data:`harness.methods.oneshot.registry.ONESHOT_METHODS`; DARTS+PT:
:func:`harness.methods.oneshot.dartspt.dartspt_search`): one ``oneshot`` row (the method, the found
architecture and its 200-epoch test accuracy from the space's table, search time split into
supernet training and selection, seconds per epoch, bytes saved for backward in one search step at
the search batch size, CUDA peak on a GPU, the Hessian trajectory, seed, full config; a space
without a table, such as DARTS, gets NaN: the found cell would need its own training) and one
``oneshot_epochs`` row per epoch. Tr-Supernets borrow a backbone pre-trained on demand, as the
search kind's Tr-Net proxies. The ``warmups`` axis applies to Tr-Supernets only (the Original
supernet keeps ``search.warmup.original``, 0 by default), as in paper Fig. 8.
"""
from __future__ import annotations

import copy
import itertools
import json

import pandas as pd
import torch

from harness import HarnessError
from harness.definition.schema import FLOAT, INT, LIST_INT, LIST_STR, STR, Definition, Kind, KindSpec
from harness.measure.memory import step_figures
from harness.methods.oneshot.bilevel import SearchConfig, make_optimizers, search_step
from harness.methods.oneshot.dartspt import build_search_supernet, parse_supernet
from harness.methods.oneshot.registry import DEFAULT_METHOD, ONESHOT_METHODS
from harness.proxies import GroundTruth
from harness.runinfo import device_name
from harness.sections.context import check_inputs, proxy_context, run_meta
from harness.sections.schema import BACKBONE_SCHEMA, check_sections
from harness.sections.splices import check_splices
from harness.store.results import ResultsStore

#: DARTS+PT settings (harness.methods.oneshot.bilevel.SearchConfig); warmup per supernet name.
SEARCH_SCHEMA = {"epochs": INT, "warmup": {"*": INT}, "tune_epochs": INT, "project_every": INT,
                 "batch_size": INT, "cutout": INT, "order": STR, "train_portion": FLOAT,
                 "hessian_every": INT, "hessian_batch": INT, "power_iters": INT, "select_limit": INT}
SCHEMA = {"datasets": LIST_STR, "supernets": LIST_STR, "methods": LIST_STR, "seeds": INT, "seed_offset": INT,
          "warmups": LIST_INT, "cutouts": LIST_INT, "search": SEARCH_SCHEMA,
          "train": {"data": STR, "device": STR, "limit": INT}, "backbone": BACKBONE_SCHEMA}
DEFAULTS = {"space": "nb201", "datasets": ["cifar10"], "supernets": ["original", "tr-supernet-5-5"],
            "methods": [DEFAULT_METHOD], "seeds": 1, "seed_offset": 0, "warmups": [], "cutouts": [], "search": {}, "train": {},
            "backbone": {}}


def validate(d: Definition) -> None:
    """Every supernet and method name, and the search settings each run would get (axes included)."""
    check_sections(d)
    if not d["methods"] or len(set(d["methods"])) != len(d["methods"]):
        raise HarnessError(f"{d.source}: key 'methods' must name each method at most once, and at least one, "
                           f"got {d['methods']}")
    for method in d["methods"]:
        d.one_of("methods", method, ONESHOT_METHODS)
    depths = {}
    for name in d["supernets"]:
        try:
            depths[name] = parse_supernet(name)
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'supernets': {e}") from None
    if not d["supernets"]:
        raise HarnessError(f"{d.source}: key 'supernets' must not be empty")
    for key in ("warmups", "cutouts"):
        if any(v < 0 for v in d[key]):
            raise HarnessError(f"{d.source}: key {key!r} must hold integers >= 0, got {d[key]}")
    for method, supernet, warmup, cutout in itertools.product(d["methods"], d["supernets"], d["warmups"] or [None],
                                                              d["cutouts"] or [None]):
        try:
            ONESHOT_METHODS[method].config(d["search"], supernet, warmup, cutout)
        except HarnessError as e:
            raise HarnessError(f"{d.source}: key 'search' ({supernet}): {e}") from None
    check_splices(d, supernets=depths)


def check(d: Definition, batch: "str | None") -> None:
    """It trains supernets whatever its proxies; Tr-Supernets read the backbone."""
    check_inputs(d, reads_images=True, borrows_backbone=any(parse_supernet(s) is not None for s in d["supernets"]))


def search_figures(model: torch.nn.Module, cfg: SearchConfig, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Memory of one search step on a copy of ``model`` (the search itself is left untouched):
    bytes saved for backward by the training-mode forward and loss, parameter counts, and on CUDA
    the peak of a full DARTS step (alpha step, then weight step)."""
    probe = copy.deepcopy(model)
    w_opt, a_opt = make_optimizers(probe, cfg)

    def step() -> None:
        search_step(probe, (x, y), (x, y), w_opt, a_opt, cfg)

    return step_figures(probe, x, y, step)


def _axes(defn: Definition) -> list[tuple]:
    seeds = range(defn["seed_offset"], defn["seed_offset"] + defn["seeds"])
    warmups = defn.get("warmups") or [None]
    cutouts = defn.get("cutouts") or [None]
    combos = []
    for supernet, warmup, cutout, seed, method in itertools.product(defn["supernets"], warmups, cutouts, seeds,
                                                                    defn["methods"]):
        if parse_supernet(supernet) is None and warmup is not None and warmup != warmups[0]:
            continue  # the warmup axis is the Tr-Supernets'; the Original runs once per cutout and seed
        combos.append((supernet, warmup, cutout, seed, method))
    return combos


def run(defn: Definition, store: ResultsStore, batch_id: str, progress: bool) -> pd.DataFrame:
    out = []
    for dataset in defn["datasets"]:
        ctx = proxy_context(defn, dataset, store, batch_id, progress)
        data, truth = ctx.data, GroundTruth(ctx.space, dataset)
        dev = data.train.x.device
        for supernet, warmup, cutout, seed, key in _axes(defn):
            method = ONESHOT_METHODS[key]
            cfg = method.config(defn["search"], supernet, warmup, cutout)
            backbone = ctx.backbone_path() if parse_supernet(supernet) is not None else None
            torch.manual_seed(seed)
            model = build_search_supernet(ctx.space, supernet, data.num_classes, backbone,
                                          tuple(data.train.x.shape[1:])).to(dev)
            gen = torch.Generator().manual_seed(seed)  # byte counts depend on shapes, not values
            x = torch.randn(cfg.batch_size, *data.train.x.shape[1:], generator=gen).to(dev)
            y = torch.randint(0, data.num_classes, (cfg.batch_size,), generator=gen).to(dev)
            figures = search_figures(model, cfg, x, y)
            res = method.search(model, data, cfg, seed=seed, progress=progress,
                                label=f"{method.name} {supernet} {dataset} s{seed}")
            # DARTS+PT's run ids keep the form they had before there were other methods
            run_id = (f"{batch_id}/{dataset}/{supernet}/w{cfg.warmup_epochs}/c{cfg.cutout}/s{seed}"
                      + ("" if key == DEFAULT_METHOD else f"/{key}"))
            meta = run_meta(defn, batch_id, seed, run_id=run_id, dataset=dataset, supernet=supernet)
            search_epochs = [e for e in res.epochs if e["phase"] == "search"]
            eigs = [(e["phase"], e["epoch"], e["eig"], e["eig_power"]) for e in res.epochs if e["eig"] == e["eig"]]
            arch_str = ctx.space.format(res.arch)
            row = {"method": method.name, "arch_str": arch_str, "test_acc": truth(arch_str), "supernet": supernet,
                   "warmup_epochs": cfg.warmup_epochs, "cutout": cfg.cutout, "order": cfg.order,
                   "epochs": cfg.epochs, "tune_epochs": cfg.tune_epochs, "batch_size": cfg.batch_size,
                   "n_train": len(data.train), "data_source": data.source,
                   "search_s": res.train_s + res.select_s, "train_s": res.train_s, "select_s": res.select_s,
                   "measure_s": res.measure_s, "hessian_s": res.hessian_s,
                   "epoch_s": sum(e["epoch_s"] for e in search_epochs) / max(len(search_epochs), 1),
                   "saved_bytes": figures["saved_bytes"], "cuda_peak_bytes": figures.get("cuda_peak_bytes"),
                   "params": figures["params"], "trainable_params": figures["trainable_params"],
                   "final_eig": eigs[-1][2] if eigs else float("nan"),
                   "hessian": json.dumps(eigs), "projections": json.dumps(res.projections),
                   "supernet_valid_acc": res.valid_acc, "search_config": json.dumps(cfg.as_dict()),
                   "device": device_name(str(dev)), **meta}
            store.append("oneshot", [row])
            store.append("oneshot_epochs", [{**e, "run_id": run_id, "dataset": dataset, "supernet": supernet,
                                             "seed": seed, "warmup_epochs": cfg.warmup_epochs, "cutout": cfg.cutout,
                                             "batch_id": batch_id, "benchmark": defn.name} for e in res.epochs])
            out.append(row)
            acc = f"{row['test_acc']:.2f}%" if truth.table is not None else f"unknown (no {ctx.space.name} table)"
            print(f"{defn.name}: {method.name:<8} {dataset:<14} {supernet:<17} w{cfg.warmup_epochs:<2} "
                  f"cutout {cfg.cutout:<2} seed {seed}: {arch_str}  test acc {acc}  search {row['search_s']:.1f} s "
                  f"(train {res.train_s:.1f}, select {res.select_s:.1f})  saved {figures['saved_bytes'] / 2**20:.1f} "
                  f"MiB", flush=True)
    return pd.DataFrame(out)


KIND = Kind(KindSpec("oneshot", SCHEMA, DEFAULTS, validate), run, check=check)
