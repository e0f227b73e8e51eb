"""Backbone pre-training: resumable per epoch, the shipped backbone and its provenance, progress lines."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import HarnessError, progress
from harness.backbones.checkpoint import load_backbone
from harness.backbones.pretrain import (
    SHIPPED,
    SHIPPED_RECIPE,
    STATE_FORMAT,
    BackboneSettings,
    pretrain,
    provenance_path,
    state_path,
)
from harness.backbones.resnet import build_backbone
from harness.data.datasets import Dataset, Split
from harness.train.loop import train
from harness.train.recipe import BACKBONE, TrainConfig

CFG = TrainConfig(epochs=3, batch_size=32)
ROOT = Path(__file__).resolve().parents[1]


class _Stop(Exception):
    pass


def test_a_resumed_run_ends_exactly_where_the_uninterrupted_one_does(tiny_data):
    data = tiny_data(64)
    torch.manual_seed(0)
    whole = build_backbone("resnet20", 10)
    train(whole, data, CFG, seed=3, progress=False)

    kept = []

    def stop_after_first(state):
        kept.append(state)
        raise _Stop

    torch.manual_seed(0)
    with pytest.raises(_Stop):
        train(build_backbone("resnet20", 10), data, CFG, seed=3, progress=False, on_epoch=stop_after_first)
    assert kept[0].epochs_done == 1
    torch.manual_seed(1)  # a fresh model and another global seed: only the state may matter
    resumed = build_backbone("resnet20", 10)
    r = train(resumed, data, CFG, seed=3, progress=False, resume=kept[0])
    assert r.epochs == 3 and r.steps == 3 * 2
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_pretrain_keeps_its_state_each_epoch_and_removes_it_when_done(tiny_data, tmp_path, monkeypatch):
    data = tiny_data(64)
    out = tmp_path / "b.pt"
    seen = []
    real_save = torch.save

    def watch(obj, f, *a, **kw):  # record what each epoch's state file holds, then save it for real
        if isinstance(obj, dict) and obj.get("format") == STATE_FORMAT:
            seen.append(obj["state"]["epochs_done"])
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", watch)
    meta = pretrain("resnet20", data, out, cfg=CFG, progress=False)
    monkeypatch.undo()
    assert seen == [1, 2, 3]
    assert not state_path(out).exists()
    prov = json.loads(provenance_path(out).read_text())
    assert prov["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert prov["epochs"] == 3 and prov["val_acc"] == meta["val_acc"] and prov["resumed"] is False
    load_backbone(out, expect="resnet20")


def test_a_state_from_another_recipe_is_refused(tiny_data, tmp_path):
    data = tiny_data(64)
    out = tmp_path / "b.pt"
    torch.save({"format": STATE_FORMAT, "recipe": {"name": "resnet56"}, "state": {}}, state_path(out))
    with pytest.raises(HarnessError, match="written by another recipe.*delete it to start over"):
        pretrain("resnet20", data, out, cfg=CFG, progress=False)
    assert not out.exists()


def _fake(n_train: int, source: str) -> Dataset:
    split = Split(torch.zeros(n_train, 3, 1, 1, dtype=torch.uint8), torch.zeros(n_train, dtype=torch.long))
    return Dataset("cifar10-valid", 10, source, (0.5,) * 3, (0.5,) * 3, 4, split, split, split)


def test_the_shipped_recipe_uses_the_shipped_checkpoint_and_no_other_does(tmp_path):
    """Finished or not: an unfinished shipped backbone is resumed there, never started anew elsewhere."""
    assert BackboneSettings(limit=0).path(tmp_path, _fake(25000, "cifar10-jpeg")) == SHIPPED
    assert BackboneSettings(limit=0, mode="fp32").path(tmp_path, _fake(25000, "cifar10-jpeg")) == SHIPPED
    assert SHIPPED_RECIPE["epochs"] == BACKBONE.epochs == 200
    for other in (BackboneSettings(epochs=5).path(tmp_path, _fake(25000, "cifar10-jpeg")),
                  BackboneSettings().path(tmp_path, _fake(768, "cifar10-jpeg")),
                  BackboneSettings().path(tmp_path, _fake(25000, "embedded")),
                  BackboneSettings(shortcut="conv_bn").path(tmp_path, _fake(25000, "cifar10-jpeg"))):
        assert other != SHIPPED and other.parent == tmp_path / "checkpoints"


def test_the_shipped_backbone_or_its_unfinished_state_loads_weights_only():
    """The repository ships the backbone (with its sha256 and accuracy beside it) or, while its
    pre-training is still under way, the state ``make backbone`` continues from."""
    if SHIPPED.is_file():
        prov = json.loads(provenance_path(SHIPPED).read_text())
        assert prov["sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
        model, meta = load_backbone(SHIPPED, expect="resnet32")
        assert meta["epochs"] == prov["epochs"] == 200 and prov["val_acc"] > 80
        assert {k: prov[k] for k in ("dataset", "data_source", "n_train")} == \
            {k: SHIPPED_RECIPE[k] for k in ("dataset", "data_source", "n_train")}
    else:
        payload = torch.load(state_path(SHIPPED), map_location="cpu", weights_only=True)
        assert payload["format"] == STATE_FORMAT and payload["recipe"] == SHIPPED_RECIPE
        assert 0 < payload["state"]["epochs_done"] < 200


def test_progress_lines_in_a_log(tiny_data, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    progress.force_bars(False)
    try:
        train(build_backbone("resnet20", 10), tiny_data(64), TrainConfig(epochs=1, batch_size=32), seed=0,
              label="pretrain x")
    finally:
        progress.force_bars(None)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("pretrain x: 1/2 (50%), ") and err[0].endswith(" left"), err
    assert err[1].startswith("pretrain x: 2/2 (100%), ") and " elapsed, ~0:00 left" in err[1], err
    assert err[-1].startswith("trained pretrain x: 1 epochs")


@pytest.mark.slow
def test_pretrain_killed_mid_run_continues_from_the_epoch_it_reached(tmp_path):
    """``harness pretrain`` (what ``make backbone`` runs) killed with SIGKILL after epoch 2 of 4:
    the rerun resumes after the last epoch whose state was written and ends with the
    uninterrupted run's weights."""
    args = [sys.executable, "-m", "harness.cli", "pretrain", "resnet20", "--epochs", "4", "--limit", "64",
            "--batch-size", "32", "--mode", "fp32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*args, "--out", str(tmp_path / "whole.pt"), "--quiet"], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    out = tmp_path / "killed.pt"
    proc = subprocess.Popen([*args, "--out", str(out)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "epoch 2/4" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    reached = torch.load(state_path(out), weights_only=True)["state"]["epochs_done"]
    assert reached in (2, 3)  # the kill lands after epoch 2's state, perhaps after epoch 3's
    r = subprocess.run([*args, "--out", str(out)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"resuming after epoch {reached}/4" in r.stderr
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(provenance_path(out).read_text())["resumed"] is True


def test_a_second_pre_training_of_the_same_checkpoint_is_refused(tiny_data, tmp_path):
    out = tmp_path / "b.pt"
    with open(tmp_path / "b.pretrain.lock", "w") as held:  # what a running pre-training holds
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(HarnessError, match="another process is pre-training it now"):
            pretrain("resnet20", tiny_data(64), out, cfg=CFG, progress=False)
    assert not out.exists() and not state_path(out).exists()
