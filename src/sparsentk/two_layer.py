r"""A two-layer network with both layers trainable: P3's smooth model and, with ReLU and a bias, P1's sparse one.

.. math::

    f(x) = V\,\varphi(Wx - b), \qquad W \in \mathbb{R}^{d_1\times d_0},\; V \in \mathbb{R}^{d_2\times d_1},\;
    W_{rk} \sim N(0, \omega_1^2),\; V_{kr} \sim N(0, \omega_2^2),\; b_r = B,

(Song et al., arXiv 2111.01875, Section 2 — here P3; paper-notes §6). The loss is the project's
:math:`L = \tfrac12\|F - Y\|_F^2` with :math:`F_{ik} = f_k(x_i)`. P3 writes :math:`\|F - Y\|_F^2` without the
:math:`\tfrac12`: GD on P3's loss with step :math:`\eta` is GD on ours with step :math:`2\eta`.

Exact empirical NTK over the trained parameters, with :math:`A = \varphi(XW^\top - b)` and
:math:`D = \varphi'(XW^\top - b)` (both :math:`n \times d_1`, a row per input) and one output:

.. math::

    K = \tau_V\, A A^\top + \big(\tau_W\, X X^\top + \tau_b\big) \odot \big(D\,\mathrm{diag}(v^2)\,D^\top\big),

:math:`\tau` being 1 for a trained group and 0 otherwise (P3 trains :math:`W` and :math:`V`, no bias; P1 trains
:math:`W` and :math:`b` with a fixed :math:`\pm m^{-1/2}` output layer).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from sparsentk import _two_layer_kernels as _kernels
from sparsentk._gram import gram
from sparsentk._validate import check_choice, check_dtype, check_float, check_int, check_matrix

ACTIVATIONS = ("gelu", "softplus", "tanh", "relu")
TRAIN = ("both", "first", "last")
_CODES = {name: k for k, name in enumerate(ACTIVATIONS)}

#: Bounds on |φ'| and |φ''| over the real line (ReLU has no second derivative): the constants of the
#: smoothness term of P3's certificate.
DERIVATIVE_BOUNDS = {
    "gelu": (1.0 - 0.5 * math.erfc(1.0) + math.sqrt(2.0) * math.exp(-1.0) / math.sqrt(2 * math.pi),  # at z = √2
             2.0 / math.sqrt(2 * math.pi)),  # |φ''| is largest at 0
    "softplus": (1.0, 0.25),
    "tanh": (1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    "relu": (1.0, math.inf),
}


def _streams(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for W and V, so that a narrower network is a prefix of a wider one."""
    ss = np.random.SeedSequence(seed)
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


