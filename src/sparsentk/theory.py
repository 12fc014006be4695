r"""P1's bounds as functions, next to the exact quantities they bound (paper-notes §3).

Several of P1's statements were reconstructed from prose (paper-notes marks them): their *shape* — which quantities,
which dependence on B, m, n — is reliable, their absolute constants are not. Every such function takes the constant
as a parameter (``c`` or ``C``, default 1 unless the paper's text fixes one) and its value is meaningful **up to
constants** only. Exact probabilities (active, flip) and eigenvalues carry no constant.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg
from scipy.special import ndtr

from sparsentk import _moments
from sparsentk._gram import gram
from sparsentk._validate import check_float, check_int, check_matrix, check_vector
from sparsentk.kernels import bias_ntk, lambda_min, orthant_probability

UP_TO_CONSTANTS = "up to constants"


# ---------------------------------------------------------------------------------------------------- sparsity
def active_probability(bias: float, x_norm: Any = 1.0) -> Any:
    r"""Exact probability that a neuron fires at initialization, :math:`P(w\cdot x \ge B) = \bar\Phi(B/\|x\|)`."""
    bias = check_float(bias, "bias", minimum=0.0)
    x_norm = np.asarray(x_norm, dtype=np.float64)
    if np.any(x_norm < 0) or not np.all(np.isfinite(x_norm)):
        raise ValueError(f"x_norm: expected finite non-negative norms, got {x_norm}")
    with np.errstate(divide="ignore"):
        h = np.where(x_norm > 0, bias / np.where(x_norm > 0, x_norm, 1.0), np.inf if bias > 0 else -np.inf)
    out = ndtr(-h)
    return float(out) if out.ndim == 0 else out


def active_bound(bias: float) -> float:
    r"""P1's sparsity bound :math:`\bar\Phi(B) \le e^{-B^2/2}` (unit inputs; exact inequality, no constant)."""
    bias = check_float(bias, "bias", minimum=0.0)
    return math.exp(-bias * bias / 2)


def expected_active(width: int, bias: float, x_norm: float = 1.0) -> float:
    r"""Expected active neurons per input at initialization, :math:`m\,\bar\Phi(B/\|x\|)`."""
    return check_int(width, "width", minimum=1) * active_probability(bias, x_norm)


def bias_schedule(width: int, c: float = 0.5) -> float:
    r"""P1's bias schedule :math:`B = \sqrt{c \log m}`."""
    width = check_int(width, "width", minimum=1)
    c = check_float(c, "c", minimum=0.0)
    return math.sqrt(c * math.log(width))


def max_bias(width: int, c: float = 0.5) -> float:
    r"""Largest bias Theorem 3.1 allows at width m, :math:`\sqrt{c \log m}` with :math:`c = 0.5` in the paper
    (reconstructed; up to constants)."""
    return bias_schedule(width, c)


# ---------------------------------------------------------------------------------------------------- flips
def flip_probability(bias: float, R_w: Any, R_b: Any, x_norm: Any = 1.0) -> Any:
    r"""Exact probability that a neuron can flip for input x when it moves by at most ``R_w`` and ``R_b``.

    The flip event is the Gaussian strip :math:`|w\cdot x - B| \le R_w\|x\| + R_b` with :math:`w\cdot x \sim
    N(0, \|x\|^2)` (proof of P1 Lemma 3.3):

    .. math:: P = \Phi\Big(\frac{B + R}{\|x\|}\Big) - \Phi\Big(\frac{B - R}{\|x\|}\Big),\qquad R = R_w\|x\| + R_b.
    """
    bias = check_float(bias, "bias", minimum=0.0)
    R_w, R_b, x_norm = (np.asarray(v, dtype=np.float64) for v in (R_w, R_b, x_norm))
    for name, v in (("R_w", R_w), ("R_b", R_b)):
        if np.any(v < 0) or not np.all(np.isfinite(v)):
            raise ValueError(f"{name}: expected finite non-negative movements, got {v}")
    if np.any(x_norm <= 0) or not np.all(np.isfinite(x_norm)):
        raise ValueError(f"x_norm: expected finite positive norms, got {x_norm}")
    R = R_w * x_norm + R_b
    out = ndtr((bias + R) / x_norm) - ndtr((bias - R) / x_norm)
    return float(out) if np.ndim(out) == 0 else out


