"""DARTS+PT on the DARTS space: the projection plan (normal and reduction cell in step, then the
topology), the topology rule of the reference, a valid genotype after full projection, projected
edges one-hot through tuning, a tiny real search end to end, and the leaderboard's DARTS rows."""
from dataclasses import replace

import pandas as pd
import pytest
import torch
from torch import nn

from harness.data.datasets import Split
from harness.methods.oneshot.bilevel import SearchConfig
from harness.methods.oneshot.dartspt import dartspt_search
from harness.methods.oneshot.decision import OP, TOPOLOGY
from harness.methods.oneshot.pt import edge_order, project_next, project_step, projection_plan, undecided
from harness.report.oneshot import oneshot_section, plot_oneshot_memory
from harness.spaces.darts.genotype import Genotype, parse, to_str
from harness.spaces.darts.network import NetworkCIFAR
from harness.spaces.darts.ops import PRIMITIVES
from harness.spaces.darts.supernet import EDGES, ArchitectureWeights, DartsSupernet, node_edges
from harness.spaces.nb201.supernet import NB201Supernet


class FakeDartsSupernet(nn.Module):
    """A DARTS architecture state whose 'accuracy' is a known function of the op weights: an op of
    weight 0 on edge e of cell c costs ``op_harm[c, e, k]`` points (while still a candidate), a whole
    edge of weight 0 costs ``edge_harm[c, e]`` (while not removed)."""

    def __init__(self, op_harm: torch.Tensor, edge_harm: torch.Tensor):
        super().__init__()
        self.arch = ArchitectureWeights()
        self.op_harm, self.edge_harm = op_harm, edge_harm
        self.calls = 0

    def accuracy(self, weights: torch.Tensor) -> float:
        self.calls += 1
        edge_gone = (weights == 0).all(-1) & self.arch.edge_mask
        op_gone = (weights == 0) & self.arch.op_mask & ~edge_gone[..., None]
        return 90.0 - float((self.op_harm * op_gone).sum()) - float((self.edge_harm * edge_gone).sum())

    def genotype(self) -> Genotype:
        return self.arch.genotype()


def _fake(seed: int = 0) -> FakeDartsSupernet:
    gen = torch.Generator().manual_seed(seed)
    return FakeDartsSupernet(torch.rand(2, 14, 8, generator=gen), torch.rand(2, 14, generator=gen))


def test_topology_projection_keeps_the_edges_whose_removal_hurts_most():
    net = _fake()
    node5 = node_edges(5)  # edges 9..13: inputs 0..4
    net.edge_harm[0, node5] = torch.tensor([4.0, 1.0, 7.0, 2.0, 7.0])  # 11 and 13 hurt most
    for row in [(0, e) for e in range(14)]:
        net.arch.keep(OP, row, [3])  # topology comes after op projection
    chosen = project_next(net, [(0, 5)], net.accuracy, TOPOLOGY)
    assert chosen["cell"] == "normal" and chosen["node"] == 5
    assert chosen["edges"] == node5 and chosen["kept"] == [11, 13]
    # the reference measures each remaining edge removed alone, every round: the edge dropped in an
    # earlier round is not removed for the next measurement
    rounds = chosen["accuracy_without_edge"]
    assert rounds == [[86.0, 89.0, 83.0, 88.0, 83.0], [86.0, 83.0, 88.0, 83.0], [86.0, 83.0, 83.0]]
    assert [bool(m) for m in net.arch.edge_mask[0, node5]] == [False, False, True, False, True]
    assert net.arch.decided(TOPOLOGY, (0, 5)) and project_next(net, [(0, 5)], net.accuracy, TOPOLOGY) is None
    pairs = net.genotype().normal[6:]
    assert sorted(src for _, src in pairs) == [2, 4] and {op for op, _ in pairs} == {PRIMITIVES[3]}


def test_topology_ties_drop_the_later_edge():
    net = _fake()
    net.edge_harm.zero_()
    for c in range(2):
        for e in range(14):
            net.arch.keep(OP, (c, e), [1])
    assert project_next(net, [(1, 4)], net.accuracy, TOPOLOGY)["kept"] == [5, 6]  # inputs 0 and 1


