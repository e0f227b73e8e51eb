"""One-shot methods by name: a registered toy method runs end to end through a ``oneshot``
definition; DARTS keeps the argmax of the alphas the shared supernet training leaves; the
``methods`` key is checked; the leaderboard shows each method's rows apart."""
import json

import pandas as pd
import pytest
import torch
from toy_oneshot_method import TOY_METHOD

from harness import HarnessError
from harness.bench.definitions import build_definition
from harness.bench.runner import run_benchmark
from harness.methods.oneshot.argmax import argmax_search
from harness.methods.oneshot.bilevel import SearchConfig
from harness.methods.oneshot.dartspt import dartspt_search
from harness.methods.oneshot.registry import ONESHOT_METHODS
from harness.report.compare import search_entries
from harness.report.oneshot import oneshot_section
from harness.spaces.nb201.encoding import OPS, to_str
from harness.spaces.nb201.supernet import NB201Supernet
from harness.store.results import ResultsStore

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_a_registered_method_runs_end_to_end_beside_darts(tmp_path, monkeypatch):
    monkeypatch.setitem(ONESHOT_METHODS, "first-op", TOY_METHOD)
    raw = {"name": "toy-oneshot", "kind": "oneshot", "supernets": ["original"], "methods": ["first-op", "darts"],
           "search": {"epochs": 1, "tune_epochs": 3, "batch_size": 8, "hessian_every": 0, "select_limit": 8},
           "train": {"data": "embedded", "limit": 8}}
    df = run_benchmark(build_definition(raw, "test"), tmp_path, progress=False)
    assert list(df["method"]) == ["first-op", "DARTS"]
    toy, darts = df.iloc[0], df.iloc[1]
    assert toy["arch_str"] == ALL_NONE and toy["test_acc"] == pytest.approx(10.0, abs=0.5)  # the all-'none' cell
    assert darts["tune_epochs"] == 0 and json.loads(darts["search_config"])["tune_epochs"] == 0
    assert darts["projections"] == "[]" and darts["select_s"] < darts["train_s"]
    assert darts["run_id"] == toy["run_id"].rsplit("/", 1)[0] + "/darts"
    store = ResultsStore(tmp_path)
    assert set(store.read("oneshot")["method"]) == {"first-op", "DARTS"}
    epochs = store.read("oneshot_epochs")
    assert len(epochs) == 2 and set(epochs["phase"]) == {"search"}  # no tuning epochs
    assert set(epochs["run_id"]) == set(df["run_id"])  # one run per method, its epochs apart
    text = oneshot_section(store.read("oneshot"))
    assert "One-shot search: DARTS vs first-op" in text and "| first-op |" in text and "| DARTS |" in text


def test_darts_keeps_the_argmax_of_the_alphas_dartspt_starts_from(tiny_data):
    """DARTS and DARTS+PT share the supernet training: from the same supernet and seed, the alphas
    DARTS ends with are those PT starts from (PT without tuning epochs leaves the alphas as trained),
    and DARTS's cell is their per-edge argmax over all 5 ops."""
    data = tiny_data(32)
    cfg = SearchConfig(epochs=2, tune_epochs=0, batch_size=16, hessian_every=0, power_iters=0)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(NB201Supernet(num_classes=10, C=4, N=1))
    initial = models[0].arch.alpha.detach().clone()
    res = argmax_search(models[0], data, cfg, seed=3)
    pt = dartspt_search(models[1], data, cfg, seed=3)
    alpha = models[0].arch.alpha.detach()
    assert not torch.equal(alpha, initial)  # the search trained them
    torch.testing.assert_close(alpha, models[1].arch.alpha.detach(), rtol=0, atol=0)
    assert res.arch == to_str([OPS[int(k)] for k in alpha.argmax(dim=-1)])
    assert bool((models[0].arch.projected < 0).all()) and res.projections == [] and len(pt.projections) == 6
    assert [e["phase"] for e in res.epochs] == ["search", "search"] and res.measure_s == 0.0
    assert res.select_s < res.train_s and 0.0 <= res.valid_acc <= 100.0


def test_methods_key_is_checked():
    base = {"name": "o", "kind": "oneshot"}
    assert build_definition(base, "t")["methods"] == ["dartspt"]
    assert build_definition({**base, "methods": ["darts", "dartspt"]}, "t")["methods"] == ["darts", "dartspt"]
    with pytest.raises(HarnessError, match=r"^t: key 'methods' = 'pt' is unknown \(known: dartspt, darts\)$"):
        build_definition({**base, "methods": ["pt"]}, "t")
    for bad in ([], ["darts", "darts"]):
        with pytest.raises(HarnessError, match="key 'methods' must name each method at most once"):
            build_definition({**base, "methods": bad}, "t")
    with pytest.raises(HarnessError, match=r"key 'search' \(original\).*tune_epochs"):  # every method's settings
        build_definition({**base, "methods": ["darts"], "search": {"tune_epochs": -1}}, "t")


def test_leaderboard_groups_rows_by_method():
    base = {"benchmark": "nb201-oneshot-darts", "dataset": "cifar10", "warmup_epochs": 0, "cutout": 0,
            "space": "nb201", "test_acc": 90.0, "search_s": 10.0, "train_s": 4.0, "select_s": 6.0, "epoch_s": 4.0,
            "saved_bytes": 2e6, "cuda_peak_bytes": float("nan"), "final_eig": 0.1, "device": "cpu", "batch_id": "b1",
            "seed": 0, "epochs": 2}
    rows = pd.DataFrame([{**base, "method": m, "supernet": s, "arch_str": ALL_NONE, "run_id": f"{m}/{s}"}
                         for s in ("tr-supernet-5-5", "original") for m in ("DARTS", "DARTS+PT")])
    text = oneshot_section(rows).replace("\\|", "|")
    assert "## One-shot search: DARTS+PT vs DARTS," in text
    lines = [line for line in text.splitlines() if line.startswith("| nb201-oneshot-darts |")]
    assert [line.split(" | ")[2:4] for line in lines] == [
        ["DARTS+PT", "original"], ["DARTS+PT", "tr-supernet-5-5"], ["DARTS", "original"], ["DARTS", "tr-supernet-5-5"]]
    assert "T4: 93.04" in lines[0] and "T4" not in lines[2]  # the paper's figures are DARTS+PT's
    assert "nb201-oneshot-darts / cifar10 / DARTS: original / tr-supernet-5-5" in text
    entries = search_entries({"oneshot": rows})
    assert sorted(set(entries["method"])) == ["DARTS · original", "DARTS · tr-supernet-5-5",
                                              "DARTS+PT · original", "DARTS+PT · tr-supernet-5-5"]
