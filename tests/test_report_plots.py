"""What the plots put on one axis and what their error bars say they compare."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report import plots


def _runs(benchmark: str, dataset: str, seeds: int, queries: int, truth: "float | None" = 90.0) -> list[dict]:
    rng = np.random.default_rng(len(benchmark) + seeds)
    return [{"run_id": f"{benchmark}/{dataset}/s{s}", "batch_id": f"{benchmark}-20260101T000000-aaaaaa",
             "benchmark": benchmark, "dataset": dataset, "method": "original", "sampler": "rea", "trial": t,
             "proxy": float(rng.random()), "ground_truth": None if truth is None else truth + float(rng.random())}
            for s in range(seeds) for t in range(queries)]


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_anytime_draws_each_benchmark_on_its_own_axes():
    runs = pd.DataFrame(_runs("nb201-rea", "cifar10", 10, 20) + _runs("nb201-rea", "cifar100", 10, 20)
                        + _runs("rea-trnet-smoke", "cifar10", 1, 5) + _runs("darts-smoke", "cifar10", 1, 3, truth=None))
    fig = plots.anytime_figure(runs)
    titles = _titles(fig)
    assert sorted(t.split("\n")[0] for t in titles) == ["cifar10 · nb201-rea", "cifar10 · rea-trnet-smoke",
                                                         "cifar100 · nb201-rea"]  # no curve without a ground truth
    legends = {ax.get_title().split("\n")[0]: [t.get_text() for t in ax.get_legend().get_texts()]
               for ax in fig.axes if ax.get_visible()}
    assert legends["cifar10 · nb201-rea"] == ["rea · original (10 seeds)"]
    assert legends["cifar10 · rea-trnet-smoke"] == ["rea · original (1 seed: no band)"]


def _train(benchmark: str, method: str, epochs: int, walls: list[float]) -> list[dict]:
    return [{"benchmark": benchmark, "batch_id": f"{benchmark}-20260101T000000-aaaaaa", "method": method,
             "epochs": epochs, "dataset": "cifar10-valid", "device": "cpu", "wall_s": w, "saved_bytes": 1e8 * (i + 1)}
            for i, w in enumerate(walls)]


def test_memory_bars_compare_within_a_benchmark_and_say_over_what():
    rows = pd.DataFrame(_train("trnet-smoke", "original", 2, [1.0, 1.0, 10.0]) + _train("trnet-smoke", "tr-net-5-5", 3, [2.0, 3.0])
                        + _train("precision", "original", 2, [5.0, 6.0]))
    fig = plots.memory_figure(rows)
    titles = _titles(fig)
    assert "trnet-smoke (epochs differ)\nsaved-for-backward MB / step" in titles
    assert "precision\nsaved-for-backward MB / step" in titles and len(titles) == 4  # 2 benchmarks x (memory, time)
    ticks = {ax.get_title(): [t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes}
    assert ticks["trnet-smoke (epochs differ)\nsaved-for-backward MB / step"] == [
        "original\n2 epochs\nn = 3 runs", "tr-net-5-5\n3 epochs\nn = 2 runs"]
    assert ticks["precision\nsaved-for-backward MB / step"] == ["original\nn = 2 runs"]
    assert "each a different architecture" in fig.get_suptitle()
    wall = next(ax for ax in fig.axes if ax.get_title() == "wall time per training run (s)" and len(ax.patches) == 2)
    lows = [seg[:, 1].min() for c in wall.containers if hasattr(c, "errorbar") and c.errorbar is not None
            for seg in c.errorbar.lines[2][0].get_segments()]
    assert min(lows) == 0.0  # mean 4 ± std 4.24: the whisker stops at 0
