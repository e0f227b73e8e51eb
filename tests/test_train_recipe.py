import math

import pytest

from harness import HarnessError
from harness.train.recipe import ORIGINAL, TR_NET, TrainConfig, lr_at


def test_paper_defaults():
    assert (ORIGINAL.epochs, ORIGINAL.warmup_epochs) == (12, 0)
    assert (TR_NET.epochs, TR_NET.warmup_epochs) == (18, 13)
    for cfg in (ORIGINAL, TR_NET):
        assert (cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.batch_size) == (0.1, 0.9, True, 5e-4, 256)


def test_warmup_is_linear_per_iteration_from_zero():
    assert lr_at(TR_NET, 0, 0.0) == 0.0
    assert lr_at(TR_NET, 0, 0.5) == pytest.approx(0.1 * 0.5 / 13)
    assert lr_at(TR_NET, 12, 0.999) == pytest.approx(0.1 * 12.999 / 13)


def test_default_tr_net_schedule_anneals_to_about_zero_and_is_constant_within_an_epoch():
    # The default reading (after_warmup): T_max = the 5 epochs after 13 warmup epochs, so the last
    # epoch runs at ~1% of the peak like Original's last, not at 88% (all_epochs, the old default).
    assert TR_NET.cosine_period == "after_warmup"
    assert lr_at(TR_NET, 13, 0.0) == pytest.approx(0.1)
    assert lr_at(TR_NET, 17, 0.0) == lr_at(TR_NET, 17, 0.9)
    assert lr_at(TR_NET, 17, 0.0) == pytest.approx(0.1 * (1 + math.cos(math.pi * 4 / 5)) / 2)
    assert lr_at(TR_NET, 17, 0.0) < 0.01 * 1.0001
    assert lr_at(ORIGINAL, 11, 0.3) == pytest.approx(0.1 * (1 + math.cos(math.pi * 11 / 12)) / 2)
    assert lr_at(TR_NET.with_(cosine_period="all_epochs"), 17, 0.0) == pytest.approx(
        0.1 * (1 + math.cos(math.pi * 4 / 18)) / 2)


def test_without_warmup_both_periods_are_one_schedule_recorded_as_before():
    for e in range(12):
        assert lr_at(ORIGINAL, e, 0.0) == lr_at(ORIGINAL.with_(cosine_period="all_epochs"), e, 0.0)
    assert ORIGINAL.as_dict() == ORIGINAL.with_(cosine_period="all_epochs").as_dict()
    assert ORIGINAL.as_dict()["cosine_period"] == "all_epochs"  # rows recorded before the default changed match


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(warmup_epochs=20), dict(lr=0.0), dict(batch_size=0)])
def test_bad_config(bad):
    with pytest.raises(HarnessError, match="training config"):
        TrainConfig(**bad)


@pytest.mark.parametrize("period, after_warmup", [
    ("all_epochs", [0.1, 0.09924, 0.09698, 0.09330, 0.08830]),     # T_max = 18: ends at 88% of the peak
    ("after_warmup", [0.1, 0.09045, 0.06545, 0.03455, 0.00955]),   # T_max = 5: anneals like Original
])
def test_both_cosine_readings_epoch_by_epoch(period, after_warmup):
    cfg = TR_NET.with_(cosine_period=period)
    warmup = [0.1 * e / 13 for e in range(13)]  # linear from 0 over 13 epochs (start of each epoch)
    got = [lr_at(cfg, e, 0.0) for e in range(18)]
    assert got == pytest.approx(warmup + after_warmup, abs=5e-6)
    assert cfg.as_dict()["cosine_period"] == period  # recorded in every row's config


def test_unknown_cosine_period():
    with pytest.raises(HarnessError, match="cosine_period must be one of all_epochs, after_warmup"):
        TR_NET.with_(cosine_period="half")
