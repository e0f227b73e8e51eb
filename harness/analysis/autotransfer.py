"""``--transfer auto``: choose Tr-Net-i-j's (i, j) from CKA instead of fixing i = j = 5.

The paper fixes the transfer depth by hand and leaves choosing it to "a proper metric" (footnote
1). Here a small CKA run (:func:`harness.analysis.similarity.run_cka`: the backbone vs a few
trained NB201 networks), or a CKA table / matrix already at hand, gives the mean (cells x blocks)
matrix, and :func:`harness.analysis.transfer_depth.choose_transfer_depth` applies its documented
rule (the deepest cell on the leading diagonal whose whole path keeps CKA >= threshold) restricted
to pairs where the splice is possible:

``compatible(i, j)``: 1 <= i <= 3N - 1, 1 <= j <= K - 1 (paper Sec. 3.2: at least one NB201
cell stays trainable; the prefix leaves at least one backbone block out), and cell i's output
shape (C, H, W) equals block j's -- exactly what :func:`harness.transfer.splice.build_tr_net`
requires, since the NB201 module after cell i then receives block j's output. Shapes come from
one forward pass of a zero image of the dataset's size. For ResNet-20/32/56 against NB201 this
means the same stage (same width and resolution).

The chosen pair is returned with a flat record for the run's results row (``transfer_i``,
``transfer_j``, ``transfer_threshold``, ``transfer_estimator``, ``transfer_cka`` = CKA at the splice, ``transfer_min_cka``,
``transfer_path`` = JSON ``[[cell, block, cka], ...]``, and where the CKA came from).

In a definition the choice is the method :data:`AUTO_METHOD`: a ``train`` definition's proxy
``train:tr-net-auto`` (``harness train --transfer auto``) trains ``tr-net-<i>-<j>`` with the
chosen pair, its ``[transfer]`` table (:class:`AutoTransferSettings`) says how to choose, and every
row it writes carries the record (:mod:`harness.bench.kinds.train`).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from harness import HarnessError
from harness.analysis.cka_table import read_cka
from harness.analysis.similarity import resolve_archs, run_cka
from harness.backbones.checkpoint import load_backbone
from harness.backbones.resnet import CifarResNet
from harness.data.datasets import Dataset
from harness.proxies.settings import TrainSettings
from harness.spaces.nb201.network import NB201Network
from harness.store.results import ResultsStore
from harness.train.recipe import ORIGINAL, TrainConfig
from harness.transfer.depth import (
    DEFAULT_ESTIMATOR,
    check_estimator,
    check_threshold,
    choose_transfer_depth,
    default_threshold,
    shape_compatible,
)
from harness.transfer.splice import build_tr_net

#: Any architecture serves to read NB201's cell shapes (they do not depend on the ops).
_SHAPE_ARCH = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def method_for(i: int, j: int) -> str:
    """(i, j) -> the method string a Tr-Net run records, ``tr-net-{i}-{j}``."""
    for name, v in (("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise HarnessError(f"transfer depth {name}={v!r}: must be a positive integer")
    return f"tr-net-{int(i)}-{int(j)}"


@torch.no_grad()
def splice_shapes(backbone: CifarResNet, input_size: tuple[int, int, int] = (3, 32, 32),
                  N: int = 5) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(C, H, W) of NB201 search cells 1..3N and of backbone blocks 1..K for ``input_size`` images."""
    x = torch.zeros(1, *input_size)
    nb201 = NB201Network(_SHAPE_ARCH, N=N).eval()
    body = nb201.forward_features(x)
    cells = [tuple(body[p].shape[1:]) for p in nb201.search_positions()]
    was_training = backbone.training
    backbone = backbone.eval()
    param = next(backbone.parameters())
    blocks = [tuple(f.shape[1:]) for f in backbone.forward_features(x.to(param.device, param.dtype))]
    backbone.train(was_training)
    return cells, blocks


def splice_compatible(backbone: CifarResNet, input_size: tuple[int, int, int] = (3, 32, 32),
                      N: int = 5) -> Callable[[int, int], bool]:
    """``compatible(i, j)`` (1-based) for :func:`choose_transfer_depth`; see the module docstring."""
    return shape_compatible(*splice_shapes(backbone, input_size, N))