def flip_bound(bias: float, R: float, c: float = 1.0) -> float:
    r"""P1 Lemma 3.3 (reconstructed): :math:`P(\text{flip}) \le c\,R\,e^{-B^2/2}` for :math:`R \le 1/B`; up to
    constants."""
    bias = check_float(bias, "bias", minimum=0.0)
    R = check_float(R, "R", minimum=0.0)
    return check_float(c, "c", positive=True) * R * math.exp(-bias * bias / 2)


def flip_bound_previous(bias: float, R: float, c: float = 1.0) -> float:
    r"""The earlier flip bound :math:`c\,\min(R, e^{-B^2/2})` that Lemma 3.3 sharpens; up to constants."""
    bias = check_float(bias, "bias", minimum=0.0)
    R = check_float(R, "R", minimum=0.0)
    return check_float(c, "c", positive=True) * min(R, math.exp(-bias * bias / 2))


# ---------------------------------------------------------------------------------------------------- movement
def movement_bound(n: int, initial_error: float, width: int, lam: float, C: float = 4.0) -> float:
    r"""P1 Lemma A.8 (reconstructed): :math:`R_w, R_b \le C\sqrt{n}\,\|f(0) - y\|/(\sqrt{m}\,\lambda)`, C = 4 in
    the reconstruction; up to constants. ``initial_error`` is :math:`\|f(0) - y\|` (not squared)."""
    n = check_int(n, "n", minimum=1)
    initial_error = check_float(initial_error, "initial_error", minimum=0.0)
    width = check_int(width, "width", minimum=1)
    lam = check_float(lam, "lam", positive=True)
    return check_float(C, "C", positive=True) * math.sqrt(n) * initial_error / (math.sqrt(width) * lam)


def initial_error_bound(n: int, width: int, bias: float, delta: float = 0.05, C: float = 1.0) -> float:
    r"""P1 Lemma 3.5 (reconstructed, **low confidence**): :math:`\|f(0) - y\|^2 \le C\,n\big(1 + (e^{-B^2/2} +
    1/m)\log^3(2mn/\delta)\big)`; up to constants."""
    n = check_int(n, "n", minimum=1)
    width = check_int(width, "width", minimum=1)
    bias = check_float(bias, "bias", minimum=0.0)
    delta = check_float(delta, "delta", positive=True, maximum=1.0)
    log = math.log(2 * width * n / delta)
    return check_float(C, "C", positive=True) * n * (1 + (math.exp(-bias * bias / 2) + 1 / width) * log**3)


# ---------------------------------------------------------------------------------------------------- convergence
def theorem_lr(lam: float, bias: float, n: int, c: float = 1.0) -> float:
    r"""Theorem 3.1's step size :math:`\eta = c\,\lambda\,e^{B^2}/n^2` (reconstructed; up to constants)."""
    lam = check_float(lam, "lam", positive=True)
    bias = check_float(bias, "bias", minimum=0.0)
    n = check_int(n, "n", minimum=1)
    return check_float(c, "c", positive=True) * lam * math.exp(bias * bias) / n**2


def convergence_rate(lr: float, lam: float) -> float:
    r"""Theorem 3.1's guaranteed contraction per step: :math:`\|f(t) - y\|^2 \le (1 - \eta\lambda/4)^t
    \|f(0) - y\|^2`; returns :math:`\eta\lambda/4`."""
    return check_float(lr, "lr", positive=True) * check_float(lam, "lam", minimum=0.0) / 4


def width_requirement(n: int, lam0: float, bias: float, C: float = 1.0) -> float:
    r"""Theorem 3.1's width condition :math:`m \ge C\,\lambda_0^{-4} n^4 e^{B^2}` (up to logs and constants)."""
    n = check_int(n, "n", minimum=1)
    lam0 = check_float(lam0, "lam0", positive=True)
    bias = check_float(bias, "bias", minimum=0.0)
    return check_float(C, "C", positive=True) * lam0**-4 * n**4 * math.exp(bias * bias)


