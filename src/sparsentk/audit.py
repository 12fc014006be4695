"""Hold P1's claims against measurement: train, measure, and set each measured value beside its bound.

Every row says what is claimed, what was measured, the theoretical value or bound with the constant used, and
their ratio. Reconstructed bounds (paper-notes §3) are marked "up to constants": a ratio far from 1 there says as
much about the unknown constant as about the claim; the *trend* across biases and widths (:func:`sweep`) is the
meaningful test.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sparsentk import plotting, theory
from sparsentk._grid import run_grid
from sparsentk._io import atomic_write_json, atomic_write_text, machine_info
from sparsentk._validate import check_choice, check_float, check_int, check_matrix, check_vector
from sparsentk.kernels import bias_ntk, empirical_ntk, lambda_min
from sparsentk.network import ShallowReLU
from sparsentk.training import METHODS, History, train

#: Default constants of the reconstructed bounds (all "up to constants").
DEFAULT_CONSTANTS = {"active": 1.0, "flip": 1.0, "movement": 4.0}


@dataclass
class Row:
    """One claim: ``measured`` against ``theory`` (a value or a bound), ``ratio = measured / theory``."""

    claim: str
    source: str
    measured: float
    theory: float
    kind: str  # "upper bound", "lower bound", "equals" or "trend"
    constant: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.theory == 0 or not math.isfinite(self.theory):
            return math.inf if self.measured else math.nan
        return self.measured / self.theory

    @property
    def holds(self) -> bool | None:
        """Whether the measurement respects the bound (None for values with unknown constants or 'equals')."""
        if self.kind == "upper bound":
            return self.measured <= self.theory * (1 + 1e-9)
        if self.kind == "lower bound":
            return self.measured >= self.theory * (1 - 1e-9)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim, "source": self.source, "measured": self.measured, "theory": self.theory,
            "kind": self.kind, "ratio": self.ratio, "holds": self.holds, "constant": self.constant,
            "note": self.note,
        }


@dataclass
class AuditResult:
    """Rows of claims with the training history and the series behind the plots."""

    config: dict[str, Any]
    rows: list[Row]
    history: History
    series: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "rows": [r.to_dict() for r in self.rows], "history": self.history.to_dict(),
                "series": self.series}

    def to_markdown(self) -> str:
        c = self.config
        lines = [
            f"# sparsentk audit: n={c['n']}, d={c['dim']}, width m={c['width']}, bias B={c['bias']}, "
            f"lr={c['lr']:.4g}, {c['steps']} steps ({c['method']})",
            "",
            "Bounds marked *up to constants* were reconstructed from P1's prose (paper-notes §3): the constant shown "
            "is the one used, not the paper's.",
            "",
            "| claim | source | measured | theory | kind | ratio | holds | constant / note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            holds = {True: "yes", False: "**no**", None: "–"}[r.holds]
            note = "; ".join(x for x in (r.constant, r.note) if x)
            lines.append(f"| {r.claim} | {r.source} | {_fmt(r.measured)} | {_fmt(r.theory)} | {r.kind} | "
                         f"{_fmt(r.ratio)} | {holds} | {note} |")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | os.PathLike) -> list[str]:
        """Write ``audit.json``, ``audit.md``, ``history.csv`` and ``audit.png`` atomically; returns the names."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "audit.json", self.to_dict() | {"machine": machine_info()})
        atomic_write_text(out / "audit.md", self.to_markdown())
        self.history.to_csv(out / "history.csv")
        plotting.save(plotting.audit_panels(self), out / "audit.png")
        return ["audit.json", "audit.md", "history.csv", "audit.png"]


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.4g}"


