r"""A deep fully connected network with a constant threshold in every hidden layer (paper-notes §5), in NumPy.

.. math::

    u^{(1)} = W^{(1)} x - b^{(1)},\qquad
    u^{(l)} = \sqrt{c_B/m}\;W^{(l)}\,\sigma(u^{(l-1)}) - b^{(l)}\ (2 \le l \le L),\qquad
    f(x) = \sqrt{c_B/m}\;w\cdot\sigma(u^{(L)}),

:math:`\sigma` = relu (or the identity for ``activation="linear"``), all weights N(0, 1), biases starting at B,
:math:`c_B = 1/M_2(B)` (variance-preserving on unit inputs; P2's :math:`\sqrt{2/m}` network at B = 0, P2 =
arXiv 2305.08813). Its infinite-width NTK is :func:`sparsentk.deep_ntk`; its exact finite-width NTK is
:func:`sparsentk.empirical_ntk`, computed without a Jacobian from forward activations :math:`H_{l-1}` and backward
signals :math:`\Delta_l = \partial f/\partial u^{(l)}`:

.. math::

    \Theta = \sum_{l \in \text{trained}} (\Delta_l\Delta_l^\top) \odot (s_l H_{l-1}H_{l-1}^\top + \beta^2\,[l \le L]),

with :math:`s_1 = 1`, :math:`s_l = c_B/m` for :math:`l \ge 2`, :math:`\Delta_{L+1} = 1` (the output layer),
:math:`\beta = 1` when the biases are trained. ``depth = 0`` is the linear model :math:`f = w\cdot x`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparsentk import _gram, _moments
from sparsentk._io import atomic_save_npz
from sparsentk._memory import require_memory
from sparsentk._validate import check_choice, check_dtype, check_float, check_int, check_matrix

_FORMAT = "sparsentk.DeepReLU/1"
#: Rows per block in forward passes (bounded workspace at any n).
ROW_BLOCK = 4096


class DeepReLU:
    r"""Depth-``L`` network of width ``m`` with a constant threshold ``B`` in every hidden layer.

    .. math::

        u^{(1)} = W^{(1)} x - b^{(1)},\quad
        u^{(l)} = \sqrt{c_B/m}\,W^{(l)}\mathrm{relu}(u^{(l-1)}) - b^{(l)},\quad
        f(x) = \sqrt{c_B/m}\;w\cdot\mathrm{relu}(u^{(L)})

    (paper-notes §5; P2 = arXiv 2305.08813 at B = 0 up to its output constant :math:`c_{out} = 2`, ours
    :math:`c_B`). The ReLU derivative at 0 is taken as 0 (PyTorch's convention).

    Parameters
    ----------
    dim : int
        Input dimension d.
    width : int
        Width m of every hidden layer.
    depth : int
        Number of hidden layers L ≥ 0 (0: :math:`f = w\cdot x`).
    bias : float
        Initial threshold B ≥ 0 of every hidden neuron.
    activation : {"relu", "linear"}
        ``"linear"``: the identity in place of the ReLU (:math:`c_B = 1/(1+B^2)`).
    train_bias : bool
        Whether the biases are trainable (enter the NTK and :meth:`to_torch`'s parameters).
    seed : int or None
        Seed of the NumPy generator; weights are drawn layer by layer in float64 (same numbers in float32).
    dtype : float32 or float64

    Attributes
    ----------
    weights : list of ndarray
        ``W1`` (m × d), ``W2 … WL`` (m × m), then the output vector ``w`` (m,) (``depth = 0``: (d,)).
    biases : list of ndarray
        ``b1 … bL`` (m,).
    scale : float
        :math:`c_B`.

    Notes
    -----
    Layers are numbered 1 … L for the hidden layers and L + 1 for the output. ``snt.empirical_ntk(net, X, Y=None,
    layers=None)`` is the exact NTK over the trainable parameters of the chosen layers (default all; ``layers=[1]``
    is P2's Theorem 4.2, first layer only); the biases count when ``train_bias``. Its infinite-width counterpart is
    ``snt.deep_ntk(X, depth, bias, layers=..., train_bias=...)`` on unit-norm rows (any norms at B = 0).

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> net = snt.DeepReLU(dim=3, width=16, depth=2, bias=0.5, seed=0)
    >>> net.predict(np.eye(3)).shape
    (3,)
    """

    def __init__(
        self,
        dim: int,
        width: int,
        depth: int,
        bias: float = 0.0,
        *,
        activation: str = "relu",
        train_bias: bool = True,
        seed: int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.dim = check_int(dim, "dim", minimum=1)
        self.width = check_int(width, "width", minimum=1)
        self.depth = check_int(depth, "depth", minimum=0)
        self.bias = check_float(bias, "bias", minimum=0.0)
        self.activation = check_choice(activation, "activation", _moments.ACTIVATIONS)
        if not isinstance(train_bias, bool | np.bool_):
            raise TypeError(f"train_bias: expected True or False, got {train_bias!r}")
        self.train_bias = bool(train_bias)
        self.dtype = check_dtype(dtype)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.scale = 1.0 / _moments.m2(self.bias, self.activation)
        rng = np.random.default_rng(seed)
        shapes = self._shapes()
        self.weights = [np.ascontiguousarray(rng.standard_normal(s), dtype=self.dtype) for s in shapes]
        self.biases = [np.full(self.width, self.bias, dtype=self.dtype) for _ in range(self.depth)]

    def _shapes(self) -> list[tuple[int, ...]]:
        if self.depth == 0:
            return [(self.dim,)]
        return [(self.width, self.dim)] + [(self.width, self.width)] * (self.depth - 1) + [(self.width,)]

    # ------------------------------------------------------------------ evaluation
    def _act(self, u: np.ndarray) -> np.ndarray:
        return np.maximum(u, 0.0) if self.activation == "relu" else u

    def _dact(self, u: np.ndarray) -> np.ndarray:
        return (u > 0).astype(np.float64) if self.activation == "relu" else np.ones_like(u, dtype=np.float64)

    def _layer_scale(self, layer: int) -> float:
        """Multiplier of layer ``layer``'s weights (1-based; ``depth + 1`` is the output): 1 for the first."""
        return 1.0 if layer == 1 else float(np.sqrt(self.scale / self.width))

    def _preactivations(self, X: np.ndarray, dtype: Any) -> list[np.ndarray]:
        """Hidden pre-activations u¹ … uᴸ (n × m each) in ``dtype``."""
        us = []
        h = X.astype(dtype, copy=False)
        for layer in range(1, self.depth + 1):
            W = self.weights[layer - 1].astype(dtype, copy=False)
            u = h @ W.T
            if layer > 1:
                u *= self._layer_scale(layer)
            u -= self.biases[layer - 1].astype(dtype, copy=False)
            us.append(u)
            h = self._act(u)
        return us

    def _output(self, h: np.ndarray) -> np.ndarray:
        return (h @ self.weights[-1].astype(h.dtype, copy=False)) * self._layer_scale(self.depth + 1)

    def predict(self, X: Any) -> np.ndarray:
        r"""Network outputs :math:`f(x_i)` for the rows of ``X`` (computed in row blocks)."""
        X = check_matrix(X, "X", dim=self.dim, dtype=self.dtype)
        out = np.empty(X.shape[0], dtype=self.dtype)
        for lo, hi in _gram.panels(X.shape[0], ROW_BLOCK):
            us = self._preactivations(X[lo:hi], self.dtype)
            out[lo:hi] = self._output(self._act(us[-1]) if us else X[lo:hi])
        return out

    def _empirical_ntk(self, X: np.ndarray, Y: np.ndarray | None = None, *, layers: Any = None) -> np.ndarray:
        r"""Exact finite-width NTK over the trained parameters (see the module docstring); float64, exactly
        symmetric when ``Y`` is None. ``layers``: 1-based trained layers (``depth + 1`` = output), default all."""
        mask = _trained_layers(self.depth, layers)
        beta2 = 1.0 if self.train_bias else 0.0
        dt = np.float64
        n_all = X.shape[0] + (0 if Y is None else Y.shape[0])
        require_memory(8.0 * (n_all * self.width * (self.depth + 2) + X.shape[0] * (X if Y is None else Y).shape[0]),
                       "X", f"the finite NTK of {n_all} inputs (pre-activations of {self.depth} layers kept)")
        ux = self._preactivations(X, dt)
        uy = None if Y is None else self._preactivations(Y, dt)
        n, n2 = X.shape[0], (X if Y is None else Y).shape[0]
        K = np.zeros((n, n2))

        def inputs(us: list[np.ndarray], layer: int, A: np.ndarray) -> np.ndarray:
            return A if layer == 1 else self._act(us[layer - 2])

        # output layer: Δ = 1
        L = self.depth
        if mask[L]:
            hx = inputs(ux, L + 1, X)
            hy = None if Y is None else inputs(uy, L + 1, Y)
            s = self._layer_scale(L + 1) ** 2
            _gram.accumulate_hadamard(K, np.ones((n, 1)), hx, s, 0.0,
                                      None if Y is None else np.ones((n2, 1)), hy)
        if L > 0:
            c = self._layer_scale(L + 1)
            dx = c * self.weights[-1][None, :].astype(dt) * self._dact(ux[-1])
            dy = None if Y is None else c * self.weights[-1][None, :].astype(dt) * self._dact(uy[-1])
            for layer in range(L, 0, -1):
                if mask[layer - 1]:
                    hx = inputs(ux, layer, X)
                    hy = None if Y is None else inputs(uy, layer, Y)
                    _gram.accumulate_hadamard(K, dx, hx, self._layer_scale(layer) ** 2, beta2, dy, hy)
                if layer > 1 and mask[: layer - 1].any():
                    W = self.weights[layer - 1].astype(dt, copy=False) * self._layer_scale(layer)
                    dx = (dx @ W) * self._dact(ux[layer - 2])
                    if Y is not None:
                        dy = (dy @ W) * self._dact(uy[layer - 2])
        if Y is None:
            _gram.mirror_upper(K)
        return K

    # ------------------------------------------------------------------ PyTorch
    def to_torch(self, device: Any = None) -> Any:
        """An equivalent ``torch.nn.Module`` (same parameters and forward; dtype kept), on ``device`` (default CPU).

        Parameters are ``weights.0 …`` and ``biases.0 …``; the biases have ``requires_grad = train_bias``.
        """
        import torch

        cls = _torch_class()
        module = cls(self)
        return module.to(torch.device("cpu") if device is None else torch.device(device))

    # ------------------------------------------------------------------ housekeeping
    def copy(self) -> DeepReLU:
        """An independent copy with the same parameters."""
        new = object.__new__(DeepReLU)
        new.__dict__.update(self.__dict__)
        new.weights = [w.copy() for w in self.weights]
        new.biases = [b.copy() for b in self.biases]
        return new

    def save(self, path: str | os.PathLike) -> None:
        """Save parameters and settings to an ``.npz`` file (no pickle), atomically."""
        arrays = {f"weight{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"bias{i}": b for i, b in enumerate(self.biases)})
        atomic_save_npz(
            path,
            format=np.array(_FORMAT),
            dim=np.array(self.dim),
            width=np.array(self.width),
            depth=np.array(self.depth),
            bias=np.array(self.bias),
            activation=np.array(self.activation),
            train_bias=np.array(self.train_bias),
            seed=np.array(-1 if self.seed is None else self.seed),
            **arrays,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeepReLU:
        """Load a network written by :meth:`save` (every field validated; no pickle)."""
        where = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                fields = {name: data[name] for name in data.files}
        except (OSError, EOFError, ValueError) as err:
            raise ValueError(f"path: cannot read a DeepReLU from {where!r}: {err}") from err
        if "format" not in fields or str(fields["format"]) != _FORMAT:
            raise ValueError(f"path: {where!r} is not a sparsentk DeepReLU file")
        try:
            net = cls(
                int(fields["dim"]), int(fields["width"]), int(fields["depth"]), float(fields["bias"]),
                activation=str(fields["activation"]), train_bias=bool(fields["train_bias"]), seed=None,
                dtype=fields["weight0"].dtype,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"path: malformed DeepReLU file {where!r}: {err}") from err
        seed = int(fields["seed"])
        net.seed = None if seed < 0 else seed
        for kind, expected in (("weight", net._shapes()), ("bias", [(net.width,)] * net.depth)):
            names = sorted((k for k in fields if k.startswith(kind) and k[len(kind):].isdigit()),
                           key=lambda k: int(k[len(kind):]))
            if len(names) != len(expected):
                raise ValueError(f"path: malformed DeepReLU file {where!r}: {len(names)} {kind} arrays, "
                                 f"expected {len(expected)}")
            arrays = []
            for name, shape in zip(names, expected, strict=True):
                a = fields[name]
                if a.shape != shape or a.dtype != net.dtype or not np.all(np.isfinite(a)):
                    raise ValueError(f"path: malformed DeepReLU file {where!r}: {name} has shape {a.shape}, dtype "
                                     f"{a.dtype} (expected {shape}, {net.dtype}, finite)")
                arrays.append(np.ascontiguousarray(a))
            if kind == "weight":
                net.weights = arrays
            else:
                net.biases = arrays
        return net

    def __repr__(self) -> str:
        return (f"DeepReLU(dim={self.dim}, width={self.width}, depth={self.depth}, bias={self.bias}, "
                f"activation={self.activation!r}, train_bias={self.train_bias}, seed={self.seed}, "
                f"dtype={self.dtype.name})")


def _trained_layers(depth: int, layers: Any) -> np.ndarray:
    mask = np.zeros(depth + 1, dtype=bool)
    if layers is None:
        mask[:] = True
        return mask
    if isinstance(layers, int | np.integer):
        layers = [layers]
    if not isinstance(layers, Sequence | np.ndarray):
        raise TypeError(f"layers: expected a sequence of layer numbers in 1..{depth + 1}, got {layers!r}")
    chosen = [check_int(v, "layers") for v in layers]
    if not chosen or min(chosen) < 1 or max(chosen) > depth + 1:
        raise ValueError(f"layers: expected layer numbers in 1..{depth + 1} (depth + 1 is the output), "
                         f"got {list(layers)!r}")
    mask[[v - 1 for v in chosen]] = True
    return mask


@functools.lru_cache(maxsize=1)
def _torch_class() -> type:
    import torch

    class TorchDeepReLU(torch.nn.Module):
        """PyTorch twin of :class:`sparsentk.DeepReLU` (same parameters, same forward)."""

        def __init__(self, net: DeepReLU) -> None:
            super().__init__()
            dtype = torch.float64 if net.dtype == np.float64 else torch.float32
            self.depth, self.relu = net.depth, net.activation == "relu"
            self.scales = [net._layer_scale(layer) for layer in range(1, net.depth + 2)]
            self.weights = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.tensor(w, dtype=dtype)) for w in net.weights])
            self.biases = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.tensor(b, dtype=dtype), requires_grad=net.train_bias)
                 for b in net.biases])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x
            for layer in range(self.depth):
                u = self.scales[layer] * (h @ self.weights[layer].T) - self.biases[layer]
                h = torch.relu(u) if self.relu else u
            return self.scales[self.depth] * (h @ self.weights[self.depth])

    return TorchDeepReLU