def linearized_lr(K: Any) -> float:
    r""":math:`1/\lambda_{\max}(K)`: half the largest step for which GD on the linearized model is stable."""
    w = scipy.linalg.eigvalsh(check_matrix(K, "K", dtype=np.float64), subset_by_index=[len(K) - 1, len(K) - 1])
    return 1.0 / max(float(w[-1]), 1e-300)


def fitted_rate(loss: Any, *, start: float = 0.5) -> float:
    r"""Per-step linear rate :math:`1 - e^{s}` of a loss curve, :math:`s` the least-squares slope of
    :math:`\log L(t)` over the last ``1 - start`` fraction of the steps."""
    loss = check_vector(loss, "loss")
    t0 = int(start * (len(loss) - 1))
    seg = loss[t0:]
    keep = seg > 0
    if keep.sum() < 2:
        raise ValueError(f"loss: need at least two positive values to fit a rate, got {seg}")
    slope = np.polyfit(np.arange(len(seg))[keep], np.log(seg[keep]), 1)[0]
    return float(1.0 - math.exp(slope))


# ---------------------------------------------------------------------------------------------------- eigenvalues
def lambda_curve(X: Any, biases: Any) -> np.ndarray:
    r""":math:`\lambda(B) = \lambda_{\min}(H^\infty_B)` for each bias."""
    X = check_matrix(X, "X", dtype=np.float64)
    return np.array([lambda_min(bias_ntk(X, float(b))) for b in np.atleast_1d(biases)])


def fit_lambda0(biases: Any, lambdas: Any) -> float:
    r"""Least-squares :math:`\lambda_0` in P1's assumption :math:`\lambda(B) \approx \lambda_0 e^{-B^2/2}`:
    :math:`\log\lambda_0 = \mathrm{mean}(\log\lambda(B) + B^2/2)`.

    Measured (``sparsentk reproduce report --quick``): on 300 unit points uniform on the sphere in d = 16,
    :math:`\lambda_0 \approx 0.151` and :math:`\lambda(B)/(\lambda_0 e^{-B^2/2})` stays within [0.92, 1.10] for
    B ∈ [0, 3]: the assumption holds there up to a factor close to 1.
    """
    biases = check_vector(biases, "biases")
    lambdas = check_vector(lambdas, "lambdas", length=len(biases))
    if np.any(lambdas <= 0):
        raise ValueError(f"lambdas: expected positive eigenvalues, got {lambdas}")
    return float(np.exp(np.mean(np.log(lambdas) + biases**2 / 2)))


def separation(X: Any) -> float:
    r"""Data separation :math:`\delta = \min_{i \ne j} \min(\|x_i - x_j\|, \|x_i + x_j\|)` (P1 Theorem 3.12)."""
    X = check_matrix(X, "X", dtype=np.float64, min_rows=2)
    G = gram(X)
    sq = np.diag(G)
    minus = sq[:, None] + sq[None, :] - 2 * G
    plus = sq[:, None] + sq[None, :] + 2 * G
    dist = np.minimum(minus, plus)
    np.fill_diagonal(dist, np.inf)
    return float(np.sqrt(max(dist.min(), 0.0)))


