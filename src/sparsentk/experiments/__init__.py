"""Reproductions of the papers' experiments, built only on sparsentk's public API."""

from sparsentk import GridResult, run_grid
from sparsentk.experiments.conditioning import conditioning_study
from sparsentk.experiments.convergence import convergence_study
from sparsentk.experiments.depth_accuracy import depth_accuracy_study
from sparsentk.experiments.lazy import lazy_study
from sparsentk.experiments.mnist_sparsity import mnist_sparsity_study
from sparsentk.experiments.report import reproduce_report
from sparsentk.experiments.width import width_study

__all__ = ["GridResult", "conditioning_study", "convergence_study", "depth_accuracy_study", "lazy_study",
           "mnist_sparsity_study", "reproduce_report", "run_grid", "width_study"]