def test_op_projection_skips_none_and_keeps_the_op_whose_removal_hurts_most():
    net = _fake()
    net.op_harm[1, 7] = torch.tensor([50.0, 1.0, 2.0, 9.0, 3.0, 9.0, 0.5, 4.0])  # 'none' is no candidate
    chosen = project_next(net, [(1, 7)], net.accuracy)
    assert chosen == {"cell": "reduce", "edge": 7, "op": 3, "accuracy_without_op": chosen["accuracy_without_op"]}
    values = chosen["accuracy_without_op"]
    assert values[0] != values[0] and values[1:] == [89.0, 88.0, 81.0, 87.0, 81.0, 89.5, 86.0]
    assert int(net.arch.projected[1, 7]) == 3


def test_plan_is_seeded_and_alternates_the_cells_then_projects_the_topology():
    net = _fake()
    plan = projection_plan(net, 3)
    assert plan == projection_plan(_fake(1), 3) and plan != projection_plan(net, 4)
    (op_normal, op_reduce), (top_normal, top_reduce) = plan
    assert op_normal[0] == op_reduce[0] == OP and top_normal[0] == top_reduce[0] == TOPOLOGY
    assert sorted(op_normal[1]) == [(0, e) for e in range(14)] and sorted(op_reduce[1]) == [(1, e) for e in range(14)]
    assert sorted(top_normal[1]) == [(0, 3), (0, 4), (0, 5)] and sorted(top_reduce[1]) == [(1, 3), (1, 4), (1, 5)]
    # NB201: one lane whose order is edge_order's (the order its search has always used)
    assert projection_plan(NB201Supernet(10, C=4, N=1), 3) == [[(OP, edge_order(6, 3))]]
    steps = []
    while undecided(net, plan):
        steps.append([(r["cell"], r.get("edge", r.get("node"))) for r, _ in project_step(net, plan, net.accuracy)])
    assert len(steps) == 17 and project_step(net, plan, net.accuracy) == []
    assert steps[:14] == [[("normal", n[1]), ("reduce", r[1])] for n, r in zip(op_normal[1], op_reduce[1])]
    assert steps[14:] == [[("normal", n[1]), ("reduce", r[1])] for n, r in zip(top_normal[1], top_reduce[1])]
    # 14 op steps x 2 cells x 7 candidate ops; per cell nodes 3, 4, 5: 3 + (4 + 3) + (5 + 4 + 3)
    assert net.calls == 14 * 2 * 7 + 2 * 22
    g = net.genotype()
    assert parse(to_str(g)) == g
    for c, cell in enumerate((g.normal, g.reduce)):  # exactly the kept edges, with their projected ops
        for node in range(2, 6):
            kept = [e for e in node_edges(node) if bool(net.arch.edge_mask[c, e])]
            assert len(kept) == 2 and sorted(cell[2 * (node - 2):2 * (node - 1)], key=lambda p: p[1]) == [
                (PRIMITIVES[int(net.arch.projected[c, e])], EDGES[e][0]) for e in kept]
    assert all(bool(m) for m in net.arch.edge_mask[:, :2].flatten())  # node 2 keeps both its edges
    assert int(net.arch.edge_mask.sum()) == 2 * 8
    net_cifar = NetworkCIFAR(g, num_classes=10, C=4, layers=3, auxiliary=False)
    assert net_cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _crops(data, size: int = 8):
    """The images' top-left ``size`` x ``size`` corner: smaller feature maps, a cheaper search."""
    def crop(split: Split) -> Split:
        return Split(split.x[..., :size, :size].contiguous(), split.y)
    return replace(data, train=crop(data.train), valid=crop(data.valid), test=crop(data.test))