def restricted_lambda_bound(X: Any, bias: float) -> float:
    r"""P1 Theorem 3.12, equation (3) (reconstructed), with :math:`\delta` measured from unit-norm ``X``:

    .. math::

        \lambda' = \max\Big(\tfrac12 - \tfrac{B}{\sqrt{2\pi}},\;
                   \big(\tfrac1B - \tfrac1{B^3}\big)\tfrac{e^{-B^2/2}}{\sqrt{2\pi}}\Big)
                 - e^{-B^2/(2 - \delta^2/2)}\,
                   \frac{\pi - \arctan\big(\delta\sqrt{1 - \delta^2/4}\,/\,(1 - \delta^2/2)\big)}{2\pi},

    returning :math:`\max(0, \lambda')`, a lower bound on the restricted least eigenvalue
    (:func:`restricted_lambda_min`). The arctangent is taken in :math:`[0, \pi]` (``atan2``) so that
    :math:`\delta \ge \sqrt2` is covered.
    """
    X = check_matrix(X, "X", dtype=np.float64, min_rows=2)
    bias = check_float(bias, "bias", minimum=0.0)
    _require_unit_rows(X)
    delta = min(separation(X), math.sqrt(2.0))
    first = 0.5 - bias / math.sqrt(2 * math.pi)
    if bias > 0:
        first = max(first, (1 / bias - 1 / bias**3) * math.exp(-bias * bias / 2) / math.sqrt(2 * math.pi))
    angle = math.atan2(delta * math.sqrt(max(1 - delta**2 / 4, 0.0)), 1 - delta**2 / 2)
    second = math.exp(-bias * bias / (2 - delta**2 / 2)) * (math.pi - angle) / (2 * math.pi)
    return max(0.0, first - second)


def _require_unit_rows(X: np.ndarray) -> None:
    norms = np.linalg.norm(X, axis=1)
    if np.abs(norms - 1).max() > 1e-6:
        raise ValueError(
            f"X: Theorem 3.12 is stated for unit-norm rows, got norms in [{norms.min():.4g}, {norms.max():.4g}]; "
            "normalize the rows first"
        )


def pair_probabilities(X: Any, bias: float) -> np.ndarray:
    r""":math:`p_{ij} = P(g\cdot x_i \ge B,\ g\cdot x_j \ge B)` (thresholds :math:`B/\|x\|`), an n × n matrix."""
    X = check_matrix(X, "X", dtype=np.float64)
    bias = check_float(bias, "bias", minimum=0.0)
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError("X: pair probabilities need non-zero rows")
    rho = np.clip(gram(X) / np.outer(norms, norms), -1.0, 1.0)
    h = bias / norms
    if np.allclose(h, h[0], rtol=1e-13, atol=0):
        return orthant_probability(rho, float(h[0]))
    return orthant_probability(rho, h[:, None], h[None, :])


def region_matrix(X: Any, bias: float) -> np.ndarray:
    r"""The matrix :math:`C` of Definition 3.11's region :math:`R = \{a : a^\top C a \ge 0\}`:
    :math:`C_{ij} = p_{ij} - \min_{i' \ne j'} p_{i'j'}` for :math:`i \ne j`, :math:`C_{ii} = 0`, since
    :math:`\sum_{i\ne j} a_i a_j p_{ij} \ge p_{\min} \sum_{i \ne j} a_i a_j \iff a^\top C a \ge 0`."""
    p = pair_probabilities(X, bias)
    off = ~np.eye(len(p), dtype=bool)
    C = np.where(off, p - (p[off].min() if off.any() else 0.0), 0.0)
    return C


def in_region(a: Any, X: Any, bias: float, *, tol: float = 1e-12) -> bool:
    r"""Whether :math:`a` lies in Definition 3.11's region :math:`R` (within ``tol`` relative)."""
    C = region_matrix(X, bias)
    a = check_vector(a, "a", length=len(C))
    q = float(a @ C @ a)
    return q >= -tol * max(float(np.abs(C).max() * (a @ a)), 1e-300)


