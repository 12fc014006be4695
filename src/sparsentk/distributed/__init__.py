"""Beyond one machine: the one place that imports mpi4py or dask (each only inside its submodule).

- :mod:`sparsentk.distributed.mpi` (extra ``mpi``): neuron-sharded full-batch GD, ``train_sharded``, run as
  ``mpiexec -n K sparsentk train ... --distributed`` or from Python under ``mpiexec``.
- :mod:`sparsentk.distributed.dask` (extra ``dask``): kernel panels as Dask tasks (used by ``sparsentk.ridge``).

Importing this package imports neither MPI nor Dask: the public names below load their submodule on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule that defines it (loaded on first access)
_LAZY = {
    "NetworkSpec": "_shards",
    "ShardedResult": "mpi",
    "empirical_ntk_sharded": "mpi",
    "neuron_range": "_shards",
    "train_sharded": "mpi",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
