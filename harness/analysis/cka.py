"""Linear CKA, the similarity index behind the paper's Figs. 1 and 2.

Two estimators:

* **Full data, paper Eq. (1)** (Kornblith et al. 2019): for representations ``X`` (n x p1) and
  ``Y`` (n x p2) of the same n examples, ``K = X X^T``, ``L = Y Y^T``, ``H = I - 11^T/n``,
  ``HSIC(K, L) = vec(HKH) . vec(HLH) / (n-1)^2`` and
  ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``. :func:`linear_cka_gram` is that formula
  literally; :func:`linear_cka_features` is the same number computed in feature space,
  ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred ``Xc``, ``Yc`` (since
  ``tr(HKH HLH) = ||Yc^T Xc||_F^2``), which is cheaper when n >> p. For whole (layers of A) x
  (layers of B) matrices, :func:`full_data_layer` keeps each layer in the cheaper form -- its
  centred n x n Gram when it has at least as many features as examples, else its centred
  features -- and :func:`eq1_matrix` pairs them; :func:`linear_cka` is one such pair.
* **Minibatch** (Nguyen, Raghu & Kornblith, ICLR 2021): per minibatch the unbiased HSIC_1 of
  Song et al. (2012) is computed and summed over minibatches;
  ``CKA = sum HSIC_1(K, L) / sqrt(sum HSIC_1(K, K) sum HSIC_1(L, L))``. Only n x n Gram matrices
  of one minibatch are ever held, so thousands of examples and wide feature maps fit in memory.
  :class:`MinibatchCKA` accumulates a whole (layers of A) x (layers of B) matrix at once;
  :func:`linear_cka_unbiased` is the same estimator on all examples as one batch.

Scales differ: Eq. (1)'s biased HSIC overstates similarity when features outnumber examples
(independent Gaussian features, n = 500, p = 16,384: Eq. (1) about 0.97, the unbiased estimator
about 0.005), so thresholds on one scale do not carry over to the other
(:data:`harness.transfer.depth.DEFAULT_THRESHOLDS` has one per estimator, names in
:data:`harness.transfer.depth.CKA_ESTIMATORS`).

All arithmetic is float64 on the inputs' device. A representation with (numerically) zero variance
-- e.g. a NB201 cell whose ops are all ``none`` -- has no defined CKA: those entries are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from harness import HarnessError

#: HSIC(X, X) below this fraction of (||X||_F^2 / n)^2 is rounding noise of a constant
#: representation (~1e-26 and below), not a real signal (mean-dominated ReLU maps sit >= ~1e-12).
_DEGENERATE_REL = 1e-20


def _as_features(x, name: str = "x") -> torch.Tensor:
    """(n, ...) tensor or array -> (n, p) float64 tensor, one row per example."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim < 2:
        raise HarnessError(f"{name}: expected (examples, features...), got shape {tuple(t.shape)}")
    t = t.detach().reshape(t.shape[0], -1).to(torch.float64)
    if t.shape[1] == 0:
        raise HarnessError(f"{name}: has no features (shape {tuple(t.shape)})")
    return t


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_n: int) -> int:
    if x.shape[0] != y.shape[0]:
        raise HarnessError(f"CKA: both representations need the same examples, "
                           f"got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < min_n:
        raise HarnessError(f"CKA: needs at least {min_n} examples, got {x.shape[0]}")
    return x.shape[0]


def _ratio(hxy: torch.Tensor, hxx: torch.Tensor, hyy: torch.Tensor,
           scale_x: torch.Tensor, scale_y: torch.Tensor) -> torch.Tensor:
    """hxy / sqrt(hxx hyy) (scalars, or a matrix with per-row x and per-column y terms);
    NaN where either side has no variance (see ``_DEGENERATE_REL``)."""
    if hxy.ndim == 2:
        hxx, scale_x = hxx[:, None], scale_x[:, None]
        hyy, scale_y = hyy[None, :], scale_y[None, :]
    ok = (hxx > _DEGENERATE_REL * scale_x) & (hyy > _DEGENERATE_REL * scale_y)
    denom = torch.sqrt(torch.where(ok, hxx * hyy, torch.ones_like(hxx * hyy)))
    return torch.where(ok, hxy / denom, torch.full_like(hxy, float("nan")))


def _scale(x: torch.Tensor) -> torch.Tensor:
    """(||X||_F^2 / n)^2: an upper bound on the size of HSIC(X, X), used only to spot zero variance."""
    return (x.square().sum() / x.shape[0]) ** 2


def _trace_scale(grams: torch.Tensor) -> torch.Tensor:
    """(trace(K) / n)^2 = (||X||_F^2 / n)^2 per Gram: the :func:`_scale` bound when only Grams are given."""
    return (grams.diagonal(dim1=-2, dim2=-1).sum(-1).to(torch.float64) / grams.shape[-1]) ** 2


# --- full data: paper Eq. (1) -----------------------------------------------------------------

def gram_linear(x) -> torch.Tensor:
    """Linear-kernel Gram matrix ``K = X X^T`` (n x n, float64)."""
    x = _as_features(x)
    return x @ x.T


def center_gram(k: torch.Tensor) -> torch.Tensor:
    """``H K H`` with ``H = I - 11^T/n``, without forming H (subtract row/column means, add the grand mean)."""
    k = k.to(torch.float64)
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Biased HSIC of the paper: ``vec(HKH) . vec(HLH) / (n-1)^2``."""
    n = k.shape[0]
    return (center_gram(k) * center_gram(l)).sum() / (n - 1) ** 2


def linear_cka_gram(x, y) -> float:
    """Paper Eq. (1) literally, through the n x n Gram matrices. O(n^2 (p1 + p2)) time, O(n^2) memory."""
    x, y = _as_features(x, "x"), _as_features(y, "y")
    n = _check_pair(x, y, 2)
    k, l = x @ x.T, y @ y.T
    to_biased = (n / (n - 1)) ** 2  # _scale is per n; the biased HSIC divides by (n-1)^2
    return float(_ratio(hsic(k, l), hsic(k, k), hsic(l, l), _scale(x) * to_biased, _scale(y) * to_biased))


def linear_cka_features(x, y) -> float:
    """Paper Eq. (1) in feature space: ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``.

    Equal to :func:`linear_cka_gram` (the (n-1)^2 factors cancel); O(n (p1 + p2)^2) time, so the
    better choice when there are many more examples than features.
    """
    x, y = _as_features(x, "x"), _as_features(y, "y")
    n = _check_pair(x, y, 2)
    xc, yc = x - x.mean(0), y - y.mean(0)
    hxy = (yc.T @ xc).square().sum()
    hxx = (xc.T @ xc).square().sum()
    hyy = (yc.T @ yc).square().sum()
    return float(_ratio(hxy, hxx, hyy, _scale(x) * n**2, _scale(y) * n**2))


@dataclass(frozen=True)
class FullDataLayer:
    """One layer over all n examples, ready for Eq. (1): the centred Gram ``Kc = Xc Xc^T`` (n x n)
    when p >= n, else the centred features ``Xc`` (n x p) -- whichever is smaller to hold and
    cheaper to pair. HSIC terms are kept without Eq. (1)'s 1/(n-1)^2, which cancels in CKA."""

    gram: Optional[torch.Tensor]
    features: Optional[torch.Tensor]
    self_hsic: torch.Tensor   # tr(Kc Kc) = ||Xc^T Xc||_F^2
    scale: torch.Tensor       # ||X||_F^4 = _scale * n^2: only to spot a zero-variance layer

    @property
    def n(self) -> int:
        return (self.gram if self.gram is not None else self.features).shape[0]

    def as_gram(self) -> torch.Tensor:
        return self.gram if self.gram is not None else self.features @ self.features.T


def full_data_layer(x, name: str = "x") -> FullDataLayer:
    """A layer's representation (n, ...) -> :class:`FullDataLayer`, in float64."""
    x = _as_features(x, name)
    n, p = x.shape
    scale = _scale(x) * n**2
    xc = x - x.mean(0)
    if p >= n:
        gram = xc @ xc.T
        return FullDataLayer(gram, None, gram.square().sum(), scale)
    return FullDataLayer(None, xc, (xc.T @ xc).square().sum(), scale)


def _cross_hsic(a: FullDataLayer, b: FullDataLayer) -> torch.Tensor:
    """tr(Ka Kb) = vec(HKH) . vec(HLH), in whichever form both layers allow."""
    if a.features is not None and b.features is not None:
        return (b.features.T @ a.features).square().sum()
    return (a.as_gram() * b.as_gram()).sum()


def eq1_matrix(layers_a: Sequence[FullDataLayer], layers_b: Sequence[FullDataLayer]) -> np.ndarray:
    """Paper Eq. (1) between every layer of A (rows) and of B (columns) -> float64 numpy; NaN
    where a layer has no variance. All layers must hold the same n examples."""
    if not layers_a or not layers_b:
        raise HarnessError(f"CKA: needs at least one layer per side, got {len(layers_a)} and {len(layers_b)}")
    sizes = {layer.n for layer in (*layers_a, *layers_b)}
    if len(sizes) != 1:
        raise HarnessError(f"CKA: both representations need the same examples, got {sorted(sizes)} rows")
    if sizes.pop() < 2:
        raise HarnessError("CKA: needs at least 2 examples")
    hab = torch.stack([torch.stack([_cross_hsic(a, b) for b in layers_b]) for a in layers_a])
    haa, hbb = torch.stack([a.self_hsic for a in layers_a]), torch.stack([b.self_hsic for b in layers_b])
    sa, sb = torch.stack([a.scale for a in layers_a]), torch.stack([b.scale for b in layers_b])
    return _ratio(hab, haa, hbb, sa, sb).cpu().numpy()


def linear_cka(x, y) -> float:
    """Linear CKA of paper Eq. (1), each side in its cheaper form (see :class:`FullDataLayer`)."""
    x, y = _as_features(x, "x"), _as_features(y, "y")
    _check_pair(x, y, 2)
    return float(eq1_matrix([full_data_layer(x, "x")], [full_data_layer(y, "y")])[0, 0])


# --- minibatch: unbiased HSIC_1 (Song et al. 2012), Nguyen et al. 2021 ------------------------

def _unbiased_parts(grams: torch.Tensor):
    """Per-Gram pieces of HSIC_1 for a stack (m, n, n): zero-diagonal K~ flattened, 1^T K~ 1, K~ 1."""
    k = grams.to(torch.float64).clone()
    k.diagonal(dim1=-2, dim2=-1).zero_()
    return k.reshape(k.shape[0], -1), k.sum((-2, -1)), k.sum(-1)


def _unbiased_hsic_from_parts(a, b, n: int) -> torch.Tensor:
    """HSIC_1 for every pair of a stack of A and a stack of B Grams -> (A, B).

    Song et al. (2012), Eq. (5): with K~, L~ the Grams with zero diagonals,
    ``HSIC_1 = [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))``.
    K~ is symmetric, so ``tr(K~L~) = vec(K~) . vec(L~)`` and ``1^T K~ L~ 1 = (K~ 1) . (L~ 1)``.
    """
    (ka, sa, ra), (kb, sb, rb) = a, b
    trace = ka @ kb.T
    cross = sa[:, None] * sb[None, :] / ((n - 1) * (n - 2))
    return (trace + cross - 2.0 / (n - 2) * (ra @ rb.T)) / (n * (n - 3))


def _self_hsic(parts, n: int) -> torch.Tensor:
    """HSIC_1(K, K) for each Gram of a stack, without the full (m, m) cross matrix."""
    k, s, r = parts
    return ((k * k).sum(-1) + s * s / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (r * r).sum(-1)) / (n * (n - 3))


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC_1 of Song et al. (2012) for two n x n Gram matrices (n >= 4); diagonals are ignored."""
    n = k.shape[0]
    if n < 4:
        raise HarnessError(f"unbiased HSIC: needs at least 4 examples, got {n}")
    return _unbiased_hsic_from_parts(_unbiased_parts(k[None]), _unbiased_parts(l[None]), n)[0, 0]


def centered_grams(features: Sequence[torch.Tensor], n: int, device, side: str = "features"):
    """Stack of Grams of per-batch column-centred features, and each one's (||X||^2/n)^2 scale.

    Centring first does not change HSIC_1 (it is translation invariant for the linear kernel: the
    extra terms c.x_i + c.x_j + c.c are of the form U-centring removes) but keeps float64 from
    subtracting huge, mean-dominated Gram entries of post-ReLU maps.
    """
    grams, scales = [], []
    for index, f in enumerate(features):
        x = _as_features(f, f"{side}[{index}]").to(device)
        if x.shape[0] != n:
            raise HarnessError(f"MinibatchCKA: {side}[{index}] has {x.shape[0]} examples, "
                               f"expected {n} like the rest of the batch")
        scales.append(_scale(x))
        x = x - x.mean(0)
        grams.append(x @ x.T)
    return torch.stack(grams), torch.stack(scales)


def linear_cka_unbiased(x, y) -> float:
    """CKA from the unbiased HSIC_1 on all n examples at once: what :class:`MinibatchCKA` estimates.

    Averaged over random minibatches, HSIC_1 of a batch equals HSIC_1 of the whole set (it is a
    U-statistic), so the minibatch CKA converges to this value; for n >> p it also approaches
    Eq. (1), whose biased HSIC overstates similarity when features outnumber examples.
    """
    x, y = _as_features(x, "x"), _as_features(y, "y")
    _check_pair(x, y, 4)
    accumulator = MinibatchCKA(1, 1)
    accumulator.update([x], [y])
    return float(accumulator.compute()[0, 0])


class MinibatchCKA:
    """Accumulates linear CKA between every layer of A and every layer of B over minibatches.

    Call :meth:`update` once per minibatch with the two lists of features (same examples, same
    order; each (n, ...) and flattened per example), then :meth:`compute` for the
    (len(A) x len(B)) matrix ``sum HSIC_1(K, L) / sqrt(sum HSIC_1(K, K) sum HSIC_1(L, L))``.
    Sums live on the device of the first batch's features, in float64.
    """

    def __init__(self, n_a: int, n_b: int):
        if n_a < 1 or n_b < 1:
            raise HarnessError(f"MinibatchCKA: needs at least one layer per side, got {n_a} and {n_b}")
        self.n_a, self.n_b = n_a, n_b
        self.n_batches = 0
        self.n_examples = 0
        self._hab = self._haa = self._hbb = self._sa = self._sb = None

    def update(self, features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor]) -> None:
        """Add one minibatch: ``features_a[i]`` is layer i of A on the batch, likewise for B."""
        if len(features_a) != self.n_a or len(features_b) != self.n_b:
            raise HarnessError(f"MinibatchCKA: expected {self.n_a} and {self.n_b} feature tensors, "
                               f"got {len(features_a)} and {len(features_b)}")
        n = int(features_a[0].shape[0])
        if n < 4:
            raise HarnessError(f"MinibatchCKA: each minibatch needs at least 4 examples (unbiased HSIC), got {n}")
        device = self._hab.device if self._hab is not None else features_a[0].device
        grams_a, scale_a = centered_grams(features_a, n, device, "features_a")
        grams_b, scale_b = centered_grams(features_b, n, device, "features_b")
        self.update_grams(grams_a, grams_b, scale_a, scale_b)

    def update_grams(self, grams_a: torch.Tensor, grams_b: torch.Tensor,
                     scale_a: "torch.Tensor | None" = None, scale_b: "torch.Tensor | None" = None) -> None:
        """Add one minibatch given Gram stacks (len(A), n, n) and (len(B), n, n) directly.

        Lets a caller compute one network's Grams once and reuse them against many others.
        ``scale_*`` (per Gram, see :func:`_scale`) only serve to detect zero-variance layers.
        """
        n = grams_a.shape[-1]
        if grams_a.shape != (self.n_a, n, n) or grams_b.shape != (self.n_b, n, n):
            raise HarnessError(
                f"MinibatchCKA: Gram stacks must be ({self.n_a}, n, n) and ({self.n_b}, n, n), "
                f"got {tuple(grams_a.shape)} and {tuple(grams_b.shape)}")
        if n < 4:
            raise HarnessError(f"MinibatchCKA: each minibatch needs at least 4 examples (unbiased HSIC), got {n}")
        if self._hab is None:
            device = grams_a.device

            def zeros(*shape: int) -> torch.Tensor:
                return torch.zeros(shape, dtype=torch.float64, device=device)

            self._hab, self._haa, self._hbb = zeros(self.n_a, self.n_b), zeros(self.n_a), zeros(self.n_b)
            self._sa, self._sb = zeros(self.n_a), zeros(self.n_b)
        device = self._hab.device
        parts_a = _unbiased_parts(grams_a.to(device))
        parts_b = _unbiased_parts(grams_b.to(device))
        self._hab += _unbiased_hsic_from_parts(parts_a, parts_b, n)
        self._haa += _self_hsic(parts_a, n)
        self._hbb += _self_hsic(parts_b, n)
        self._sa += (_trace_scale(grams_a) if scale_a is None else scale_a).to(device, torch.float64)
        self._sb += (_trace_scale(grams_b) if scale_b is None else scale_b).to(device, torch.float64)
        self.n_batches += 1
        self.n_examples += n

    def compute(self) -> np.ndarray:
        """The (len(A), len(B)) CKA matrix as float64 numpy; NaN where a layer has no variance."""
        if self._hab is None:
            raise HarnessError("MinibatchCKA: no minibatches were added")
        return _ratio(self._hab, self._haa, self._hbb, self._sa, self._sb).cpu().numpy()
