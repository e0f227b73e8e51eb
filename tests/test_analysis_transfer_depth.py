"""Automatic transfer depth from a CKA matrix on hand-made matrices."""
import json
from pathlib import Path

import numpy as np
import pytest

from harness import HarnessError
from harness.transfer.depth import (
    CKA_ESTIMATORS,
    DEFAULT_ESTIMATOR,
    DEFAULT_THRESHOLDS,
    TransferChoice,
    choose_transfer_depth,
    shape_compatible,
    strongest_paths,
    thresholds_choosing,
)


def diagonal_decay(cells: int, blocks: int, step: float = 0.05) -> np.ndarray:
    """Similarity 1 - step*depth on the diagonal, falling off away from it (the shape of Fig. 1)."""
    i, j = np.meshgrid(np.arange(cells), np.arange(blocks), indexing="ij")
    return np.clip(1.0 - step * np.maximum(i, j) - 0.2 * np.abs(i - j), 0.0, 1.0)


def test_walks_the_diagonal_to_the_deepest_pair_above_threshold():
    m = diagonal_decay(8, 8)           # diagonal: 1.00, 0.95, 0.90, 0.85, ...
    choice = choose_transfer_depth(m, threshold=0.84)
    assert (choice.i, choice.j) == (4, 4)
    assert choice.path == ((1, 1), (2, 2), (3, 3), (4, 4))
    assert choice.values == pytest.approx((1.0, 0.95, 0.90, 0.85))
    assert choice.cka == pytest.approx(0.85) and choice.min_cka == pytest.approx(0.85)
    assert choose_transfer_depth(m, threshold=0.9).i == 3


def test_a_weak_early_link_stops_the_path_even_if_later_cells_match():
    m = diagonal_decay(6, 6, step=0.0)
    m[1, :] = 0.5                      # cell 2 resembles no block
    choice = choose_transfer_depth(m, threshold=0.8)
    assert (choice.i, choice.j) == (1, 1)


def test_path_may_leave_the_diagonal_and_share_blocks():
    # A NAS net deeper than the backbone: cells 1-2 both match block 1, cells 3-4 block 2.
    m = np.array([[0.97, 0.40, 0.10],
                  [0.95, 0.60, 0.20],
                  [0.50, 0.93, 0.30],
                  [0.40, 0.91, 0.50],
                  [0.20, 0.50, 0.90]])
    choice = choose_transfer_depth(m, threshold=0.9)
    assert (choice.i, choice.j) == (4, 2)
    assert choice.path == ((1, 1), (2, 1), (3, 2), (4, 2))


def test_the_strongest_path_is_found_where_a_greedy_argmax_would_fail():
    # Greedy: cell 1 -> block 2 (0.97), then cell 2 must use block >= 2 (0.30): dead end.
    # The maximin path uses block 1 for both cells (min 0.93).
    m = np.array([[0.95, 0.97, 0.20],
                  [0.93, 0.30, 0.20],
                  [0.10, 0.10, 0.10]])
    choice = choose_transfer_depth(m, threshold=0.9)
    assert (choice.i, choice.j) == (2, 1)
    assert choice.path == ((1, 1), (2, 1))
    best, _ = strongest_paths(m)
    assert best[1].tolist() == pytest.approx([0.93, 0.30, 0.20])


def test_splice_block_is_the_best_match_for_the_last_cell():
    m = np.array([[0.99, 0.80, 0.70, 0.60],
                  [0.90, 0.92, 0.95, 0.50],
                  [0.10, 0.10, 0.10, 0.10]])
    choice = choose_transfer_depth(m, threshold=0.9)
    assert (choice.i, choice.j) == (2, 3)
    # Ties in CKA go to the block nearest the diagonal.
    tie = np.ones((4, 4))
    assert (choose_transfer_depth(tie, 0.9).i, choose_transfer_depth(tie, 0.9).j) == (3, 3)


def test_compatible_restricts_the_splice_point_only():
    m = diagonal_decay(9, 9, step=0.01)
    stage_ends = {3, 6}                # e.g. shapes only splice at stage boundaries
    choice = choose_transfer_depth(m, threshold=0.9, compatible=lambda i, j: i in stage_ends and j in stage_ends)
    assert (choice.i, choice.j) == (6, 6)
    assert len(choice.path) == 6       # every cell up to 6 is on the path, compatible or not


def test_defaults_keep_one_cell_and_one_block_and_bounds_are_adjustable():
    m = np.ones((5, 5))
    assert (choose_transfer_depth(m).i, choose_transfer_depth(m).j) == (4, 4)  # paper: i, j <= L-1
    assert choose_transfer_depth(m, max_i=2, max_j=2).i == 2
    full = choose_transfer_depth(m, max_i=5, max_j=5)
    assert (full.i, full.j) == (5, 5)


def test_nan_counts_as_no_similarity():
    m = diagonal_decay(5, 5, step=0.0)
    m[2, 2] = np.nan
    choice = choose_transfer_depth(m, threshold=0.7)
    assert choice.i >= 3 and choice.path[2] != (3, 3)   # goes round the NaN square
    m[2, :] = np.nan
    assert choose_transfer_depth(m, threshold=0.7).i == 2