@pytest.mark.slow
def test_tiny_darts_search_end_to_end_keeps_projected_edges_one_hot(tiny_data):
    """A real search (training, tuning, PT on real accuracies) on 8 + 8 cropped images. All but two
    edges of each cell are projected beforehand -- a full run measures 240 supernets (the plan test
    above counts them), too slow for a unit test -- so PT here takes 2 op steps, then the 3
    topology steps of each cell."""
    data = _crops(tiny_data(8))
    torch.manual_seed(0)
    model = DartsSupernet(num_classes=10, C=4, layers=3)  # a normal cell, then two reduction cells
    open_edges = {"normal": (0, 5), "reduce": (1, 9)}
    for cell, keep_open in open_edges.items():
        for e in range(14):
            if e not in keep_open:
                model.project(cell, e, 1 + e % 7)
    row = model.arch.weights()[0, EDGES.index((1, 2))].clone()
    cfg = SearchConfig(epochs=1, tune_epochs=2, project_every=1, batch_size=4, hessian_every=0, power_iters=0,
                       select_limit=4)
    res = dartspt_search(model, data, cfg, seed=0)
    torch.testing.assert_close(model.arch.weights()[0, EDGES.index((1, 2))], row)  # node 2: no topology step
    assert bool((model.arch.projected >= 0).all()) and int(model.arch.edge_mask.sum()) == 16
    one_hot = torch.nn.functional.one_hot(model.arch.projected, 8).float() * model.arch.edge_mask[..., None]
    torch.testing.assert_close(model.arch.weights(), one_hot)
    # op steps at tuning epochs 0 and 1 (normal, then reduce), the 3 topology steps after tuning
    assert [p["cell"] for p in res.projections[:4]] == ["normal", "reduce"] * 2
    assert [p["tune_epoch"] for p in res.projections] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
    assert {(p["cell"], p["edge"]) for p in res.projections[:4]} == {
        (cell, e) for cell, edges in open_edges.items() for e in edges}
    assert sorted((p["cell"], p["node"]) for p in res.projections[4:]) == sorted(
        (cell, n) for cell in ("normal", "reduce") for n in (3, 4, 5))
    assert res.arch == model.genotype() and parse(to_str(res.arch)) == res.arch
    assert NetworkCIFAR(res.arch, num_classes=10, C=4, layers=3, auxiliary=False)(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert 0.0 <= res.valid_acc <= 100.0 and res.train_s > 0 and res.select_s >= res.measure_s > 0


def test_leaderboard_says_darts_accuracy_is_unknown(tmp_path):
    arch = to_str(DartsSupernet(10, C=4, layers=3).genotype())
    base = {"benchmark": "darts-dartspt", "dataset": "cifar10", "warmup_epochs": 0, "cutout": 16,
            "space": "darts", "arch_str": arch, "test_acc": float("nan"), "search_s": 10.0, "train_s": 4.0,
            "select_s": 6.0, "epoch_s": 4.0, "saved_bytes": 2e6, "cuda_peak_bytes": float("nan"),
            "final_eig": float("nan"), "device": "cpu", "batch_id": "b1"}
    rows = pd.DataFrame([{**base, "supernet": "original"},
                         {**base, "supernet": "tr-supernet-2-3", "warmup_epochs": 1, "saved_bytes": 1e6}])
    text = oneshot_section(rows)
    assert text.count("unknown (no darts table)") == 2 and "nan" not in text
    assert "T5: err 2.77 (best 2.71), 0.85 GPU-d, 8.12 GB" in text and "T5: err 2.81" in text
    assert f"`{arch}`" in text and "original / tr-supernet-2-3: saved bytes 2.00x" in text
    nb201 = {**base, "benchmark": "nb201-dartspt", "space": "nb201", "supernet": "original", "test_acc": 93.0,
             "arch_str": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "saved_bytes": 4e6}
    both = pd.concat([rows, pd.DataFrame([nb201])])
    text = oneshot_section(both)
    assert "| 93.00 ± 0.00 | T4: 93.04 | |none~0|" in text.replace("\\|", "|")  # NB201 cells stay in the table
    assert plot_oneshot_memory(both, tmp_path / "m.png").stat().st_size > 0  # an NB201 and a DARTS group
