"""A toy search space: the smallest complete :class:`harness.spaces.SearchSpace`, to copy from.

A candidate is a 2-edge cell ``x -> op_a -> op_b`` with ops ``conv3x3``, ``skip`` and ``pool``
(9 candidates); its text format is ``"conv3x3|skip"``. Register it with
``register_space("toy", ToySpace)``; the samplers, proxies and the splice need nothing else.
"""
from __future__ import annotations

from optuna.distributions import CategoricalDistribution
from torch import nn

from harness import HarnessError

OPS = ("conv3x3", "skip", "pool")
PARAMS = ("edge_a", "edge_b")


class ToySpace:
    name = "toy"
    mutations = ("one_edge",)
    datasets = ("cifar10", "cifar100", "ImageNet16-120")  # table datasets a benchmark may name

    def parse(self, text):
        return self.canonical(tuple(str(text).split("|")))

    def format(self, arch):
        return "|".join(self.canonical(arch))

    def canonical(self, arch):
        if isinstance(arch, str):
            return self.parse(arch)
        arch = tuple(arch)
        if len(arch) != len(PARAMS) or any(op not in OPS for op in arch):
            raise HarnessError(f"toy arch {arch!r}: expected {len(PARAMS)} ops out of {', '.join(OPS)}")
        return arch

    def distributions(self):
        return {name: CategoricalDistribution(OPS) for name in PARAMS}

    def to_params(self, arch):
        return dict(zip(PARAMS, self.canonical(arch)))

    def from_params(self, params):
        return self.canonical(tuple(params.get(name) for name in PARAMS))

    def random(self, rng):
        return tuple(OPS[i] for i in rng.integers(0, len(OPS), size=len(PARAMS)))

    def mutate(self, arch, rng, mode=None):
        if (mode or self.mutations[0]) not in self.mutations:
            raise HarnessError(f"mutation mode {mode!r}: expected one of {', '.join(self.mutations)}")
        arch, edge = list(self.canonical(arch)), int(rng.integers(0, len(PARAMS)))
        others = [op for op in OPS if op != arch[edge]]
        arch[edge] = others[int(rng.integers(0, len(others)))]
        return tuple(arch)

    def build_network(self, arch, num_classes=10, C=8):
        return ToyNetwork(self.canonical(arch), num_classes, C)

    def build_supernet(self, num_classes=10, **options):
        """Not implemented: the toy space has no one-shot supernet (query search only)."""
        raise NotImplementedError("the toy space has no supernet")


# -- the network: stem, 3 cells, head; spliceable (search_positions / tail / expected_input) ------

def make_op(op: str, C: int) -> nn.Module:
    if op == "conv3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
    return nn.Identity() if op == "skip" else nn.AvgPool2d(3, stride=1, padding=1)


class ToyCell(nn.Module):
    def __init__(self, arch, C):
        super().__init__()
        self.in_dim = C
        self.ops = nn.Sequential(*(make_op(op, C) for op in arch))  # the two edges in sequence

    def forward(self, x):
        return self.ops(x)


class ToyTail(nn.Module):
    """Cells from ``start`` on, then the head; consumes the last output before it."""

    inputs = 1

    def __init__(self, cells, head):
        super().__init__()
        self.cells, self.head = nn.ModuleList(cells), head

    def forward(self, inputs):
        x = inputs[-1]
        for cell in self.cells:
            x = cell(x)
        return self.head(x)

    def forward_features(self, inputs):
        feats, x = [], inputs[-1]
        for cell in self.cells:
            x = cell(x)
            feats.append(x)
        return feats


class ToyNetwork(nn.Module):
    def __init__(self, arch, num_classes=10, C=8):
        super().__init__()
        self.arch_str = "|".join(arch)
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        self.cells = nn.ModuleList(ToyCell(arch, C) for _ in range(3))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, num_classes))

    def search_positions(self):
        return [0, 1, 2]

    def tail(self, start):
        return ToyTail(list(self.cells[start:]), self.head)

    def expected_input(self, start, input_size):
        return (self.cells[start].in_dim, *input_size[1:])  # no cell changes the resolution

    def forward(self, x):
        return self.tail(0)([self.stem(x)])