def test_no_valid_pair_names_the_best_value_and_the_threshold():
    m = np.full((4, 4), 0.5)
    m[0, 1] = 0.61
    with pytest.raises(HarnessError, match=r"CKA >= 0\.9 .*best is 0\.6100 \(cell 1, block 2\)"):
        choose_transfer_depth(m, threshold=0.9)
    with pytest.raises(HarnessError, match="compatible"):
        choose_transfer_depth(np.ones((4, 4)), compatible=lambda i, j: False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(matrix=np.ones(4)), "2-D"),
    (dict(matrix=np.array([[1.0, np.inf], [1.0, 1.0]])), "infinite"),
    (dict(matrix=np.ones((3, 3)), threshold=1.5), "threshold"),
    (dict(matrix=np.ones((3, 3)), threshold=float("nan")), "threshold"),
    (dict(matrix=np.ones((3, 3)), threshold="high"), "threshold"),
    (dict(matrix=np.ones((3, 3)), max_i=4), "max_i"),
    (dict(matrix=np.ones((1, 3))), "max_i"),            # one cell: nothing may be replaced
    (dict(matrix=np.ones((3, 3)), max_j=0), "max_j"),
])
def test_bad_inputs_are_harness_errors(kwargs, match):
    with pytest.raises(HarnessError, match=match):
        choose_transfer_depth(**kwargs)


def test_record_carries_the_values_behind_the_choice():
    choice = choose_transfer_depth(diagonal_decay(6, 6), threshold=0.85)
    record = choice.as_record()
    assert record["transfer_i"] == choice.i and record["transfer_j"] == choice.j
    assert record["transfer_threshold"] == 0.85
    assert record["transfer_min_cka"] >= 0.85
    path = json.loads(record["transfer_path"])
    assert [tuple(p[:2]) for p in path] == list(choice.path)
    assert [p[2] for p in path] == pytest.approx(list(choice.values))
    assert isinstance(choice, TransferChoice)


def test_each_estimator_has_its_own_default_threshold_and_it_is_recorded():
    m = diagonal_decay(15, 15, step=0.02)     # diagonal 1.00, 0.98, ..., 0.72
    assert DEFAULT_ESTIMATOR == "eq1" and set(DEFAULT_THRESHOLDS) == set(CKA_ESTIMATORS)
    for estimator in CKA_ESTIMATORS:
        choice = choose_transfer_depth(m, estimator=estimator)
        assert choice.threshold == DEFAULT_THRESHOLDS[estimator] and choice.min_cka >= choice.threshold
        # The deepest cell whose diagonal value still reaches the threshold (1 - 0.02 (i - 1) >= t).
        assert choice.i == min(14, int(np.floor((1 - DEFAULT_THRESHOLDS[estimator]) / 0.02 + 1e-9)) + 1)
        record = choice.as_record()
        assert record["transfer_estimator"] == estimator
        assert record["transfer_threshold"] == DEFAULT_THRESHOLDS[estimator]
    assert choose_transfer_depth(m).estimator == DEFAULT_ESTIMATOR
    assert choose_transfer_depth(m, 0.9, estimator="unbiased_minibatch").threshold == 0.9  # explicit wins
    with pytest.raises(HarnessError, match="estimator 'biased'"):
        choose_transfer_depth(m, 0.9, estimator="biased")


def test_thresholds_choosing_a_cell_is_exactly_where_the_rule_picks_it():
    m = diagonal_decay(8, 8)           # strongest paths per cell: 1.00, 0.95, 0.90, ...
    low, high = thresholds_choosing(m, 3)
    assert (low, high) == pytest.approx((0.85, 0.90))
    for t in (high, (low + high) / 2, low + 1e-9):
        assert choose_transfer_depth(m, t).i == 3
    assert choose_transfer_depth(m, low).i == 4 and choose_transfer_depth(m, high + 1e-9).i == 2
    # Splice restrictions count: with cells 4.. unable to splice, any threshold up to 0.90 picks 3.
    stage = shape_compatible([(1,)] * 3 + [(2,)] * 5, [(1,)] * 3 + [(3,)] * 5)
    assert thresholds_choosing(m, 3, compatible=stage) == pytest.approx((0.0, 0.90))
    flat = np.full((6, 6), 0.5)        # every cell reaches 0.5: no threshold picks cell 2 over 5
    assert thresholds_choosing(flat, 2) is None
    with pytest.raises(HarnessError, match="outside"):
        thresholds_choosing(m, 8)


def test_calibrated_defaults_pick_the_papers_depth_on_the_measured_matrices():
    """tests/golden/cka_calibration.json: mean CKA of 3 trained NB201 networks vs a ResNet-32, both
    estimators on the same networks and images (scripts/calibrate_cka_threshold.py)."""
    measured = json.loads((Path(__file__).parent / "golden" / "cka_calibration.json").read_text())
    for estimator in CKA_ESTIMATORS:
        m = measured[estimator]
        compatible = shape_compatible(m["cell_shapes"], m["block_shapes"])
        low, high = thresholds_choosing(m["mean"], 5, compatible=compatible)
        assert (low, high) == pytest.approx(m["thresholds_picking_i5"], abs=1e-5)
        assert low < DEFAULT_THRESHOLDS[estimator] <= high
        choice = choose_transfer_depth(m["mean"], estimator=estimator, compatible=compatible)
        assert choice.i == 5 and choice.threshold == DEFAULT_THRESHOLDS[estimator]
