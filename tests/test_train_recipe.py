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


def test_cosine_after_warmup_uses_total_epochs_as_period_and_is_constant_within_an_epoch():
    # NB201 reference: T_max = total epochs, so after 13 warmup epochs the last epoch is still high.
    assert lr_at(TR_NET, 13, 0.0) == pytest.approx(0.1)
    assert lr_at(TR_NET, 17, 0.0) == lr_at(TR_NET, 17, 0.9)
    assert lr_at(TR_NET, 17, 0.0) == pytest.approx(0.1 * (1 + math.cos(math.pi * 4 / 18)) / 2)
    assert lr_at(TR_NET, 17, 0.0) > 0.08
    assert lr_at(ORIGINAL, 11, 0.3) == pytest.approx(0.1 * (1 + math.cos(math.pi * 11 / 12)) / 2)
    assert lr_at(TR_NET.with_(t_max=5), 17, 0.0) == pytest.approx(0.1 * (1 + math.cos(math.pi * 4 / 5)) / 2)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(warmup_epochs=20), dict(lr=0.0), dict(batch_size=0)])
def test_bad_config(bad):
    with pytest.raises(HarnessError, match="training config"):
        TrainConfig(**bad)
