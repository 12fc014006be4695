"""The one-hidden-layer ReLU network with a large constant bias (P1, paper-notes §1)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from sparsentk._io import atomic_save_npz
from sparsentk._memory import require_memory
from sparsentk._validate import check_choice, check_dtype, check_float, check_int, check_matrix, check_vector

_FORMAT = "sparsentk.ShallowReLU/1"

#: Neurons per block in chunked forward/backward passes: keeps the n × block workspace small at any width.
CHUNK = 2048


def _chunks(width: int, size: int = CHUNK):
    for start in range(0, width, size):
        yield start, min(start + size, width)


#: Neurons per seeded stream of the initialization: rows ``[k·INIT_BLOCK, (k+1)·INIT_BLOCK)`` of ``W`` and of ``a``
#: come from their own streams, so any slice of neurons can be drawn alone (``sparsentk.distributed``) and the
#: parameters do not depend on how the neurons are split among processes.
INIT_BLOCK = 1024


def _draw_block_rows(entropy: int, dim: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``lo:hi`` of the drawn neurons: block ``k`` draws ``w ~ N(0, I_d)`` from the stream
    ``SeedSequence(entropy, spawn_key=(k, 0))`` and the signs from ``spawn_key=(k, 1)``."""
    W, a = np.empty((hi - lo, dim)), np.empty(hi - lo)
    for k in range(lo // INIT_BLOCK, -(-hi // INIT_BLOCK)):
        start = k * INIT_BLOCK
        take_lo, take_hi = max(lo, start), min(hi, start + INIT_BLOCK)
        rows = take_hi - start  # a block's draws are a prefix of its stream: draw up to the last row needed
        w_rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(k, 0)))
        a_rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(k, 1)))
        W[take_lo - lo : take_hi - lo] = w_rng.standard_normal((rows, dim))[take_lo - start :]
        a[take_lo - lo : take_hi - lo] = a_rng.choice(np.array([-1.0, 1.0]), size=rows)[take_lo - start :]
    return W, a


def initial_rows(entropy: int, dim: int, width: int, init: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``lo:hi`` of the initial ``W`` and ``a`` (float64) of a width-``width`` network, drawing only what they
    need. ``init="symmetric"`` draws ``width/2`` neurons; neuron ``j ≥ width/2`` mirrors ``j − width/2`` with the
    opposite sign."""
    if init != "symmetric":
        return _draw_block_rows(entropy, dim, lo, hi)
    half = width // 2
    parts = []
    if lo < half:
        parts.append(_draw_block_rows(entropy, dim, lo, min(hi, half)))
    if hi > half:
        W, a = _draw_block_rows(entropy, dim, max(lo, half) - half, hi - half)
        parts.append((W, -a))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
        require_memory(8.0 * self.width * (self.dim + 2), "width", f"a network of width {self.width}, dim {self.dim}")
        # blocked streams (INIT_BLOCK): the same neurons whether drawn here or slice by slice by sparsentk.distributed
        entropy = np.random.SeedSequence(seed).entropy
        W, a = initial_rows(entropy, self.dim, self.width, self.init, 0, self.width)
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
        """Load a network written by :meth:`save`.

        The file is refused (``ValueError`` naming ``path``) when it cannot be read, is not in this format, lacks a
        field, or holds impossible values: non-finite ``W`` or ``b``, a non-float ``W``, output signs other than
        ±1, a negative or non-finite bias, an unknown ``init``, a symmetric network whose neurons are not mirrored,
        or a non-integer seed.
        """
        import zipfile

        where = repr(os.fspath(path)) if isinstance(path, str | os.PathLike) else repr(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                fields = {name: data[name] for name in data.files}
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise ValueError(f"path: cannot read a ShallowReLU from {where}: {err}") from err
        if "format" not in fields or fields["format"].shape != () or str(fields["format"]) != _FORMAT:
            raise ValueError(f"path: {where} is not a sparsentk ShallowReLU file")
        missing = [k for k in ("W", "b", "a", "bias", "init", "seed") if k not in fields]
        if missing:
            raise ValueError(f"path: {where} lacks the field(s) {', '.join(missing)} of a ShallowReLU file")

        def bad(what: str) -> ValueError:
            return ValueError(f"path: {where} is not a valid ShallowReLU file: {what}")

        W, b, a = fields["W"], fields["b"], fields["a"]
        if any(fields[k].shape != () for k in ("bias", "init", "seed")):
            raise bad("bias, init and seed must be scalars")
        if W.dtype not in (np.float32, np.float64) or b.dtype != W.dtype or a.dtype != W.dtype:
            raise bad(f"W, b and a must share a float32/float64 dtype, got {W.dtype}, {b.dtype}, {a.dtype}")
        if W.ndim != 2 or min(W.shape) < 1 or b.shape != (W.shape[0],) or a.shape != (W.shape[0],):
            raise bad(f"shapes W {W.shape}, b {b.shape}, a {a.shape} do not match")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise bad("W or b holds non-finite values")
        if not np.isin(a, (-1.0, 1.0)).all():
            raise bad("the output signs a must all be +1 or -1")
        if fields["bias"].dtype.kind != "f" or not np.isfinite(fields["bias"]) or float(fields["bias"]) < 0:
            raise bad(f"bias must be a finite number >= 0, got {fields['bias']}")
        init = str(fields["init"])
        if init not in ("standard", "symmetric"):
            raise bad(f"init must be 'standard' or 'symmetric', got {init!r}")
        if init == "symmetric":
            half = W.shape[0] // 2
            if W.shape[0] % 2 or not np.array_equal(a[half:], -a[:half]):
                raise bad("init is 'symmetric' but the neurons are not mirrored (even width, a[m/2:] = -a[:m/2])")
        if fields["seed"].dtype.kind not in "iu":
            raise bad(f"seed must be an integer, got {fields['seed']}")
        seed = int(fields["seed"])
        net = object.__new__(cls)
        net.width, net.dim = (int(s) for s in W.shape)
        net.bias, net.init, net.seed = float(fields["bias"]), init, None if seed < 0 else seed
        net.dtype = check_dtype(W.dtype)
        net.W, net.b, net.a = np.ascontiguousarray(W), b.copy(), a.copy()
        return net

    def __repr__(self) -> str:
        return (
            f"ShallowReLU(dim={self.dim}, width={self.width}, bias={self.bias}, init={self.init!r}, "
            f"seed={self.seed}, dtype={self.dtype.name})"
        )