def restricted_lambda_min(X: Any, bias: float, *, tol: float = 1e-12, H: Any = None) -> float:
    r"""Exact restricted least eigenvalue :math:`\min\{a^\top H^\infty a : \|a\| = 1,\ a \in R\}` (P1 Def. 3.11).

    A quadratic form minimized on the sphere under one homogeneous quadratic constraint :math:`a^\top C a \ge 0`.
    For :math:`n \ge 3` the joint range of two quadratic forms on the sphere is convex (Brickman), so the
    Lagrangian dual is exact:

    .. math:: \min_{a \in R,\ \|a\|=1} a^\top H a = \max_{\mu \ge 0} \lambda_{\min}(H - \mu C).

    The dual is concave in :math:`\mu` with supergradient :math:`-v^\top C v` (:math:`v` the bottom eigenvector);
    it is maximized by bisection on that supergradient. For :math:`n \le 2`, :math:`C = 0` and the result is
    :math:`\lambda_{\min}(H)`. ``H`` may pass a precomputed :math:`H^\infty`.
    """
    X = check_matrix(X, "X", dtype=np.float64)
    H = bias_ntk(X, bias) if H is None else check_matrix(H, "H", dtype=np.float64)
    C = region_matrix(X, bias)

    def bottom(mu: float) -> tuple[float, float]:
        w, v = scipy.linalg.eigh(H - mu * C, subset_by_index=[0, 0])
        return float(w[0]), float(-(v[:, 0] @ C @ v[:, 0]))

    value, slope = bottom(0.0)
    if slope <= 0 or not np.any(C):
        return value
    lo, hi = 0.0, 1.0
    while bottom(hi)[1] > 0:
        lo, hi = hi, 2 * hi
        if hi > 1e12:
            raise RuntimeError("restricted_lambda_min: the dual did not turn; C may be positive semi-definite")
    best = value
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        value, slope = bottom(mid)
        best = max(best, value)
        if slope > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(hi, 1.0):
            break
    return max(best, bottom(0.5 * (lo + hi))[0])


# ---------------------------------------------------------------------------------------------------- generalization
def complexity(X: Any, y: Any, bias: float, *, H: Any = None) -> float:
    r"""Data-dependent complexity of Theorem 3.9, :math:`\sqrt{2\,y^\top (H^\infty)^{-1} y / n}`."""
    X = check_matrix(X, "X", dtype=np.float64)
    y = check_vector(y, "y", length=X.shape[0], dtype=np.float64)
    H = bias_ntk(X, bias) if H is None else check_matrix(H, "H", dtype=np.float64)
    try:
        c, low = scipy.linalg.cho_factor(H)
        quad = float(y @ scipy.linalg.cho_solve((c, low), y))
    except np.linalg.LinAlgError:
        warnings.warn("H is singular: the complexity term is infinite", RuntimeWarning, stacklevel=2)
        return math.inf
    return math.sqrt(2 * max(quad, 0.0) / len(y))


def complexity_worst_case(y: Any, lam: float) -> float:
    r"""The complexity through the least eigenvalue, :math:`\sqrt{2\|y\|^2/(n\lambda)} \ge
    \sqrt{2 y^\top (H^\infty)^{-1} y/n}`."""
    y = check_vector(y, "y", dtype=np.float64)
    lam = check_float(lam, "lam", positive=True)
    return math.sqrt(2 * float(y @ y) / (len(y) * lam))


def label_shift(X: Any, y: Any, bias: float) -> float:
    r"""Smallest :math:`c \ge 0` with :math:`y + c\mathbf 1 \in R` (P1 Remark 3.13): the least non-negative root of
    :math:`q(c) = y^\top C y + 2c\,\mathbf 1^\top C y + c^2\,\mathbf 1^\top C \mathbf 1`
    (:math:`\mathbf 1^\top C \mathbf 1 \ge 0`, so a root exists unless :math:`C = 0`, when every vector is in R)."""
    C = region_matrix(X, bias)
    y = check_vector(y, "y", length=len(C), dtype=np.float64)
    ones = np.ones(len(y))
    q0, q1, q2 = float(y @ C @ y), float(ones @ C @ y), float(ones @ C @ ones)
    if q0 >= 0:
        return 0.0
    if q2 <= 0:
        raise ValueError("y: no label shift puts these labels in the region (1ᵀC1 = 0)")
    return (-q1 + math.sqrt(q1 * q1 - q2 * q0)) / q2


