"""CKA figures drawn from the ``cka`` table alone: latest batch, estimator, splice, refresh."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import HarnessError
from harness.analysis.cka_table import LEGACY_ESTIMATOR, read_cka
from harness.bench.definitions import build_definition
from harness.report.cka import (
    GRID_PNG,
    MEAN_PNG,
    SUMMARY_MD,
    splice_choice,
    write_cka_figures,
    write_cka_reports,
)
from harness.report.refresh import refresh
from harness.store.results import ResultsStore
from harness.transfer.depth import DEFAULT_THRESHOLDS

STAGES = [[16, 32, 32], [32, 16, 16], [64, 8, 8]]


def _rows(matrix: np.ndarray, network: str = "net-1", estimator: "str | None" = "eq1", batch=None,
          shapes: bool = True, test_acc: float = 55.5) -> list[dict]:
    cells, blocks = matrix.shape
    rows = []
    for c in range(cells):
        for b in range(blocks):
            row = {"network": network, "kind": "nb201", "arch": "|x|", "cell": c + 1, "block": b + 1,
                   "cka": float(matrix[c, b]), "test_acc": test_acc, "backbone_name": "resnet20",
                   "dataset": "cifar10-valid", "n_eval": 500, "eval_split": "valid"}
            if estimator is not None:
                row["estimator"] = estimator
            if shapes:
                row["cell_shape"] = json.dumps(STAGES[c * 3 // cells])
                row["block_shape"] = json.dumps(STAGES[b * 3 // blocks])
            if batch is not None:
                row["batch_id"] = batch
            rows.append(row)
    return rows


def _fig1_like(cells: int = 6, blocks: int = 6, top: float = 1.0) -> np.ndarray:
    """Similarity falling with depth and away from the stretched diagonal."""
    i, j = np.meshgrid(np.arange(cells) / cells, np.arange(blocks) / blocks, indexing="ij")
    return np.clip(top - 0.3 * np.maximum(i, j) - np.abs(i - j), 0.0, 1.0)


def test_latest_batch_by_stamp_and_legacy_rows_are_the_unbiased_estimator(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("cka", _rows(_fig1_like(top=0.5), batch="nb201-cka-20260102T000000-b"))
    store.append("cka", _rows(_fig1_like(), batch="nb201-cka-20260101T000000-a"))  # older, written later
    table = read_cka(store.path("cka"))
    assert table.estimator == "eq1" and table.rows["batch_id"].unique().tolist() == ["nb201-cka-20260102T000000-b"]
    np.testing.assert_allclose(table.mean, _fig1_like(top=0.5))
    legacy = tmp_path / "legacy.parquet"
    pd.DataFrame(_rows(_fig1_like(), estimator=None, shapes=False)).to_parquet(legacy)
    old = read_cka(legacy)
    assert old.estimator == LEGACY_ESTIMATOR and old.shapes() is None
    assert splice_choice(old) == (None, "no splice computed: these rows do not record the cell and block shapes")
    with pytest.raises(HarnessError, match="no such file"):
        read_cka(tmp_path / "missing")


def test_mixed_estimators_in_one_batch_are_refused(tmp_path):
    rows = _rows(_fig1_like()) + _rows(_fig1_like(), network="net-2", estimator="unbiased_minibatch")
    pd.DataFrame(rows).to_parquet(tmp_path / "mixed.parquet")
    with pytest.raises(HarnessError, match="mixes estimators"):
        read_cka(tmp_path / "mixed.parquet")


def test_figures_summary_and_splice_from_rows(tmp_path):
    m = _fig1_like()
    pd.DataFrame(_rows(m) + _rows(m * 0.9, network="net-2", test_acc=float("nan"))).to_parquet(tmp_path / "t.parquet")
    table = read_cka(tmp_path / "t.parquet")
    choice, line = splice_choice(table)
    threshold = DEFAULT_THRESHOLDS["eq1"]
    paths = write_cka_figures(table, tmp_path / "out")
    assert [p.name for p in paths] == [GRID_PNG, MEAN_PNG, SUMMARY_MD]
    for png in paths[:2]:
        with Image.open(png) as image:
            assert image.width > 600 and np.asarray(image.convert("L")).std() > 10
    summary = paths[2].read_text()
    assert "Estimator: `eq1`" in summary and f"threshold {threshold:g}" in summary
    assert f"| 1 | 1 | {table.mean[0, 0]:.3f} |" in summary  # cell 1's diagonal value
    if choice is None:
        assert "no " in line and line in summary
    else:  # the splice fits: same stage for cell i and block j, i <= 5, j <= 5
        assert STAGES[(choice.i - 1) * 3 // 6] == STAGES[(choice.j - 1) * 3 // 6]
        assert choice.min_cka >= threshold and f"Tr-Net-{choice.i}-{choice.j}" in summary


def test_refresh_redraws_the_committed_heatmaps(tmp_path):
    ResultsStore(tmp_path).append("cka", _rows(_fig1_like(), batch="nb201-cka-20260102T000000-b"))
    written = refresh(tmp_path)
    heatmaps = tmp_path / "cka-heatmaps"
    assert {heatmaps / GRID_PNG, heatmaps / MEAN_PNG, heatmaps / SUMMARY_MD} <= set(written)
    assert write_cka_reports(tmp_path / "no-such-results") == []


def test_cka_definitions_take_the_estimator_eq1_by_default():
    raw = {"name": "c", "kind": "cka", "datasets": ["cifar10"]}  # no checkpoint: pre-trained when run
    assert build_definition(raw, "test")["estimator"] == "eq1"
    assert build_definition({**raw, "estimator": "unbiased_minibatch"}, "test")["estimator"] == "unbiased_minibatch"
    with pytest.raises(HarnessError, match="key 'estimator' = 'biased' is unknown"):
        build_definition({**raw, "estimator": "biased"}, "test")