def auto_transfer(backbone_ckpt: "str | Path", data: Dataset, *, threshold: "float | None" = None,
                  estimator: "str | None" = None, n_archs: int = 3, train_cfg: TrainConfig = ORIGINAL, seed: int = 0,
                  cka=None, out_dir: "str | Path | None" = None, n_eval: int = 500, batch_size: int = 250,
                  progress: bool = False) -> tuple[int, int, dict]:
    """Choose Tr-Net-i-j for ``backbone_ckpt`` on ``data`` from CKA -> (i, j, record).

    ``cka``: None runs :func:`run_cka` with ``n_archs`` random architectures (seeded, trained with
    ``train_cfg``; outputs to ``out_dir``, or a temporary folder that is removed); a path reuses
    a CKA table (its latest batch's mean over the NB201 networks); an array is used as the mean
    matrix (cells x blocks). ``estimator``: the CKA the matrix holds -- None = the table's own for a
    path, :data:`DEFAULT_ESTIMATOR` otherwise; a table computed with another one is an error.
    ``threshold`` None = the estimator's calibrated one (:data:`harness.transfer.depth.DEFAULT_THRESHOLDS`).
    Raises :class:`HarnessError` when no compatible pair reaches the threshold.
    """
    if estimator is not None:
        check_estimator(estimator)
    if threshold is not None:
        threshold = check_threshold(threshold)
    backbone, _ = load_backbone(backbone_ckpt)  # a missing / bad checkpoint fails before any training
    input_size = tuple(data.train.x.shape[1:])
    cell_shapes, block_shapes = splice_shapes(backbone, input_size)
    source: dict = {}
    if cka is None:
        resolve_archs(n_archs, seed)  # reject a bad count here, with the same message as run_cka
        with tempfile.TemporaryDirectory(prefix="cka-auto-") as tmp:
            store = ResultsStore(out_dir or tmp)
            result = run_cka(backbone_ckpt, n_archs, data, out_dir=store.path("cka"), store=store, n_eval=n_eval,
                             batch_size=batch_size, train_cfg=train_cfg, seed=seed, progress=progress,
                             estimator=estimator or DEFAULT_ESTIMATOR)
        mean, estimator = result.mean, result.estimator
        source = {"transfer_source": str(store.path("cka")) if out_dir else "cka run (not kept)",
                  "transfer_cka_archs": json.dumps(result.archs)}
    elif isinstance(cka, (str, Path)):
        table = read_cka(cka)
        if estimator not in (None, table.estimator):
            raise HarnessError(f"transfer depth: the CKA table {cka} holds {table.estimator!r} values, not "
                               f"{estimator!r}: thresholds differ between estimators")
        mean, estimator = table.mean, table.estimator
        source = {"transfer_source": str(cka)}
    else:
        mean, estimator = np.asarray(cka, dtype=np.float64), estimator or DEFAULT_ESTIMATOR
        source = {"transfer_source": "matrix"}
    threshold = default_threshold(estimator) if threshold is None else threshold

    n_cells, n_blocks = len(cell_shapes), len(block_shapes)
    if mean.shape != (n_cells, n_blocks):
        raise HarnessError(f"transfer depth: the CKA matrix is {mean.shape}, but NB201 has {n_cells} cells and "
                           f"{backbone_ckpt} has {n_blocks} blocks: expected ({n_cells}, {n_blocks})")
    try:
        choice = choose_transfer_depth(mean, threshold, estimator=estimator,
                                       compatible=shape_compatible(cell_shapes, block_shapes))
    except HarnessError as exc:
        if cka is None and out_dir:  # the CKA run was expensive: say how to reuse it
            raise HarnessError(f"{exc}; the CKA table is kept: reuse it with cka={source['transfer_source']}") from None
        raise
    build_tr_net(NB201Network(_SHAPE_ARCH, num_classes=data.num_classes), backbone, choice.i, choice.j,
                 input_size=input_size)  # the splice itself must accept it; raises otherwise
    return choice.i, choice.j, {"transfer": "auto", **choice.as_record(), **source}


#: The method of a Tr-Net whose depth is chosen from CKA when it runs (``train:tr-net-auto``).
AUTO_METHOD = "tr-net-auto"


@dataclass(frozen=True)
class AutoTransferSettings:
    """How :data:`AUTO_METHOD` chooses (i, j): a ``train`` definition's ``[transfer]`` table."""

    threshold: "float | None" = None   # None = the estimator's calibrated one
    estimator: "str | None" = None     # None = a CKA table's own, else DEFAULT_ESTIMATOR
    cka: "str | None" = None           # a CKA table to choose from; None = a small CKA run first
    cka_archs: int = 3                 # that run's random NB201 architectures
    cka_epochs: int = 12               # their Original training epochs

    def cka_config(self, train: TrainSettings) -> TrainConfig:
        """The small CKA run's recipe: Original for ``cka_epochs`` epochs, on the candidates' device
        and in their precision (their batch size and other overrides are theirs alone)."""
        return TrainSettings(device=train.device, precision=train.precision, channels_last=train.channels_last,
                             epochs={"original": self.cka_epochs}).config("original")

    def choose(self, backbone: "str | Path", data: Dataset, train: TrainSettings, out_dir: "str | Path",
               progress: bool = False) -> tuple[str, dict]:
        """(``tr-net-<i>-<j>``, the record its rows carry) for ``backbone`` on ``data``
        (:func:`auto_transfer`; a CKA run keeps its table under ``out_dir``)."""
        i, j, record = auto_transfer(backbone, data, threshold=self.threshold, estimator=self.estimator,
                                     n_archs=self.cka_archs, train_cfg=self.cka_config(train), seed=train.seed,
                                     cka=self.cka, out_dir=out_dir, progress=progress)
        return method_for(i, j), record