# ---------------------------------------------------------------------------------------------------- P2: depth
# Liu, Bi, Hui, Liu, "Better NTK Conditioning: A Free Lunch from (ReLU) Nonlinear Activation in Wide Neural Networks",
# arXiv 2305.08813 (P2), and our constant-bias extension (paper-notes §5).
def gradient_angle_relu(theta_in: Any, depth: int) -> Any:
    r"""P2 Lemma 3.1 (B = 0): the model-gradient angle :math:`\varphi` of the infinite-width ReLU network with
    ``depth`` hidden layers, all layers trained, for inputs at angle ``theta_in`` (radians, array-like).

    .. math::

        \cos\varphi = \frac1{L+1}\sum_{l=0}^{L}\cos\theta^{(l)}\prod_{k=l}^{L-1}\Big(1 - \frac{\theta^{(k)}}\pi\Big),
        \qquad \theta^{(0)} = \theta_{in},\quad
        \theta^{(l)} = \arccos\Big(\frac{\pi - \theta^{(l-1)}}{\pi}\cos\theta^{(l-1)}
                       + \frac{\sin\theta^{(l-1)}}{\pi}\Big).

    Evaluated without cancellation near :math:`\varphi = 0` (:math:`1 - \cos\varphi` summed term by term; the
    angle map in θ from :func:`sparsentk._moments.layer_maps`). The result does not depend on the norms or on
    P2's output constant. Small angles: :math:`\varphi \approx \sqrt{L\theta_{in}/\pi}`.
    """
    depth = check_int(depth, "depth", minimum=0)
    theta = np.asarray(theta_in, dtype=np.float64)
    if np.isnan(theta).any() or (theta.size and (theta.min() < 0 or theta.max() > math.pi)):
        raise ValueError(f"theta_in: expected angles in [0, pi] (radians), got {theta_in!r}")
    flat = theta.reshape(-1)
    thetas = [flat]
    for _ in range(depth):
        thetas.append(_moments.layer_maps(thetas[-1], 0.0)[0])
    one_minus = np.zeros_like(flat)
    log_prod = np.zeros_like(flat)  # log Π_{k=l}^{L-1} (1 − θ_k/π), built from l = L down to 0
    for level in range(depth, -1, -1):
        if level < depth:
            with np.errstate(divide="ignore"):  # θ = π: log 0 = −inf, the product is 0 (expm1(−inf) = −1)
                log_prod += np.log1p(-thetas[level] / math.pi)
        c = np.cos(thetas[level])
        # 1 − cos θ_l · P_l = 2 sin²(θ_l/2) + cos θ_l · (1 − P_l)
        one_minus += 2.0 * np.sin(0.5 * thetas[level]) ** 2 - c * np.expm1(log_prod)
    one_minus /= depth + 1
    phi = 2.0 * np.arctan2(np.sqrt(np.clip(one_minus, 0.0, 2.0)), np.sqrt(np.clip(2.0 - one_minus, 0.0, 2.0)))
    phi = phi.reshape(theta.shape)
    return float(phi) if phi.ndim == 0 else phi


def angle_limit() -> float:
    r"""P2 Theorem 3.5: :math:`\varphi \to \arccos(1/4) \approx 75.52°` (radians) as the depth grows, for every
    non-parallel pair (B = 0; slowly, about :math:`\log L / L`)."""
    return math.acos(0.25)


def crossover_angle(depth: int) -> float:
    r"""The input angle :math:`\theta_c(L)` (radians) below which ReLU enlarges gradient angles
    (:math:`\varphi(\theta_{in}, L) > \theta_{in}` exactly for :math:`0 < \theta_{in} < \theta_c`; B = 0, P2 §3).

    The root of :math:`\varphi(\theta, L) = \theta` by Brent's method; 66.8° (L = 1), 67.5° (3), 69.6° (10),
    and :func:`angle_limit` (75.5°) for ``depth = inf``. ``depth = 0`` has no crossover (:math:`\varphi = \theta`).
    """
    if isinstance(depth, float) and math.isinf(depth) and depth > 0:
        return angle_limit()
    depth = check_int(depth, "depth", minimum=1)
    from scipy.optimize import brentq

    return float(brentq(lambda t: gradient_angle_relu(t, depth) - t, 0.5, 2.5, xtol=1e-15, rtol=1e-15))


