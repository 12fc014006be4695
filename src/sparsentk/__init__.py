"""sparsentk: wide ReLU networks with sparse activation induced by large bias, and the bias-generalized NTK.

Implements Yang et al., "Neural Networks with Sparse Activation Induced by Large Bias: Tighter Analysis with
Bias-Generalized NTK" (arXiv 2301.00327) and companions (arXiv 2305.08813, arXiv 2111.01875).
"""

from sparsentk import data, theory
from sparsentk._grid import GridResult, run_grid
from sparsentk.audit import AuditResult, audit, sweep
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
from sparsentk.sklearn import BiasGeneralizedNTK, BiasNTKRegressor
from sparsentk.training import History, TrainingDiverged, train

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "BiasGeneralizedNTK",
    "BiasNTKRegressor",
    "GridResult",
    "History",
    "ShallowReLU",
    "TrainingDiverged",
    "__version__",
    "audit",
    "bias_ntk",
    "condition_number",
    "data",
    "empirical_ntk",
    "kernel_regression",
    "lambda_min",
    "ntk_predictions",
    "orthant_probability",
    "run_grid",
    "sweep",
    "theory",
    "train",
]
