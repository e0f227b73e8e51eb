"""The CKA experiment end to end: real training on the embedded CIFAR-10 images,
tiny (256 images, 1 epoch, a ResNet-20 pre-trained 1 epoch), real Parquet and PNG files."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from harness import HarnessError
from harness.analysis.cka import linear_cka, linear_cka_unbiased
from harness.analysis.cka_table import read_cka
from harness.analysis.similarity import (
    eval_batches,
    eval_images,
    load_cka,
    load_network,
    resolve_archs,
    run_cka,
    search_cells,
)
from harness.data.datasets import load_dataset
from harness.report.cka import GRID_PNG, MEAN_PNG, SUMMARY_MD, write_cka_figures
from harness.spaces.nb201 import encoding as space
from harness.train.recipe import TrainConfig

pytestmark = pytest.mark.slow  # real training: see `make test-fast`

# Cheap ops only (1x1 convs, pooling, skips) so three networks train in seconds on one CPU thread.
CHEAP = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
CHEAP_2 = "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|skip_connect~2|"
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # every cell outputs zeros: no CKA defined
TINY = TrainConfig(epochs=1, batch_size=64)
CELLS, BLOCKS = 15, 9  # NB201 search cells; ResNet-20 blocks


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data(256)


@pytest.fixture(scope="module")
def backbone(data, pretrained):
    return pretrained("resnet20", data, TINY)[0]


@pytest.fixture(scope="module")
def run(data, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("cka")
    archs = [CHEAP, DEAD, str(space.index_of(CHEAP_2))]  # a string, a dead cell, an index as text
    return run_cka(backbone, archs, data, out_dir=out, n_eval=200, batch_size=64, train_cfg=TINY, seed=0,
                   keep_networks=True, progress=False), out


def test_parquet_has_one_row_per_network_cell_block_with_provenance(run, backbone):
    result, out = run
    assert result.parquet_path.parent == out / "cka" and result.parquet_path.name.startswith("part-")
    df = pd.read_parquet(result.parquet_path)
    assert len(df) == 3 * CELLS * BLOCKS
    assert result.names == ["net-1", "net-2", "net-3"]
    assert result.archs == [CHEAP, DEAD, CHEAP_2]
    assert sorted(df["cell"].unique()) == list(range(1, CELLS + 1))
    assert sorted(df["block"].unique()) == list(range(1, BLOCKS + 1))
    assert df.groupby("network").size().tolist() == [CELLS * BLOCKS] * 3
    assert (df["backbone"] == str(backbone)).all() and (df["backbone_name"] == "resnet20").all()
    assert (df["n_eval"] == 200).all() and (df["eval_split"] == "valid").all()
    assert df["commit"].iloc[0] and df["version_torch"].iloc[0] == torch.__version__ and (df["seed"] == 0).all()
    assert json.loads(df["config"].iloc[0])["train"]["epochs"] == 1
    assert df.groupby("network")["train_seed"].first().tolist() == [0, 1, 2]
    assert (df["estimator"] == "eq1").all() and json.loads(df["config"].iloc[0])["estimator"] == "eq1"
    shapes = df[df["network"] == "net-1"].groupby("cell")["cell_shape"].first().map(json.loads).tolist()
    assert shapes == [[16, 32, 32]] * 5 + [[32, 16, 16]] * 5 + [[64, 8, 8]] * 5  # NB201's three stages
    blocks = df.groupby("block")["block_shape"].first().map(json.loads).tolist()
    assert blocks == [[16, 32, 32]] * 3 + [[32, 16, 16]] * 3 + [[64, 8, 8]] * 3  # ResNet-20: 3 blocks per stage


def test_values_are_similarities_and_dead_cells_are_nan(run):
    result, _ = run
    live, dead, live_2 = result.matrices
    for m in result.matrices:
        assert m.shape == (CELLS, BLOCKS)
    assert np.isnan(dead).all()  # all-'none' cells have no variance
    for m in (live, live_2):
        assert np.isfinite(m).all()
        # The unbiased estimator can dip a hair below 0 for unrelated layers; these are related.
        assert (m > 0).all() and (m <= 1 + 1e-9).all()
    np.testing.assert_allclose(result.mean, (live + live_2) / 2)  # NaN-aware mean over networks


def test_matrices_match_a_direct_cka_of_the_same_features(run, data, backbone):
    """One entry recomputed by hand: the same eval images through the backbone and the reloaded net."""
    from harness.analysis.features import collect_features
    from harness.backbones.checkpoint import load_backbone

    result, out = run
    net, meta = load_network(out / "networks" / "net-1.pt")
    assert net.arch_str == CHEAP and meta["train_seed"] == 0
    resnet, _ = load_backbone(backbone)
    x, _ = eval_images(data, 200)
    assert len(x) == 200
    cells = [torch.cat(collect_features(net, [search_cells(net)[2]], b)) for b in eval_batches(x, 200)][0]
    block = [torch.cat(collect_features(resnet, [resnet.blocks[4]], b)) for b in eval_batches(x, 200)][0]
    # The default run: Eq. (1) on all 200 images, batched by 64 (cell 3 vs block 5).
    assert result.matrices[0][2, 4] == pytest.approx(linear_cka(cells, block), abs=1e-9)
    # One batch of 200 with the unbiased estimator = the unbiased estimator on all examples.
    one_batch = run_cka(backbone, [out / "networks" / "net-1.pt"], data, out_dir=out / "again", n_eval=200,
                        batch_size=200, progress=False, estimator="unbiased_minibatch")
    assert one_batch.matrices[0][2, 4] == pytest.approx(linear_cka_unbiased(cells, block), abs=1e-9)
    assert one_batch.archs == [CHEAP] and one_batch.estimator == "unbiased_minibatch"
    df = pd.read_parquet(one_batch.parquet_path)
    assert (df["source"] == str(out / "networks" / "net-1.pt")).all()
    assert (df["estimator"] == "unbiased_minibatch").all()
    drawn = write_cka_figures(read_cka(one_batch.parquet_path), out / "again")
    assert drawn[2] == out / "again" / SUMMARY_MD and "unbiased HSIC" in drawn[2].read_text()


def test_reloaded_network_gives_the_same_matrix(run, data, backbone):
    result, out = run
    again = run_cka(backbone, [out / "networks" / "net-3.pt"], data, out_dir=out / "reload", n_eval=200,
                    batch_size=64, progress=False)
    np.testing.assert_allclose(again.matrices[0], result.matrices[2], rtol=0, atol=1e-12)


def test_load_cka_round_trips_the_parquet(run):
    result, _ = run
    names, matrices, mean = load_cka(result.parquet_path)
    assert names == result.names
    for got, want in zip(matrices, result.matrices):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(mean, result.mean)


def test_pngs_are_real_images_with_content(run):
    result, out = run
    pngs = write_cka_figures(read_cka(result.parquet_path), out)[:2]  # the report draws a run's rows
    assert pngs == [out / GRID_PNG, out / MEAN_PNG]
    for path in pngs:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert image.width > 300 and image.height > 300
        assert pixels.std() > 10  # not a blank canvas
    with Image.open(out / GRID_PNG) as grid, Image.open(out / MEAN_PNG) as mean:
        assert grid.width > mean.width  # 3 networks + the mean side by side


def test_supernet_trains_alpha_and_is_compared_like_any_network(backbone, tmp_path):
    data = load_dataset("cifar10-valid", limit=32)
    result = run_cka(backbone, None, data, out_dir=tmp_path, n_eval=32, batch_size=16,
                     train_cfg=TrainConfig(epochs=1, batch_size=16), supernet=True, progress=False)
    assert result.names == ["supernet"]
    space.parse(result.archs[0])  # the genotype is a valid NB201 string
    (m,) = result.matrices
    assert m.shape == (CELLS, BLOCKS) and np.isfinite(m).all() and (m <= 1 + 1e-9).all()
    np.testing.assert_array_equal(result.mean, m)  # no NB201 networks: the mean is the supernet's
    df = pd.read_parquet(result.parquet_path)
    assert len(df) == CELLS * BLOCKS and (df["kind"] == "supernet").all()
    assert json.loads(df["config"].iloc[0])["supernet_recipe"]["a_lr"] == 3e-4


def test_supernet_alpha_moves_under_first_order_darts():
    from harness.methods.oneshot.darts import train_supernet
    from harness.spaces.nb201.supernet import NB201Supernet

    data = load_dataset("cifar10-valid", limit=16)
    torch.manual_seed(0)
    initial = NB201Supernet(data.num_classes).arch.alpha.detach().clone()  # same seed as train_supernet
    model, info = train_supernet(data, TrainConfig(epochs=1, batch_size=8), seed=0)
    assert not torch.equal(model.arch.alpha.detach(), initial)
    assert info["alpha_split"] == "valid" and info["arch"] == model.genotype()


def test_random_archs_are_seeded():
    assert resolve_archs(3, seed=5) == resolve_archs(3, seed=5)
    assert resolve_archs(3, seed=5) != resolve_archs(3, seed=6)
    assert len(resolve_archs(4)) == 4


def test_eval_batches_never_leave_a_batch_too_small_for_unbiased_hsic():
    x = torch.zeros(130, 3, 2, 2)
    assert [len(b) for b in eval_batches(x, 64)] == [64, 66]
    assert [len(b) for b in eval_batches(x, 65)] == [65, 65]


@pytest.mark.parametrize("archs, match", [
    (0, "at least 1"), (-2, "at least 1"), ([], "non-empty"), (None, "non-empty"),
    (["no/such/net.pt"], "neither an NB201 string nor"), (["|bogus~0|"], "bogus"), ([15625], "out of range"),
])
def test_bad_archs_fail_before_training(archs, match, backbone, data, tmp_path):
    with pytest.raises(HarnessError, match=match):
        run_cka(backbone, archs, data, out_dir=tmp_path / "out", train_cfg=TINY, progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_checkpoint_and_sizes_fail_before_training(data, backbone, tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        run_cka(tmp_path / "missing.pt", 1, data, out_dir=tmp_path / "out", train_cfg=TINY, progress=False)
    not_a_checkpoint = tmp_path / "junk.pt"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(HarnessError, match="not a readable"):
        run_cka(not_a_checkpoint, 1, data, out_dir=tmp_path / "out", train_cfg=TINY, progress=False)
    with pytest.raises(HarnessError, match="not an NB201 network checkpoint|not a readable"):
        run_cka(backbone, [backbone], data, out_dir=tmp_path / "out", train_cfg=TINY, progress=False)
    with pytest.raises(HarnessError, match="n_eval"):
        run_cka(backbone, 1, data, out_dir=tmp_path / "out", n_eval=3, train_cfg=TINY, progress=False)
    with pytest.raises(HarnessError, match="batch_size"):
        run_cka(backbone, 1, data, out_dir=tmp_path / "out", batch_size=2, train_cfg=TINY, progress=False)
    assert not (tmp_path / "out").exists()


def test_darts_space_supernet_through_the_space_protocol(backbone, tmp_path):
    """Fig. 2's case on the DARTS space: its build_supernet() (C = 4, 5 cells: ResNet-20's stage
    shapes) trained by the same first-order DARTS, compared like any network."""
    from harness.spaces import get_space

    data = load_dataset("cifar10-valid", limit=32)
    result = run_cka(backbone, None, data, out_dir=tmp_path, n_eval=32, batch_size=16,
                     train_cfg=TrainConfig(epochs=1, batch_size=16), supernet=True, progress=False,
                     space="darts", network={"C": 4, "layers": 5})
    (m,) = result.matrices
    assert result.names == ["supernet"] and m.shape == (5, BLOCKS)
    assert np.isfinite(m).all() and (m >= 0).all() and (m <= 1 + 1e-9).all()
    get_space("darts").parse(result.archs[0])  # the genotype in the space's own text
    df = pd.read_parquet(result.parquet_path)
    assert (df["space"] == "darts").all() and (df["kind"] == "supernet").all() and (df["estimator"] == "eq1").all()
    shapes = df.groupby("cell")["cell_shape"].first().map(json.loads).tolist()
    assert shapes == [[16, 32, 32], [32, 16, 16], [32, 16, 16], [64, 8, 8], [64, 8, 8]]
    with pytest.raises(HarnessError, match="only its supernet"):
        run_cka(backbone, 1, data, out_dir=tmp_path / "x", space="darts", progress=False)
    with pytest.raises(HarnessError, match="does not take the options"):
        run_cka(backbone, None, data, out_dir=tmp_path / "y", supernet=True, space="darts",
                network={"auxiliary": True}, progress=False)
