r"""P1 Figure 2: networks with different biases converge at the same linear rate.

Toy regression on the sphere (``snt.data.sphere``: unit inputs, labels from a fixed unit teacher), one network
per bias, full-batch GD. Theorem 3.1 scales the step with the bias, :math:`\eta(B) \propto \lambda(B)e^{B^2}`,
which makes the contraction :math:`\eta\lambda` independent of B when :math:`\lambda(B) = \lambda_0 e^{-B^2/2}`.
The paper states neither n, d, the teacher nor η; the defaults here are documented choices, all parameters.
Built on the public API only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import sparsentk as snt

LR_RULES = ("theorem", "fixed")


def _final_slope(loss: np.ndarray, tail: float, floor: float) -> float:
    """Least-squares slope of log loss over the last ``tail`` fraction of the steps above ``floor``·loss[0]."""
    usable = np.flatnonzero(loss > floor * loss[0])
    end = usable[-1] + 1 if len(usable) else len(loss)
    start = int(end * (1 - tail))
    t = np.arange(start, end)
    return float(np.polyfit(t, np.log(loss[start:end]), 1)[0]) if end - start >= 2 else math.nan


def convergence_study(
    *,
    biases: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5),
    width: int = 128,
    n: int = 32,
    dim: int = 16,
    teacher: str = "relu",
    steps: int = 2000,
    seeds: tuple[int, ...] = (0, 1, 2),
    lr_rule: str = "theorem",
    lr_scale: float = 1.0,
    tail: float = 0.25,
    tolerance: float = 0.25,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    r"""Train one width-``width`` network per bias and seed; fit the final slope of :math:`\log L(t)`.

    Learning rates: ``"fixed"`` uses :math:`\eta_0 = \text{lr\_scale}/\lambda_{\max}(H^\infty_0)` for every bias;
    ``"theorem"`` uses :math:`\eta(B) = \eta_0\,\lambda(B)e^{B^2}/\lambda(0)` (Theorem 3.1's rule, normalized so
    that B = 0 gets :math:`\eta_0`), with :math:`\lambda(B) = \lambda_{\min}(H^\infty_B)` on the training inputs.
    A step that the finite network cannot take is capped at :math:`1.9/\lambda_{\max}(H^\infty_B)`.

    The verdict "same slope" holds when the mean final slopes of all biases lie within ``tolerance`` (relative)
    of their mean. Returns a JSON-ready dict with every curve, slope and step size.
    """
    if lr_rule not in LR_RULES:
        raise ValueError(f"lr_rule: expected one of {LR_RULES}, got {lr_rule!r}")
    if not biases or not seeds:
        raise ValueError("biases, seeds: expected at least one value each")
    runs = []
    for seed in seeds:
        X, y = snt.data.sphere(n, dim, teacher=teacher, seed=seed)
        spectra = {b: np.linalg.eigvalsh(snt.bias_ntk(X, b)) for b in (0.0, *biases)}
        lam0 = spectra[0.0][0]
        eta0 = lr_scale / spectra[0.0][-1]
        for bias in biases:
            lam, lam_max = spectra[bias][0], spectra[bias][-1]
            lr = eta0 * (lam * math.exp(bias * bias) / lam0 if lr_rule == "theorem" else 1.0)
            capped = lr > 1.9 / lam_max
            lr = min(lr, 1.9 / lam_max)
            net = snt.ShallowReLU(dim, width, bias, seed=seed)
            try:
                history = snt.train(net, X, y, lr=lr, steps=steps, method="dense")
                loss, diverged = history.loss, False
            except snt.TrainingDiverged as err:
                loss, diverged = err.history.loss, True
            runs.append({"seed": seed, "bias": bias, "lr": lr, "lr_capped": bool(capped), "lambda": float(lam),
                         "lambda_max": float(lam_max), "eta_lambda": float(lr * lam), "diverged": diverged,
                         "slope": _final_slope(loss, tail, 1e-24), "loss": loss.tolist()})
            if callback is not None:
                callback(f"convergence: seed {seed}, B = {bias:g}")
    per_bias = {}
    for bias in biases:
        slopes = np.array([r["slope"] for r in runs if r["bias"] == bias])
        per_bias[str(bias)] = {"slope_mean": float(np.nanmean(slopes)), "slope_std": float(np.nanstd(slopes)),
                               "eta_lambda_mean": float(np.mean([r["eta_lambda"] for r in runs
                                                                 if r["bias"] == bias]))}
    means = np.array([v["slope_mean"] for v in per_bias.values()])
    spread = float((means.max() - means.min()) / abs(means.mean())) if means.size else math.nan
    same = bool(spread <= tolerance)
    verdict = (f"{'same' if same else 'different'} final slope: mean slopes of log loss per step "
               + ", ".join(f"B={b}: {v['slope_mean']:.4g}±{v['slope_std']:.2g}" for b, v in per_bias.items())
               + f"; relative spread {spread:.3g} ({'≤' if same else '>'} tolerance {tolerance:g})")
    return {
        "config": {"biases": list(biases), "width": width, "n": n, "dim": dim, "teacher": teacher, "steps": steps,
                   "seeds": list(seeds), "lr_rule": lr_rule, "lr_scale": lr_scale, "tail": tail,
                   "tolerance": tolerance},
        "runs": runs,
        "per_bias": per_bias,
        "relative_spread": spread,
        "same_slope": same,
        "verdict": verdict,
    }
