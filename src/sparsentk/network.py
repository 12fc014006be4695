"""The one-hidden-layer ReLU network with a large constant bias (P1, paper-notes §1)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from sparsentk._io import atomic_save_npz
from sparsentk._validate import check_choice, check_dtype, check_float, check_int, check_matrix, check_vector

_FORMAT = "sparsentk.ShallowReLU/1"

#: Neurons per block in chunked forward/backward passes: keeps the n × block workspace small at any width.
CHUNK = 2048


def _chunks(width: int, size: int = CHUNK):
    for start in range(0, width, size):
        yield start, min(start + size, width)


class ShallowReLU:
    r"""Width-``m`` ReLU network with trainable first layer and biases and a fixed ±1 output layer.

    .. math::

        f(x; W, b) = \frac{1}{\sqrt{m}} \sum_{r=1}^{m} a_r \,\mathrm{relu}(w_r \cdot x - b_r),
        \qquad w_r \sim N(0, I_d),\; a_r \sim \mathrm{Unif}\{-1, +1\},\; b_r = B.

    A large bias ``B`` makes activation sparse: for a unit input :math:`P(w_r \cdot x \ge B) = \bar\Phi(B)
    \le e^{-B^2/2}` (Yang et al., arXiv 2301.00327, Section 3).

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    width : int
        Number of hidden neurons ``m``.
    bias : float
        Initial bias ``B >= 0`` shared by every neuron (the paper's activation threshold).
    init : {"standard", "symmetric"}
        ``"symmetric"`` (P1, Definition 3.7) draws ``m/2`` neurons and mirrors them with opposite output signs,
        so that ``f ≡ 0`` at initialization; it needs an even width.
    seed : int or None
        Seed of the NumPy generator; the same seed gives the same parameters in float32 and float64.
    dtype : float32 or float64
        Float type of ``W`` and ``b`` and of every computation on them.

    Attributes
    ----------
    W : ndarray, shape (width, dim)
    b : ndarray, shape (width,)
    a : ndarray, shape (width,)
        Output signs, never trained.

    Examples
    --------
    >>> import numpy as np, sparsentk as snt
    >>> net = snt.ShallowReLU(dim=3, width=8, bias=1.0, init="symmetric", seed=0)
    >>> bool(np.abs(net.predict(np.eye(3))).max() < 1e-12)
    True
    """

    def __init__(
        self,
        dim: int,
        width: int,
        bias: float = 0.0,
        *,
        init: str = "standard",
        seed: int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.dim = check_int(dim, "dim", minimum=1)
        self.width = check_int(width, "width", minimum=1)
        self.bias = check_float(bias, "bias", minimum=0.0)
        self.init = check_choice(init, "init", ("standard", "symmetric"))
        self.dtype = check_dtype(dtype)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        if self.init == "symmetric" and self.width % 2:
            raise ValueError(f"width: symmetric init needs an even width, got {self.width}")
        rng = np.random.default_rng(seed)
        half = self.width // 2 if self.init == "symmetric" else self.width
        W = rng.standard_normal((half, self.dim))
        a = rng.choice(np.array([-1.0, 1.0]), size=half)
        if self.init == "symmetric":
            W = np.concatenate([W, W])
            a = np.concatenate([a, -a])
        self.W = np.ascontiguousarray(W, dtype=self.dtype)
        self.b = np.full(self.width, self.bias, dtype=self.dtype)
        self.a = a.astype(self.dtype)

    # ------------------------------------------------------------------ evaluation
    def _check_X(self, X: Any) -> np.ndarray:
        return check_matrix(X, "X", dim=self.dim, dtype=self.dtype)

    def preactivations(self, X: Any) -> np.ndarray:
        r"""Pre-activations :math:`z_{ir} = w_r \cdot x_i - b_r`, an n × width array (dense; mind the size)."""
        X = self._check_X(X)
        return X @ self.W.T - self.b

    def predict(self, X: Any) -> np.ndarray:
        r"""Network outputs :math:`f(x_i)` for the rows of ``X``, computed in neuron blocks (no n × width array)."""
        X = self._check_X(X)
        out = np.zeros(X.shape[0], dtype=np.float64)
        for lo, hi in _chunks(self.width):
            z = X @ self.W[lo:hi].T
            z -= self.b[lo:hi]
            np.maximum(z, 0, out=z)
            out += z @ self.a[lo:hi]
        out /= np.sqrt(self.width)
        return out.astype(self.dtype, copy=False)

    def active(self, X: Any) -> sp.csr_matrix:
        r"""Activation pattern :math:`1[w_r \cdot x_i \ge b_r]` as a sparse boolean n × width CSR matrix."""
        X = self._check_X(X)
        blocks = []
        for lo, hi in _chunks(self.width):
            z = X @ self.W[lo:hi].T
            blocks.append(sp.csr_matrix(z >= self.b[lo:hi]))
        return sp.hstack(blocks, format="csr", dtype=bool)

    def gradients(self, X: Any, residual: Any) -> tuple[np.ndarray, np.ndarray]:
        r"""Gradients of :math:`L = \tfrac12 \sum_i (f(x_i) - y_i)^2` given the residual :math:`f(x_i) - y_i`.

        .. math::

            \frac{\partial L}{\partial w_r} = \frac{a_r}{\sqrt m} \sum_i (f_i - y_i)\, 1[w_r\cdot x_i \ge b_r]\, x_i,
            \qquad
            \frac{\partial L}{\partial b_r} = -\frac{a_r}{\sqrt m} \sum_i (f_i - y_i)\, 1[w_r\cdot x_i \ge b_r].
        """
        X = self._check_X(X)
        residual = check_vector(residual, "residual", length=X.shape[0], dtype=self.dtype)
        gW = np.empty_like(self.W)
        gb = np.empty_like(self.b)
        for lo, hi in _chunks(self.width):
            mask = (X @ self.W[lo:hi].T >= self.b[lo:hi]).astype(self.dtype)
            mask *= residual[:, None]
            gW[lo:hi] = mask.T @ X
            gb[lo:hi] = -mask.sum(axis=0)
        scale = self.a / np.sqrt(self.width)
        gW *= scale[:, None]
        gb *= scale
        return gW, gb

    # ------------------------------------------------------------------ housekeeping
    def copy(self) -> ShallowReLU:
        """An independent copy with the same parameters."""
        new = object.__new__(ShallowReLU)
        new.__dict__.update(self.__dict__)
        new.W, new.b, new.a = self.W.copy(), self.b.copy(), self.a.copy()
        return new

    def save(self, path: str | os.PathLike) -> None:
        """Save the parameters and settings to an ``.npz`` file (no pickle), atomically."""
        atomic_save_npz(
            path,
            format=np.array(_FORMAT),
            W=self.W,
            b=self.b,
            a=self.a,
            bias=np.array(self.bias),
            init=np.array(self.init),
            seed=np.array(-1 if self.seed is None else self.seed),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ShallowReLU:
        """Load a network written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                fields = {name: data[name] for name in data.files}
        except (OSError, EOFError, ValueError) as err:
            raise ValueError(f"path: cannot read a ShallowReLU from {os.fspath(path)!r}: {err}") from err
        if "format" not in fields or str(fields["format"]) != _FORMAT:
            raise ValueError(f"path: {os.fspath(path)!r} is not a sparsentk ShallowReLU file")
        W, b, a = fields["W"], fields["b"], fields["a"]
        bias, init, seed = float(fields["bias"]), str(fields["init"]), int(fields["seed"])
        if W.ndim != 2 or b.shape != (W.shape[0],) or a.shape != (W.shape[0],):
            raise ValueError(f"path: malformed ShallowReLU file {os.fspath(path)!r} (shapes {W.shape}, {b.shape})")
        net = object.__new__(cls)
        net.width, net.dim = (int(s) for s in W.shape)
        net.bias, net.init, net.seed = bias, init, None if seed < 0 else seed
        net.dtype = check_dtype(W.dtype)
        net.W, net.b, net.a = np.ascontiguousarray(W), b.copy(), a.copy()
        return net

    def __repr__(self) -> str:
        return (
            f"ShallowReLU(dim={self.dim}, width={self.width}, bias={self.bias}, init={self.init!r}, "
            f"seed={self.seed}, dtype={self.dtype.name})"
        )
