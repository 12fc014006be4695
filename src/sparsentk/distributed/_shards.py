"""The neurons of a sharded network: which rank owns which, and drawing a slice of them alone (no MPI here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsentk._validate import check_choice, check_dtype, check_float, check_int
from sparsentk.network import ShallowReLU, initial_rows

__all__ = ["NetworkSpec", "neuron_range"]


@dataclass(frozen=True)
class NetworkSpec:
    """A :class:`~sparsentk.ShallowReLU` by its constructor arguments: each rank draws only its own neurons.

    The blocked initialization (``sparsentk.network.INIT_BLOCK``) makes the neurons the same as
    ``ShallowReLU(dim, width, bias, init=init, seed=seed, dtype=dtype)``'s, whatever the rank count. The seed is
    an integer (not None): every rank draws from it.
    """

    dim: int
    width: int
    bias: float = 0.0
    init: str = "standard"
    seed: int = 0
    dtype: Any = np.float64

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", check_int(self.dim, "dim", minimum=1))
        object.__setattr__(self, "width", check_int(self.width, "width", minimum=1))
        object.__setattr__(self, "bias", check_float(self.bias, "bias", minimum=0.0))
        object.__setattr__(self, "init", check_choice(self.init, "init", ("standard", "symmetric")))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", minimum=0))
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        if self.init == "symmetric" and self.width % 2:
            raise ValueError(f"width: symmetric init needs an even width, got {self.width}")

    def rows(self, lo: int, hi: int) -> ShallowReLU:
        """Neurons ``lo:hi`` as a width-``hi - lo`` network (drawn alone)."""
        entropy = np.random.SeedSequence(self.seed).entropy
        W, a = initial_rows(entropy, self.dim, self.width, self.init, lo, hi)
        return _local_network(self.bias, self.init, self.seed, np.ascontiguousarray(W, dtype=self.dtype),
                              np.full(hi - lo, self.bias, dtype=self.dtype), a.astype(self.dtype))


def _local_network(bias: float, init: str, seed: int | None, W: np.ndarray, b: np.ndarray,
                   a: np.ndarray) -> ShallowReLU:
    net = object.__new__(ShallowReLU)
    net.width, net.dim = (int(s) for s in W.shape)
    net.bias, net.init, net.seed, net.dtype = bias, init, seed, W.dtype
    net.W, net.b, net.a = W, b, a
    return net


def neuron_range(width: int, size: int, rank: int) -> tuple[int, int]:
    r"""The contiguous neurons of ``rank`` among ``size``: :math:`[\lfloor r m/K\rfloor, \lfloor (r+1) m/K\rfloor)`."""
    return width * rank // size, width * (rank + 1) // size
