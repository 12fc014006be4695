"""sparsentk: wide ReLU networks with sparse activation induced by large bias, and the bias-generalized NTK.

Implements Yang et al., "Neural Networks with Sparse Activation Induced by Large Bias: Tighter Analysis with
Bias-Generalized NTK" (arXiv 2301.00327) and companions (arXiv 2305.08813, arXiv 2111.01875).
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

#: Public name -> the module defining it. Imported on first use, so that `import sparsentk` (and `sparsentk --help`)
#: stay fast: scikit-learn, scipy, numba and matplotlib load only when a name that needs them is used.
#: To export a new name: add it here and to __all__ (and to the TYPE_CHECKING imports below); "sparsentk" marks a
#: submodule exported as such (``snt.data``).
_EXPORTS = {
    "audit": "sparsentk.audit",
    "AuditResult": "sparsentk.audit",
    "bias_ntk": "sparsentk.kernels",
    "BiasGeneralizedNTK": "sparsentk.sklearn",
    "BiasNTKRegressor": "sparsentk.sklearn",
    "condition_number": "sparsentk.kernels",
    "data": "sparsentk",
    "deep_ntk": "sparsentk.deep_kernels",
    "DeepReLU": "sparsentk.deep_network",
    "distributed": "sparsentk",
    "empirical_ntk": "sparsentk.kernels",
    "gradient_angles": "sparsentk.angles",
    "GridResult": "sparsentk._grid",
    "History": "sparsentk.training",
    "input_angles": "sparsentk.angles",
    "kernel_predict": "sparsentk.ridge",
    "kernel_regression": "sparsentk.kernels",
    "kernel_ridge": "sparsentk.ridge",
    "KernelOperator": "sparsentk.ridge",
    "lambda_min": "sparsentk.kernels",
    "min_angle": "sparsentk.angles",
    "ntk_predictions": "sparsentk.kernels",
    "orthant_probability": "sparsentk.kernels",
    "RidgeResult": "sparsentk.ridge",
    "run_grid": "sparsentk._grid",
    "ShallowReLU": "sparsentk.network",
    "sweep": "sparsentk.audit",
    "theory": "sparsentk",
    "train": "sparsentk.training",
    "TrainingDiverged": "sparsentk.training",
    "TrainingInterrupted": "sparsentk.training",
    "TwoLayer": "sparsentk.two_layer",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily via __getattr__
    from sparsentk import data, distributed, theory
    from sparsentk._grid import GridResult, run_grid
    from sparsentk.angles import gradient_angles, input_angles, min_angle
    from sparsentk.audit import AuditResult, audit, sweep
    from sparsentk.deep_kernels import deep_ntk
    from sparsentk.deep_network import DeepReLU
    from sparsentk.kernels import (
        bias_ntk,
        condition_number,
        empirical_ntk,
        kernel_regression,
        lambda_min,
        ntk_predictions,
        orthant_probability,
    )
    from sparsentk.network import ShallowReLU
    from sparsentk.ridge import KernelOperator, RidgeResult, kernel_predict, kernel_ridge
    from sparsentk.sklearn import BiasGeneralizedNTK, BiasNTKRegressor
    from sparsentk.training import History, TrainingDiverged, TrainingInterrupted, train
    from sparsentk.two_layer import TwoLayer


def __getattr__(name: str) -> Any:
    """Import the module behind a public name (or a submodule such as ``sparsentk.training``) on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("__"):
            raise AttributeError(f"module 'sparsentk' has no attribute {name!r}")
        try:
            value = importlib.import_module(f"sparsentk.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"sparsentk.{name}":
                raise
            raise AttributeError(f"module 'sparsentk' has no attribute {name!r}") from None
    elif module == "sparsentk":
        value = importlib.import_module(f"sparsentk.{name}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package module. Importing a submodule binds it as a package attribute; where a public function shares
    its module's name (``sparsentk.audit``), the function is kept (it loads on first use)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name, "sparsentk") != "sparsentk":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "BiasGeneralizedNTK",
    "BiasNTKRegressor",
    "DeepReLU",
    "GridResult",
    "History",
    "KernelOperator",
    "RidgeResult",
    "ShallowReLU",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TwoLayer",
    "__version__",
    "audit",
    "bias_ntk",
    "condition_number",
    "data",
    "deep_ntk",
    "distributed",
    "empirical_ntk",
    "gradient_angles",
    "input_angles",
    "kernel_predict",
    "kernel_regression",
    "kernel_ridge",
    "lambda_min",
    "min_angle",
    "ntk_predictions",
    "orthant_probability",
    "run_grid",
    "sweep",
    "theory",
    "train",
]
