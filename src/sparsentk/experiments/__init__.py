"""Reproductions of the papers' experiments, built only on sparsentk's public API."""

from sparsentk import GridResult, run_grid
from sparsentk.experiments.convergence import convergence_study
from sparsentk.experiments.mnist_sparsity import mnist_sparsity_study
from sparsentk.experiments.report import reproduce_report

__all__ = ["GridResult", "convergence_study", "mnist_sparsity_study", "reproduce_report", "run_grid"]