class TwoLayer:
    r"""Two-layer network :math:`f(x) = V\varphi(Wx - b)` with both layers (or one) trained by GD.

    .. math::

        W_{rk} \sim N(0, \omega_1^2),\quad V_{kr} \sim N(0, \omega_2^2),\quad b_r = B,
        \qquad \omega_2 = \frac{1}{\omega_1\sqrt{d_0 d_1}} \text{ by default (P3: } \omega_1\omega_2 = 1/\sqrt{d_0d_1}).

    **Nested initializations**: ``W`` and ``V`` come from two independent streams of ``seed``, drawn neuron by
    neuron, so the standard-normal draws of width ``d1`` are the first ``d1`` neurons of any wider network with the
    same seed (only the scales ``omega1``, ``omega2`` differ).

    Parameters
    ----------
    dim : int
        Input dimension :math:`d_0`.
    width : int
        Hidden width :math:`d_1`.
    out : int
        Outputs :math:`d_2`.
    activation : {"gelu", "softplus", "tanh", "relu"}
        GeLU :math:`z\Phi(z)` (P3's choice), shifted softplus :math:`\log(1 + e^z) - \log 2`, tanh, or ReLU (outside
        P3's theory; with ``bias`` and ``train_bias`` it is P1's sparse network, see :meth:`from_parameters`).
    bias : float
        Initial value :math:`B` of every threshold :math:`b_r` (the network computes :math:`\varphi(w_r\cdot x - b_r)`).
    omega1, omega2 : float
        Initial scales; ``omega2=None`` sets :math:`\omega_2 = 1/(\omega_1\sqrt{d_0 d_1})`.
    train : {"both", "first", "last"}
        Which layers GD trains and the NTK covers.
    train_bias : bool
        Train the thresholds ``b`` too (off by default: P3's model has no bias).
    seed : int or None
    dtype : float32 or float64

    Attributes
    ----------
    W : ndarray, shape (width, dim)
    V : ndarray, shape (out, width)
    b : ndarray, shape (width,)

    References
    ----------
    Song, Ramezani-Kebrya, Pethick, Eftekhari, Cevher, *Subquadratic Overparameterization for Shallow Neural
    Networks*, arXiv 2111.01875 (NeurIPS 2021).

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> small, large = snt.TwoLayer(3, 4, seed=0), snt.TwoLayer(3, 16, seed=0)
    >>> bool(np.allclose(small.W, large.W[:4]))
    True
    """

    def __init__(
        self,
        dim: int,
        width: int,
        out: int = 1,
        *,
        activation: str = "gelu",
        bias: float = 0.0,
        omega1: float = 1.0,
        omega2: float | None = None,
        train: str = "both",
        train_bias: bool = False,
        seed: int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.dim = check_int(dim, "dim", minimum=1)
        self.width = check_int(width, "width", minimum=1)
        self.out = check_int(out, "out", minimum=1)
        self.omega1 = check_float(omega1, "omega1", positive=True)
        default = 1.0 / (self.omega1 * math.sqrt(self.dim * self.width))
        self.omega2 = default if omega2 is None else check_float(omega2, "omega2", positive=True)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self._settings(activation, bias, train, train_bias, dtype)
        gen_w, gen_v = _streams(seed)
        self.W = np.ascontiguousarray(self.omega1 * gen_w.standard_normal((self.width, self.dim)), dtype=self.dtype)
        self.V = np.ascontiguousarray((self.omega2 * gen_v.standard_normal((self.width, self.out))).T,
                                      dtype=self.dtype)
        self.b = np.full(self.width, self.bias, dtype=self.dtype)

    def _settings(self, activation: str, bias: float, train: str, train_bias: bool, dtype: Any) -> None:
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.bias = check_float(bias, "bias")
        self.train = check_choice(train, "train", TRAIN)
        if not isinstance(train_bias, bool | np.bool_):
            raise TypeError(f"train_bias: expected True or False, got {train_bias!r}")
        self.train_bias = bool(train_bias)
        if self.train_bias and self.train == "last":
            raise ValueError("train_bias: the thresholds belong to the first layer, which train='last' keeps fixed")
        self.dtype = check_dtype(dtype)

    @classmethod
    def from_parameters(
        cls,
        W: Any,
        V: Any,
        b: Any = 0.0,
        *,
        activation: str = "gelu",
        train: str = "both",
        train_bias: bool = False,
        dtype: Any = np.float64,
    ) -> TwoLayer:
        r"""A network with the given parameters (copied).

        ``V`` may be a vector (one output). ``b`` a number (every threshold) or a vector. P1's sparse network
        :math:`m^{-1/2}\sum_r a_r \mathrm{relu}(w_r\cdot x - B)` with trained ``W`` and ``b`` is
        ``TwoLayer.from_parameters(W, a / sqrt(m), B, activation="relu", train="first", train_bias=True)``.
        """
        W = check_matrix(W, "W", dtype=dtype)
        V_arr = np.asarray(V, dtype=np.float64)
        V_arr = check_matrix(V_arr[None, :] if V_arr.ndim == 1 else V_arr, "V", dim=W.shape[0], dtype=dtype)
        b_arr = np.asarray(b, dtype=np.float64)
        if b_arr.ndim == 0:
            b_arr = np.full(W.shape[0], float(b_arr))
        if b_arr.shape != (W.shape[0],) or not np.isfinite(b_arr).all():
            raise ValueError(f"b: expected a finite number or a vector of length {W.shape[0]}, got shape "
                             f"{b_arr.shape}")
        net = object.__new__(cls)
        net.width, net.dim = (int(s) for s in W.shape)
        net.out = int(V_arr.shape[0])
        net._settings(activation, float(b_arr[0]), train, train_bias, dtype)
        net.seed = None
        net.omega1 = float(np.sqrt(np.mean(W.astype(np.float64) ** 2)))
        net.omega2 = float(np.sqrt(np.mean(V_arr.astype(np.float64) ** 2)))
        net.W, net.V = W.copy(), V_arr.copy()
        net.b = b_arr.astype(net.dtype)
        return net

    # ------------------------------------------------------------------ evaluation
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        return check_matrix(X, name, dim=self.dim, dtype=self.dtype)

    def _check_Y(self, Y: Any, n: int) -> np.ndarray:
        """Targets as an (n, out) array (a vector is accepted when out == 1)."""
        arr = np.asarray(Y) if not isinstance(Y, np.ndarray) else Y
        if arr.ndim == 1 and self.out == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape != (n, self.out):
            want = f"({n},) or ({n}, 1)" if self.out == 1 else f"({n}, {self.out})"
            raise ValueError(f"y: expected shape {want} (one row per row of X, one column per output), got shape "
                             f"{np.shape(Y)}")
        return check_matrix(arr, "y", dtype=self.dtype)

    def _forward(self, X: np.ndarray, W: np.ndarray | None = None, b: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(A, D)``: φ and φ' of the pre-activations :math:`XW^\\top - b` (n × width each; transposed views of the
        neuron-major arrays the compiled pass fills)."""
        W = self.W if W is None else np.ascontiguousarray(W, dtype=self.dtype)
        b = self.b if b is None else np.ascontiguousarray(b, dtype=self.dtype)
        At = np.empty((W.shape[0], X.shape[0]), dtype=self.dtype)
        Dt = np.empty_like(At)
        fpart = np.empty((_kernels.blocks(W.shape[0]), X.shape[0]))
        _kernels.gd_pass(np.ascontiguousarray(X.T, dtype=np.float64), W, np.zeros(W.shape[0], dtype=self.dtype),
                         b, At, Dt, fpart, _CODES[self.activation])
        return At.T, Dt.T

    def features(self, X: Any) -> np.ndarray:
        r"""The random-features matrix :math:`A = \varphi(XW^\top - b)`, n × width (P3's :math:`\varphi(W_0X)^\top`)."""
        return self._forward(self._check_X(X))[0]

    def predict(self, X: Any) -> np.ndarray:
        """Outputs :math:`f(x_i)`: shape (n,) with one output, else (n, out)."""
        A = self.features(X)
        F = A @ self.V.T
        return F[:, 0] if self.out == 1 else F

    def gradients(self, X: Any, y: Any) -> dict[str, np.ndarray]:
        r"""Gradients of :math:`L = \tfrac12\|F - Y\|_F^2` with respect to the trained parameters.

        .. math::

            E = F - Y,\quad \nabla_V L = E^\top A,\quad G = (E V)\odot D,\quad \nabla_W L = G^\top X,\quad
            \nabla_b L = -G^\top \mathbf 1 .

        Returns a dict with keys among ``"W"``, ``"V"``, ``"b"`` (the trained ones).
        """
        X = self._check_X(X)
        Y = self._check_Y(y, X.shape[0])
        A, D = self._forward(X)
        E = A @ self.V.T - Y
        grads: dict[str, np.ndarray] = {}
        if self.train in ("both", "last"):
            grads["V"] = E.T @ A
        if self.train in ("both", "first"):
            G = (E @ self.V) * D
            grads["W"] = G.T @ X
            if self.train_bias:
                grads["b"] = -G.sum(axis=0)
        return grads

    # ------------------------------------------------------------------ kernels
    def ntk(self, X: Any, Y: Any = None, *, full: bool = False) -> np.ndarray:
        r"""Exact empirical NTK over the trained parameters (float64).

        .. math::

            \Theta_{(i,k),(j,l)} = \delta_{kl}\,\tau_V\,a_i\cdot a_j
              + (\tau_W\, x_i\cdot x_j + \tau_b) \sum_r V_{kr}V_{lr}\,D_{ir}D_{jr}.

        With ``full=True`` the (n·out) × (n'·out) kernel, index ``i*out + k``; otherwise (and always for one
        output) the n × n' kernel :math:`\frac{1}{d_2}\sum_k \Theta_{(i,k),(j,k)}`, the mean of the output-diagonal
        blocks — for i.i.d. output weights this is the scalar kernel :math:`\Theta \approx K\otimes I` describes.
        """
        X = self._check_X(X)
        same = Y is None
        Yx = X if same else self._check_X(Y, "Y")
        A, D = (np.asarray(t, dtype=np.float64) for t in self._forward(X))
        Ay, Dy = (A, D) if same else (np.asarray(t, dtype=np.float64) for t in self._forward(Yx))
        tau_v = 1.0 if self.train in ("both", "last") else 0.0
        tau_w = 1.0 if self.train in ("both", "first") else 0.0
        tau_b = 1.0 if self.train_bias else 0.0
        V = self.V.astype(np.float64)
        n, n2, out = A.shape[0], Ay.shape[0], self.out
        X64 = X.astype(np.float64)
        G = (tau_w * gram(X64, None if same else Yx.astype(np.float64)) + tau_b) if tau_w else None
        base = tau_v * gram(A, None if same else Ay) if tau_v else np.zeros((n, n2))
        if not full or out == 1:
            K = base.copy()
            if G is not None:
                weights = np.mean(V**2, axis=0)
                K += G * ((D * weights) @ Dy.T)
            return K
        K = np.zeros((n, out, n2, out))
        for k in range(out):
            K[:, k, :, k] += base
            if G is None:
                continue
            for lo in range(out):
                K[:, k, :, lo] += G * ((D * (V[k] * V[lo])) @ Dy.T)
        return K.reshape(n * out, n2 * out)

    def _empirical_ntk(self, X: Any, Y: Any = None, layers: Any = None) -> np.ndarray:
        """The kernel :func:`sparsentk.empirical_ntk` returns for this model: :meth:`ntk` with ``full=False``."""
        if layers is not None:
            raise ValueError(f"layers: a TwoLayer chooses its trained layers with train='both'|'first'|'last', got "
                             f"layers={layers!r}")
        return self.ntk(X, Y)

    def stable_lr(self, X: Any, c: float = 0.5) -> float:
        r"""The step :math:`\eta = c/\lambda_{\max}(\Theta_0)` of the full NTK at the current parameters.

        For the loss :math:`\tfrac12\|F - Y\|^2` linearized GD is stable for :math:`c < 2`; P3's loss (no
        :math:`\tfrac12`) takes half this step for the same iterates.
        """
        c = check_float(c, "c", positive=True)
        K = self.ntk(X, full=True)
        top = float(scipy.linalg.eigvalsh(K, subset_by_index=[K.shape[0] - 1, K.shape[0] - 1])[0])
        if not top > 0:
            raise ValueError("X: the NTK at these parameters is zero (no trained parameter moves the output)")
        return c / top

    @property
    def derivative_bounds(self) -> tuple[float, float]:
        r""":math:`(\sup|\varphi'|, \sup|\varphi''|)` of the activation (``inf`` for ReLU's second derivative)."""
        return DERIVATIVE_BOUNDS[self.activation]

    # ------------------------------------------------------------------ housekeeping
    def parameters(self) -> int:
        """Number of trained parameters."""
        count = 0
        if self.train in ("both", "first"):
            count += self.width * self.dim + (self.width if self.train_bias else 0)
        if self.train in ("both", "last"):
            count += self.out * self.width
        return count

    def copy(self) -> TwoLayer:
        """An independent copy."""
        new = object.__new__(TwoLayer)
        new.__dict__.update(self.__dict__)
        new.W, new.V, new.b = self.W.copy(), self.V.copy(), self.b.copy()
        return new

    def _gd_setup(self, X: Any, y: Any, method: str, steps: int) -> tuple[np.ndarray, np.ndarray, str]:
        """For :func:`sparsentk.train`: validated ``X``, ``Y`` (n, out) and the method; remembers ``steps`` for the
        engine's kernel checkpoints."""
        if method not in ("dense", "auto"):
            raise ValueError(f"method: TwoLayer networks train with method='dense' (or 'auto'), got {method!r}")
        X = self._check_X(X)
        Y = self._check_Y(y, X.shape[0])
        self._gd_steps = steps
        return X, Y, "dense"

    def _gd_engine(self, X: np.ndarray, Y: np.ndarray) -> _TwoLayerEngine:
        """The GD engine :func:`sparsentk.train` runs (after :meth:`_gd_setup`)."""
        return _TwoLayerEngine(self, X, Y, getattr(self, "_gd_steps", 0))

    def __repr__(self) -> str:
        return (f"TwoLayer(dim={self.dim}, width={self.width}, out={self.out}, activation={self.activation!r}, "
                f"bias={self.bias}, omega1={self.omega1:.6g}, omega2={self.omega2:.6g}, train={self.train!r}, "
                f"train_bias={self.train_bias}, seed={self.seed}, dtype={self.dtype.name})")


def kernel_checkpoints(steps: int) -> list[int]:
    """The iterates at which training records the kernel's relative change: 0, the powers of 4, and ``steps``."""
    points = {0, steps}
    k = 1
    while k < steps:
        points.add(k)
        k *= 4
    return sorted(points)


class _TwoLayerEngine:
    r"""Full-batch GD on a :class:`TwoLayer` (the ``_Engine`` protocol of :func:`sparsentk.train`).

    With one output and the first layer trained, a step is one compiled pass over the neurons
    (:func:`sparsentk._two_layer_kernels.gd_pass`): per neuron, the gradient from its rows of :math:`A` and
    :math:`D` and the residual, the update of :math:`w_r, b_r, v_r`, and φ, φ' and the outputs at the new parameters,
    while those rows are in cache (the activations are branch-free SIMD code, GeLU within a few ulps). Otherwise
    (several outputs) the same pass computes the activations and the gradients are products with them; with
    ``train="last"`` the features are fixed and computed once. The history's ``stats``: ``relative_loss``
    :math:`\|F - Y\|_F^2/\|Y\|_F^2`, ``movement_W`` :math:`\|W_t - W_0\|_F/\|W_0\|_F`, ``movement_V`` (likewise) and,
    at :func:`kernel_checkpoints`, ``kernel_change`` :math:`\|K_t - K_0\|_F/\|K_0\|_F` of :meth:`TwoLayer.ntk`.
    """

    def __init__(self, net: TwoLayer, X: np.ndarray, Y: np.ndarray, steps: int) -> None:
        self.net, self.X, self.Y = net, X, Y.astype(np.float64)
        self.first = net.train in ("both", "first")
        self.last = net.train in ("both", "last")
        self.fused = self.first and net.out == 1
        self.code = _CODES[net.activation]
        n = X.shape[0]
        self.XT = np.ascontiguousarray(X.T, dtype=np.float64)
        self.At = np.empty((net.width, n), dtype=net.dtype)
        self.Dt = np.empty_like(self.At)
        self.fpart = np.empty((_kernels.blocks(net.width), n))
        self.EX = np.empty((X.shape[1] + 1, n)) if self.fused else None
        self.relu = net.activation == "relu"
        self.D0: np.ndarray | None = None
        self.cpart = np.empty((self.fpart.shape[0], n)) if self.relu else None
        self.flips = np.zeros(self.fpart.shape[0], dtype=np.int64)
        self.W0, self.V0, self.b0 = net.W.copy(), net.V.copy(), net.b.copy()
        self.prev = (net.W.copy(), net.V.copy(), net.b.copy())
        self.y_norm2 = float(np.sum(self.Y**2))
        self.w0_norm = float(np.linalg.norm(self.W0)) or 1.0
        self.v0_norm = float(np.linalg.norm(self.V0)) or 1.0
        self.checkpoints = set(kernel_checkpoints(steps))
        self.t = 0
        self.K0: np.ndarray | None = None
        self.F: np.ndarray | None = None  # outputs at the current parameters (None: recompute)
        self.E = np.zeros_like(self.Y)

    def _pass(self, step: float | None = None) -> None:
        """The compiled pass: activations (and ReLU activity) at the current parameters, or, with ``step``, one GD
        step first (fused engine only); sets ``F`` with one output."""
        net = self.net
        kw: dict[str, Any] = {}
        if step is not None:
            e = self.E[:, 0]
            np.multiply(self.XT, e, out=self.EX[:-1])
            self.EX[-1] = e
            kw.update(EX=self.EX, e=e, lr=step, train_w=True, train_v=self.last, train_b=net.train_bias)
        counting = self.relu and self.D0 is not None
        if counting:
            kw.update(D0=self.D0, cpart=self.cpart, flips=self.flips)
        v = net.V[0] if net.out == 1 else np.zeros(net.width, dtype=net.dtype)
        _kernels.gd_pass(self.XT, net.W, v, net.b, self.At, self.Dt, self.fpart, self.code, **kw)
        if self.relu and not counting:  # the activity pattern at initialization, against which flips count
            self.D0 = self.Dt > 0
            self.cpart[:] = 0.0
            self.cpart[0] = self.D0.sum(axis=0)
            self.flips[:] = 0
        self.F = self.fpart.sum(axis=0)[:, None] if net.out == 1 else None

    @np.errstate(over="ignore", invalid="ignore")
    def evaluate(self) -> dict[str, float]:
        net = self.net
        if self.F is None:
            if self.first or self.t == 0:
                self._pass()
            if self.F is None:
                self.F = (self.At.T @ net.V.T).astype(np.float64)
        self.E = self.F - self.Y
        sq = float(np.vdot(self.E, self.E))
        values: dict[str, float] = {"loss": 0.5 * sq,
                                    "relative_loss": sq / self.y_norm2 if self.y_norm2 > 0 else math.nan}
        if self.relu:
            counts = self.cpart.sum(axis=0)
            values.update(active_mean=float(counts.mean()), active_max=float(counts.max()),
                          flips=int(self.flips.sum()))
        else:
            values.update(active_mean=math.nan, active_max=math.nan, flips=0)
        dW = net.W - self.W0
        rows = np.einsum("ij,ij->i", dW, dW)
        dV = net.V - self.V0
        values["movement_w"] = math.sqrt(rows.max())
        values["movement_b"] = float(np.abs(net.b - self.b0).max())
        values["movement_W"] = math.sqrt(rows.sum()) / self.w0_norm
        values["movement_V"] = math.sqrt(np.vdot(dV, dV)) / self.v0_norm
        if self.t in self.checkpoints and math.isfinite(sq):
            K = net.ntk(self.X)
            if self.K0 is None:
                self.K0 = K
                self.k0_norm = float(np.linalg.norm(K)) or 1.0
            values["kernel_change"] = float(np.linalg.norm(K - self.K0)) / self.k0_norm
        return values

    @np.errstate(over="ignore", invalid="ignore")
    def step(self, lr: float) -> None:
        net = self.net
        for saved, current in zip(self.prev, (net.W, net.V, net.b), strict=True):
            np.copyto(saved, current)
        if self.fused:
            self._pass(lr)  # the update and the forward pass at the new parameters
        else:
            A = self.At.T
            if self.first:
                G = self.E @ net.V.astype(np.float64)
                G *= self.Dt.T
                gW = G.T @ self.XT.T
                gb = G.sum(axis=0)
            if self.last:
                net.V -= lr * (self.E.T.astype(A.dtype) @ A)
            if self.first:
                net.W -= lr * gW
                if net.train_bias:
                    net.b += lr * gb
            self.F = None
        self.t += 1

    def revert(self) -> None:
        for saved, current in zip(self.prev, (self.net.W, self.net.V, self.net.b), strict=True):
            np.copyto(current, saved)
        self.F = None

    def close(self) -> None:
        pass

    def restart(self, W: np.ndarray, b: np.ndarray) -> None:
        raise ValueError("resume: checkpointed training is available for ShallowReLU networks only")
