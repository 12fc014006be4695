r"""P1 Figure 2: networks with different biases converge at the same linear rate.

Toy regression on the sphere (``snt.data.sphere``: unit inputs, labels from a fixed unit teacher), one network
per bias, full-batch GD. Theorem 3.1 scales the step with the bias, :math:`\eta(B) \propto \lambda(B)e^{B^2}`,
which makes the contraction :math:`\eta\lambda` independent of B when :math:`\lambda(B) = \lambda_0 e^{-B^2/2}`.
The paper states neither n, d, the teacher nor η; the defaults here are documented choices, all parameters.
Built on the public API only.

Width axis: the same problems at several widths (exact GD, ``method="kernel"`` for the wide ones, whose step cost
grows far slower than the width). For linear GD on the empirical NTK :math:`H_0` at initialization the loss
contracts by :math:`(1 - \eta\lambda_{\min}(H_0))^2` per step, so each run's final slope of :math:`\log L` is put
beside :math:`-2\eta\lambda_{\min}(H_0)` of its own network. If the gap between the largest bias and B = 0 shrinks
as the width grows, and each slope follows its own :math:`2\eta\lambda_{\min}(H_0)`, the gap is a finite-width
effect of the empirical kernel, not of the bias.
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


def _learning_rates(X: np.ndarray, biases: tuple[float, ...], lr_rule: str,
                    lr_scale: float) -> dict[float, tuple[float, bool, float, float]]:
    """Per bias: (η, capped, λ_min(H∞), λ_max(H∞)) of the rule described in :func:`convergence_study`."""
    spectra = {b: np.linalg.eigvalsh(snt.bias_ntk(X, b)) for b in (0.0, *biases)}
    lam0 = spectra[0.0][0]
    eta0 = lr_scale / spectra[0.0][-1]
    out = {}
    for bias in biases:
        lam, lam_max = spectra[bias][0], spectra[bias][-1]
        lr = eta0 * (lam * math.exp(bias * bias) / lam0 if lr_rule == "theorem" else 1.0)
        out[bias] = (min(lr, 1.9 / lam_max), bool(lr > 1.9 / lam_max), float(lam), float(lam_max))
    return out


def _width_axis(widths: tuple[int, ...], biases: tuple[float, ...], n: int, dim: int, teacher: str, steps: int,
                seeds: tuple[int, ...], lr_rule: str, lr_scale: float, tail: float, tolerance: float,
                kernel_from: int, callback: Callable[[str], None] | None) -> dict[str, Any]:
    """Every bias and seed at every width: final slope beside −2ηλ_min of the run's own empirical NTK at t = 0."""
    runs = []
    for seed in seeds:
        X, y = snt.data.sphere(n, dim, teacher=teacher, seed=seed)
        rates = _learning_rates(X, biases, lr_rule, lr_scale)
        for width in widths:
            for bias in biases:
                lr = rates[bias][0]
                net = snt.ShallowReLU(dim, width, bias, seed=seed)
                lam_emp = float(np.linalg.eigvalsh(snt.empirical_ntk(net, X))[0])
                method = "kernel" if width >= kernel_from else "dense"
                try:
                    history = snt.train(net, X, y, lr=lr, steps=steps, method=method)
                    loss, diverged = history.loss, False
                except snt.TrainingDiverged as err:
                    loss, diverged = err.history.loss, True
                slope = _final_slope(loss, tail, 1e-24)
                predicted = -2.0 * lr * lam_emp
                runs.append({"width": width, "seed": seed, "bias": bias, "lr": lr, "method": method,
                             "lambda_empirical": lam_emp, "two_eta_lambda": 2.0 * lr * lam_emp, "slope": slope,
                             "slope_over_prediction": slope / predicted if predicted < 0 else math.nan,
                             "diverged": diverged})
                if callback is not None:
                    callback(f"convergence width axis: seed {seed}, width {width}, B = {bias:g}")
    low, high = min(biases), max(biases)
    per_width = []
    for width in widths:
        row: dict[str, Any] = {"width": width}
        for key in ("slope", "two_eta_lambda", "slope_over_prediction"):
            row[key] = {str(b): float(np.nanmean([r[key] for r in runs if r["width"] == width and r["bias"] == b]))
                        for b in biases}
        row["gap_ratio"] = row["slope"][str(high)] / row["slope"][str(low)] if row["slope"][str(low)] else math.nan
        per_width.append(row)
    first, last = per_width[0]["gap_ratio"], per_width[-1]["gap_ratio"]
    closes = bool(abs(last - 1) <= tolerance and abs(last - 1) < abs(first - 1))
    follows = [r["slope_over_prediction"] for r in runs if math.isfinite(r["slope_over_prediction"])]
    verdict = (f"final slope of B={high:g} over B={low:g}: "
               + ", ".join(f"width {row['width']}: {row['gap_ratio']:.3g}" for row in per_width)
               + (f"; the gap closes as the width grows (within {tolerance:g} at width {widths[-1]}): a finite-width "
                  "effect" if closes else f"; the gap does not close to within {tolerance:g} up to width {widths[-1]}")
               + (f". Each slope over −2ηλ_min of its own empirical NTK at t = 0: {min(follows):.3g}–"
                  f"{max(follows):.3g}" if follows else ""))
    return {"runs": runs, "per_width": per_width, "gap_closes": closes, "verdict": verdict}


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
    widths: tuple[int, ...] = (),
    kernel_from: int = 256,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    r"""Train one width-``width`` network per bias and seed; fit the final slope of :math:`\log L(t)`.

    Learning rates: ``"fixed"`` uses :math:`\eta_0 = \text{lr\_scale}/\lambda_{\max}(H^\infty_0)` for every bias;
    ``"theorem"`` uses :math:`\eta(B) = \eta_0\,\lambda(B)e^{B^2}/\lambda(0)` (Theorem 3.1's rule, normalized so
    that B = 0 gets :math:`\eta_0`), with :math:`\lambda(B) = \lambda_{\min}(H^\infty_B)` on the training inputs.
    A step that the finite network cannot take is capped at :math:`1.9/\lambda_{\max}(H^\infty_B)`.

    The verdict "same slope" holds when the mean final slopes of all biases lie within ``tolerance`` (relative)
    of their mean. Returns a JSON-ready dict with every curve, slope and step size.

    ``widths`` adds the width axis (``"width_axis"`` in the result, see the module docstring): every bias and seed
    at every width, trained with ``method="kernel"`` from ``kernel_from`` on (``"dense"`` below), each with
    :math:`2\eta\lambda_{\min}` of its own empirical NTK at initialization (``snt.empirical_ntk``), the ratio of
    the mean slopes of the largest bias and the smallest, and a verdict on whether the gap closes with the width
    (``|ratio − 1| ≤ tolerance`` at the largest width, and closer to 1 than at the smallest).
    """
    if not (isinstance(lr_scale, int | float) and math.isfinite(lr_scale) and lr_scale > 0):
        raise ValueError(f"lr_scale: expected a positive finite number, got {lr_scale!r}")
    if lr_rule not in LR_RULES:
        raise ValueError(f"lr_rule: expected one of {LR_RULES}, got {lr_rule!r}")
    if not biases or not seeds:
        raise ValueError("biases, seeds: expected at least one value each")
    runs = []
    for seed in seeds:
        X, y = snt.data.sphere(n, dim, teacher=teacher, seed=seed)
        rates = _learning_rates(X, biases, lr_rule, lr_scale)
        for bias in biases:
            lr, capped, lam, lam_max = rates[bias]
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
        slopes = slopes[np.isfinite(slopes)]  # a run too short to fit a slope has none
        per_bias[str(bias)] = {"slope_mean": float(slopes.mean()) if slopes.size else math.nan,
                               "slope_std": float(slopes.std()) if slopes.size else math.nan,
                               "eta_lambda_mean": float(np.mean([r["eta_lambda"] for r in runs
                                                                 if r["bias"] == bias]))}
    means = np.array([v["slope_mean"] for v in per_bias.values()])
    missing = [b for b, v in per_bias.items() if not math.isfinite(v["slope_mean"])]
    if missing:  # no verdict from NaN: say why there is none
        spread, same = math.nan, False
        verdict = (f"undetermined: no final slope could be fitted for B = {', '.join(missing)} (too few steps above "
                   f"the loss floor: steps = {steps}, tail = {tail:g}); run more steps")
    else:
        spread = float((means.max() - means.min()) / abs(means.mean()))
        same = bool(spread <= tolerance)
        verdict = (f"{'same' if same else 'different'} final slope: mean slopes of log loss per step "
                   + ", ".join(f"B={b}: {v['slope_mean']:.4g}±{v['slope_std']:.2g}" for b, v in per_bias.items())
                   + f"; relative spread {spread:.3g} ({'≤' if same else '>'} tolerance {tolerance:g})")
    axis = _width_axis(widths, biases, n, dim, teacher, steps, seeds, lr_rule, lr_scale, tail, tolerance,
                       kernel_from, callback) if widths else None
    return {
        "config": {"biases": list(biases), "width": width, "n": n, "dim": dim, "teacher": teacher, "steps": steps,
                   "seeds": list(seeds), "lr_rule": lr_rule, "lr_scale": lr_scale, "tail": tail,
                   "tolerance": tolerance, "widths": list(widths), "kernel_from": kernel_from},
        "width_axis": axis,
        "runs": runs,
        "per_bias": per_bias,
        "relative_spread": spread,
        "same_slope": same,
        "verdict": verdict,
    }