def audit(
    X: Any,
    y: Any,
    *,
    width: int,
    bias: float,
    lr: float | None = None,
    steps: int = 200,
    seed: int = 0,
    init: str = "standard",
    method: str = "auto",
    X_test: Any = None,
    y_test: Any = None,
    constants: dict[str, float] | None = None,
    shift_labels: bool = True,
    record_every: int | None = None,
    progress: bool = False,
) -> AuditResult:
    r"""Train a :class:`ShallowReLU` on ``(X, y)`` and audit P1's claims on the run.

    Parameters
    ----------
    width, bias, init, seed
        The network (``bias`` is :math:`B`).
    lr : float, optional
        Step size; default :math:`1/\lambda_{\max}(H(0))` of the empirical NTK at initialization.
    steps : int
        GD steps.
    method : {"auto", "dense", "sparse", "kernel"}
        Training method (identical iterates; ``"auto"`` picks sparse when it pays).
    X_test, y_test : arrays, optional
        A test split for the generalization row.
    constants : dict, optional
        Constants of the reconstructed bounds: ``active`` (Lemma 3.6), ``flip`` (Lemma 3.3), ``movement``
        (Lemma A.8); defaults in ``DEFAULT_CONSTANTS``. Values are meaningful up to constants only.
    shift_labels : bool
        Also train on :math:`y + c\mathbf 1` with the smallest :math:`c` putting the labels in the region R
        (Remark 3.13) and compare rates.
    record_every : int, optional
        Check whether the residual :math:`f(t) - y` lies in R every this many steps (default: 50 checks).
    """
    X = check_matrix(X, "X", dtype=np.float64, min_rows=2)
    y = check_vector(y, "y", length=X.shape[0], dtype=np.float64)
    width = check_int(width, "width", minimum=1)
    bias = check_float(bias, "bias", minimum=0.0)
    steps = check_int(steps, "steps", minimum=2)
    method = check_choice(method, "method", METHODS)
    const = DEFAULT_CONSTANTS | (constants or {})
    unknown = set(const) - set(DEFAULT_CONSTANTS)
    if unknown:
        raise ValueError(f"constants: expected keys among {sorted(DEFAULT_CONSTANTS)}, got {sorted(unknown)}")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test, y_test: give both or neither")
    n, dim = X.shape
    norms = np.linalg.norm(X, axis=1)
    unit = bool(np.abs(norms - 1).max() <= 1e-6)
    every = record_every or max(1, steps // 50)

    H = bias_ntk(X, bias)
    lam = lambda_min(H)
    net = ShallowReLU(dim, width, bias, init=init, seed=seed)
    if lr is None:
        lr = theory.linearized_lr(empirical_ntk(net, X))
    lr = check_float(lr, "lr", positive=True)
    C = theory.region_matrix(X, bias) if unit else None

    def run(targets: np.ndarray) -> tuple[History, list[tuple[int, bool]], float, ShallowReLU]:
        model = net.copy()
        checks: list[tuple[int, bool]] = []

        def record(t: int, m: ShallowReLU, h: History) -> None:
            if C is not None and (t % every == 0 or t == steps):
                r = m.predict(X).astype(np.float64) - targets
                checks.append((t, bool(r @ C @ r >= -1e-12 * np.abs(C).max() * (r @ r))))

        history = train(model, X, targets, lr=lr, steps=steps, method=method, callback=record, progress=progress)
        return history, checks, math.sqrt(2 * history.loss[0]), model

    history, checks, err0, trained = run(y)
    rows: list[Row] = []
    m = width
    expected0 = float(np.mean(m * theory.active_probability(bias, norms)))
    rows.append(Row("active neurons per input at init = m·Φ̄(B/‖x‖) (mean over inputs)", "P1 §3 (exact)",
                    float(history.active_mean[0]), expected0, "equals"))
    rows.append(Row("active neurons per input stay O(m·e^{-B²/2}) through training (max over inputs and t)",
                    "P1 Lemma 3.6", float(history.active_max.max()), const["active"] * m * theory.active_bound(bias),
                    "upper bound", f"c = {const['active']:g}", "up to constants"))
    rows.append(Row("sparsity persists: mean active per input, last / first iterate", "P1 Lemma 3.6, Fig. 1",
                    float(history.active_mean[-1] / max(history.active_mean[0], 1e-300)), 1.0, "equals"))
    R_w, R_b = float(history.movement_w.max()), float(history.movement_b.max())
    flip_frac = float(history.flips.max()) / (n * m)
    strip = float(np.mean(theory.flip_probability(bias, R_w, R_b, np.where(norms > 0, norms, 1.0))))
    rows.append(Row("fraction of pairs (r, i) flipped ≤ exact strip probability at the observed movement",
                    "P1 Lemma 3.3 (proof)", flip_frac, strip, "upper bound", "",
                    "strip |w·x − B| ≤ R_w‖x‖ + R_b, R at its maximum over training"))
    R = max(R_w, R_b)
    rows.append(Row("flip probability ≤ c·R·e^{-B²/2}", "P1 Lemma 3.3", flip_frac,
                    theory.flip_bound(bias, R, const["flip"]), "upper bound", f"c = {const['flip']:g}",
                    "up to constants" + ("" if bias * R <= 1 else f"; R = {R:.3g} > 1/B: outside the lemma's range")))
    rows.append(Row("earlier flip bound c·min(R, e^{-B²/2})", "before P1", flip_frac,
                    theory.flip_bound_previous(bias, R, const["flip"]), "upper bound", f"c = {const['flip']:g}",
                    "up to constants"))
    move = theory.movement_bound(n, err0, m, lam, const["movement"]) if lam > 0 else math.inf
    for name, value in (("R_w = max_r ‖w_r(t) − w_r(0)‖", R_w), ("R_b = max_r |b_r(t) − b_r(0)|", R_b)):
        rows.append(Row(f"{name} ≤ C√n‖f(0)−y‖/(√m λ)", "P1 Lemma A.8", value, move, "upper bound",
                        f"C = {const['movement']:g}", "up to constants"))
    rate = theory.fitted_rate(history.loss)
    guaranteed = theory.convergence_rate(lr, max(lam, 0.0))
    rows.append(Row("linear convergence: fitted rate per step ≥ ηλ/4", "P1 Theorem 3.1", rate, guaranteed,
                    "lower bound", "", f"λ = λ_min(H∞) = {lam:.4g}, η = {lr:.4g}"))
    grid = np.unique(np.concatenate([np.linspace(0.0, max(bias, 1.0), 5), [bias]]))
    lams = theory.lambda_curve(X, grid)
    positive = lams > 0
    lam0 = theory.fit_lambda0(grid[positive], lams[positive]) if positive.sum() >= 1 else math.nan
    rows.append(Row("λ(B) = λ_min(H∞) follows λ₀·e^{-B²/2}", "P1 assumption (reconstructed)", lam,
                    lam0 * math.exp(-bias * bias / 2), "equals", f"λ₀ = {lam0:.4g} fitted on B ∈ "
                    f"[{grid[0]:g}, {grid[-1]:g}]", "up to constants"))
    series: dict[str, Any] = {"lambda_grid": grid.tolist(), "lambda_values": lams.tolist(), "lambda0": lam0,
                              "lam": lam, "lr": lr, "initial_error": err0}
    if unit:
        restricted = theory.restricted_lambda_min(X, bias, H=H)
        rows.append(Row("restricted least eigenvalue over R ≥ equation (3)", "P1 Theorem 3.12", restricted,
                        theory.restricted_lambda_bound(X, bias), "lower bound", "",
                        f"δ = {theory.separation(X):.4g}; unrestricted λ_min = {lam:.4g}"))
        inside = np.mean([ok for _, ok in checks]) if checks else math.nan
        rows.append(Row("residual f(t) − y stays in R (fraction of checked iterates)", "P1 Def. 3.11, Thm 3.12",
                        float(inside), 1.0, "equals", "", f"checked every {every} steps"))
        series["region_checks"] = checks
        if shift_labels:
            c = theory.label_shift(X, y, bias)
            if c > 0:
                shifted, shifted_checks, _, _ = run(y + c)
            else:  # the labels are already in R: the shifted run is the unshifted one
                shifted, shifted_checks = history, checks
            inside_s = np.mean([ok for _, ok in shifted_checks]) if shifted_checks else math.nan
            why = ("Remark 3.13 puts the labels in R; the residual starts at −(y + c) only when f(0) = 0 "
                   "(init='symmetric')" if init != "symmetric" else "f(0) = 0, so the residual starts at −(y + c)")
            rows.append(Row(f"with labels shifted by c = {c:.4g}: residual in R (fraction)", "P1 Remark 3.13",
                            float(inside_s), 1.0, "equals", "", why))
            rows.append(Row("with shifted labels: fitted rate / unshifted fitted rate", "P1 Remark 3.13",
                            theory.fitted_rate(shifted.loss), rate, "equals", "",
                            f"rates {theory.fitted_rate(shifted.loss):.4g} vs {rate:.4g} per step"))
            series["shifted_loss"] = shifted.loss.tolist()
            series["label_shift"] = c
    else:
        rows.append(Row("Theorem 3.12 rows skipped: X does not have unit rows", "P1 Theorem 3.12", math.nan, math.nan,
                        "equals"))
    if X_test is not None:
        X_test = check_matrix(X_test, "X_test", dim=dim, dtype=np.float64)
        y_test = check_vector(y_test, "y_test", length=X_test.shape[0], dtype=np.float64)
        test_loss = float(np.mean((trained.predict(X_test) - y_test) ** 2))
        rows.append(Row("test mean squared error vs complexity √(2yᵀ(H∞)⁻¹y/n)", "P1 Theorem 3.9 (shape only)",
                        test_loss, theory.complexity(X, y, bias, H=H), "trend", "",
                        "the bound adds O(√(log(n/(λδ))/n)) and a width term; compare trends across B, m"))
    config = {"n": n, "dim": dim, "width": width, "bias": bias, "lr": lr, "steps": steps, "seed": seed,
              "init": init, "method": history.method, "constants": const, "unit_rows": unit}
    return AuditResult(config, rows, history, series)


def _sweep_point(config: dict[str, Any], *, X: np.ndarray, y: np.ndarray, lambdas: dict[str, float]) -> dict:
    """One (bias, width) run of :func:`sweep` (a module-level function, so process pools and clusters can run it)."""
    bias, width, steps = config["bias"], config["width"], config["steps"]
    lam = lambdas[repr(bias)]
    net = ShallowReLU(X.shape[1], width, bias, seed=config["seed"])
    step = config["lr"] if config["lr"] is not None else theory.linearized_lr(empirical_ntk(net, X))
    history = train(net, X, y, lr=step, steps=steps, method=config["method"])
    err0 = math.sqrt(2 * history.loss[0])
    return {
        "bias": bias, "width": width, "lr": step, "lambda": lam,
        "active_fraction_init": float(history.active_mean[0] / width),
        "active_fraction_max": float(history.active_max.max() / width),
        "active_bound": theory.active_bound(bias),
        "R_w": float(history.movement_w.max()), "R_b": float(history.movement_b.max()),
        "movement_bound": theory.movement_bound(X.shape[0], err0, width, lam) if lam > 0 else math.inf,
        "flip_fraction": float(history.flips.max() / (X.shape[0] * width)),
        "rate": theory.fitted_rate(history.loss), "rate_bound": theory.convergence_rate(step, max(lam, 0)),
        "final_loss": float(history.loss[-1]),
    }


def _fingerprint(*arrays: np.ndarray) -> str:
    """A hash of the data, so that result files of a sweep are never reused for other data."""
    digest = hashlib.sha256()
    for arr in arrays:
        digest.update(str(arr.shape).encode())
        digest.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def sweep(
    X: Any,
    y: Any,
    *,
    biases: Any,
    widths: Any,
    steps: int = 100,
    lr: float | None = None,
    seed: int = 0,
    method: str = "auto",
    progress: bool | Callable[[int, int, dict, dict], None] = False,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> dict[str, Any]:
    r"""Audit every (bias, width) pair and fit the trends the theory predicts.

    Returns a dict with ``rows`` (one per pair: active fraction at init and its maximum over training, R_w, R_b,
    flip fraction, fitted rate, λ(B), the Lemma A.8 bound) and ``slopes``: the least-squares slope of
    :math:`\log(\text{active fraction})` against :math:`B^2/2` (P1: about −1, since
    :math:`\bar\Phi(B) \approx e^{-B^2/2}/(B\sqrt{2\pi})`) and of :math:`\log R_w`, :math:`\log R_b` against
    :math:`\log m` at each bias (Lemma A.8: −1/2).

    The pairs run through :func:`sparsentk.run_grid`: with ``out`` each pair's result is a file there and an
    interrupted sweep resumes where it stopped; ``workers`` or ``executor`` run pairs in parallel. ``progress`` is
    ``True`` (print a line per pair) or a callable ``progress(done, total, config, record)``.
    A pair whose run fails (for example :class:`~sparsentk.TrainingDiverged`) raises after the others finished.
    """
    X = check_matrix(X, "X", dtype=np.float64, min_rows=2)
    y = check_vector(y, "y", length=X.shape[0], dtype=np.float64)
    biases = [check_float(b, "biases", minimum=0.0) for b in np.atleast_1d(biases).tolist()]
    widths = [check_int(w, "widths", minimum=1) for w in np.atleast_1d(widths).tolist()]  # 1.5 is refused
    if not biases or not widths:
        raise ValueError(f"{'biases' if not biases else 'widths'}: expected at least one value, got none")
    steps = check_int(steps, "steps", minimum=0)
    if lr is not None:
        lr = check_float(lr, "lr", positive=True)
    lambdas = {repr(b): lambda_min(bias_ntk(X, b)) for b in biases}
    data = _fingerprint(X, y)
    grid = [{"bias": b, "width": w, "steps": steps, "lr": lr, "seed": seed, "method": method, "data": data}
            for b in biases for w in widths]

    def report(done: int, total: int, config: dict, record: dict) -> None:
        if callable(progress):
            progress(done, total, config, record)
        elif progress and record["status"] == "done":
            print(f"sweep {done}/{total}: B={config['bias']:g}, m={config['width']}: "
                  f"rate {record['result']['rate']:.4g}")

    result = run_grid(partial(_sweep_point, X=X, y=y, lambdas=lambdas), grid, out, executor=executor,
                      workers=workers, progress=report)
    if result.failed:
        first = result.failed[0]
        raise RuntimeError(f"sweep: {len(result.failed)} of {len(grid)} runs failed; the first (B = "
                           f"{first['config']['bias']:g}, width {first['config']['width']}): "
                           f"{first['error']['message']}")
    rows = result.results
    slopes: dict[str, Any] = {}
    if len(biases) >= 2:
        b2 = np.array([r["bias"] ** 2 / 2 for r in rows])
        frac = np.array([r["active_fraction_init"] for r in rows])
        keep = frac > 0
        if keep.sum() >= 2 and len(set(b2[keep])) >= 2:
            slopes["log_active_fraction_vs_B2_over_2"] = float(np.polyfit(b2[keep], np.log(frac[keep]), 1)[0])
    if len(widths) >= 2:
        for key in ("R_w", "R_b"):
            per_bias = {}
            for bias in biases:
                sub = [r for r in rows if r["bias"] == bias and r[key] > 0]
                if len(sub) >= 2:
                    per_bias[str(bias)] = float(np.polyfit(np.log([r["width"] for r in sub]),
                                                           np.log([r[key] for r in sub]), 1)[0])
            slopes[f"log_{key}_vs_log_width"] = per_bias
    return {"rows": rows, "slopes": slopes, "config": {"biases": biases, "widths": widths, "steps": steps,
                                                        "seed": seed, "n": X.shape[0], "dim": X.shape[1]}}