def kappa_limit(n: int, printed: bool = False) -> float:
    r"""P2 Theorem 4.3: the limit of the NTK condition number as the depth grows (B = 0, unit, pairwise
    non-parallel inputs): :math:`K/(L+1) \to \tfrac34 I + \tfrac14 J`, whose eigenvalues are
    :math:`(n+3)/4` (once) and :math:`3/4`, so

    .. math:: \kappa \to \frac{n+3}{3}.

    P2 prints :math:`(n+4)/3`; that is an arithmetic slip (the top eigenvalue of :math:`\tfrac34 I + \tfrac14 J`
    is :math:`\tfrac34 + \tfrac n4 = (n+3)/4`, not :math:`(n+4)/4`); ``printed=True`` returns the printed value
    for comparison. Measured at L = 10⁴: 1.668, 2.671, 7.684 for n = 2, 5, 20 (paper-notes §5).
    """
    n = check_int(n, "n", minimum=1)
    if not isinstance(printed, bool):
        raise TypeError(f"printed: expected True or False, got {printed!r}")
    return (n + 4) / 3 if printed else (n + 3) / 3


def variance_preserving_scale(bias: float, activation: str = "relu") -> float:
    r"""The variance-preserving layer constant :math:`c_B = 1/M_2(B)`,
    :math:`M_2(B) = E[\mathrm{relu}(u-B)^2] = (1+B^2)\bar\Phi(B) - B\varphi(B)` for :math:`u \sim N(0,1)`
    (paper-notes §5; 2 at B = 0, P2's constant). ``activation="linear"``: :math:`1/(1+B^2)`."""
    bias = check_float(bias, "bias", minimum=0.0)
    return 1.0 / _moments.m2(bias, _check_activation(activation))


def chi1(bias: float) -> float:
    r""":math:`\chi_1(B) = c_B\,\bar\Phi(B)`: the slope of the correlation map :math:`\rho \mapsto c_B J_B(\rho)`
    at :math:`\rho = 1` and the per-layer growth of the NTK diagonal (paper-notes §5). 1 at B = 0 (critical),
    > 1 for B > 0 (chaotic): 1.4718, 2.1059, 3.9437 at B = 0.5, 1, 2."""
    bias = check_float(bias, "bias", minimum=0.0)
    return variance_preserving_scale(bias) * float(ndtr(-bias))


def fixed_point_correlation(bias: float) -> float:
    r"""The stable fixed point :math:`\rho^*(B)` of the correlation map :math:`\rho \mapsto c_B J_B(\rho)` of the
    variance-preserving network (paper-notes §5): 1 at B = 0; 0.4653, 0.1527, 0.0138 at B = 0.5, 1, 2. Solved in the
    angle, :math:`\theta^* = T(\theta^*)` with :math:`T(\theta) = \arccos(c_B J_B(\cos\theta))`, by Brent's method."""
    bias = check_float(bias, "bias", minimum=0.0)
    if bias == 0.0:
        return 1.0
    from scipy.optimize import brentq

    def excess(t: float) -> float:
        return float(_moments.layer_maps(np.array([t]), bias)[0][0]) - t

    theta = brentq(excess, 1e-6, math.pi, xtol=1e-15, rtol=1e-15)
    return math.cos(theta)


def reliable_depth(bias: float, width: int) -> float:
    r"""Depth up to which the infinite-width kernel describes a width-m network with threshold B (paper-notes §5):
    finite-width fluctuations of size :math:`\sqrt{2/m}` grow by :math:`\chi_1` per layer, so

    .. math:: L^* \approx \frac{\log(m/2)}{2\log\chi_1(B)}

    (≈ 4 at B = 1, m = 512); ``inf`` at B = 0 (:math:`\chi_1 = 1`). An order of magnitude (derived, up to
    constants), not a sharp threshold."""
    bias = check_float(bias, "bias", minimum=0.0)
    width = check_int(width, "width", minimum=1)
    c = chi1(bias)
    if c <= 1.0 or bias == 0.0:
        return math.inf
    return math.log(width / 2) / (2 * math.log(c))


def _check_activation(activation: Any) -> str:
    if activation not in _moments.ACTIVATIONS:
        raise ValueError(f"activation: expected one of {', '.join(map(repr, _moments.ACTIVATIONS))}, "
                         f"got {activation!r}")
    return activation
