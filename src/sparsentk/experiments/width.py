r"""How wide is wide enough? The smallest width at which GD memorizes n points, against n (P3, paper-notes §6).

For each n, seed and model family, the study finds by bisection on log width the smallest width :math:`d_1^*` at
which full-batch GD with the stable step :math:`\eta = c/\lambda_{\max}(K_0)` drives the relative training loss
:math:`\|f - y\|^2/\|y\|^2` below :math:`\varepsilon` within :math:`T` steps, on nested initializations (width
:math:`d_1` uses the first :math:`d_1` neurons of one large draw, so success is nearly monotone in the width), and
fits :math:`\log d_1^*` and :math:`\log(\text{parameters})` against :math:`\log n` with bootstrap intervals.

Families (``families``):

- ``"a"``: P3's smooth net :math:`V\varphi(Wx)`, GeLU, :math:`W \sim N(0, 1)`, :math:`V \sim N(0, 1/(d_0d_1))`,
  both layers trained (parameters :math:`d_1(d_0 + 1)`);
- ``"b"``: the same with only :math:`V` trained (random features; parameters :math:`d_1`);
- ``"c0"``, ``"c1"``, ``"c2"``: P1's sparse ReLU network :math:`d_1^{-1/2}\sum_r a_r\,\mathrm{relu}(w_r\cdot x - b_r)`,
  :math:`w_r \sim N(0, I)`, :math:`a_r = \pm 1` fixed, :math:`b_r = B \in \{0, 1, 2\}`, first layer and biases
  trained (parameters :math:`d_1(d_0 + 1)`; arXiv 2301.00327, §3).

Data: unit inputs uniform on the sphere and random labels :math:`\pm 1/\sqrt n` (memorization; P3's
:math:`\|Y\| \le 1`), or a user file (rows normalized, labels scaled to unit norm). Series of input dimensions:
fixed :math:`d_0` and :math:`d_0 = \lceil\sqrt n\rceil` (P3's regime :math:`n \approx d_0^2`).

No-training companions on the same grid: rank and :math:`\sigma_{\min}` of :math:`\varphi(W_0X)` (P3's PL constant
:math:`\mu`), :math:`\lambda_{\min}(K_0)`, and the PL-ball certificate (our reconstruction of P3's condition (9),
**up to constants**): with :math:`\nu = \|J_0\| = \lambda_{\max}(K_0)^{1/2}`, the Jacobian's Lipschitz bound
:math:`\beta = \sigma_{\max}(X)(2\sup|\varphi'| + \|v\|_\infty\sup|\varphi''|)` and :math:`r_0 = \|f_0 - y\|`,

.. math::

    q(d_1) = \frac{4\,\nu\,\beta\,r_0}{\mu^3} \le C
    \quad\text{(GD stays where } \sigma_{\min}(J) \ge \mu/2 \text{ and converges linearly).}

Its width :math:`d_1^{\rm cert}(n)` solving :math:`q = q^*` (a power law in :math:`d_1` fitted per n, :math:`q^*` the
median measured q) is reported only through its slope in n: the constant is unknown.

Every configuration (one bisection, or one companion) runs through :func:`sparsentk.run_grid`: an interrupted study
resumes from its files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

import sparsentk as snt

FAMILIES = ("a", "b", "c0", "c1", "c2")
FAMILY_LABELS = {"a": "(a) smooth, both layers", "b": "(b) last layer only", "c0": "(c) sparse ReLU B=0",
                 "c1": "(c) sparse ReLU B=1", "c2": "(c) sparse ReLU B=2"}
REFERENCE_SLOPES = (1.0, 1.5, 2.0)


# ------------------------------------------------------------------------------------------------ building blocks
def _check_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_float(value: Any, name: str, minimum: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (minimum is not None and value < minimum):
        want = "a positive number" if positive else f"a finite number >= {minimum}"
        raise ValueError(f"{name}: expected {want}, got {value}")
    return value


def bisect_width(succeeds: Callable[[int], bool], lo: int, hi: int, *, ceiling: int | None = None,
                 rtol: float = 0.0) -> int | None:
    r"""Smallest width :math:`w \ge` ``lo`` with ``succeeds(w)``, by bisection on log width.

    ``lo - 1`` is taken as a failure (the counting floor: fewer parameters than points). ``hi`` is tried first; on
    failure it doubles up to ``ceiling`` (``None``: no doubling), and ``None`` is returned when even the ceiling
    fails (censored). The bracket ``(lo - 1, hi]`` then shrinks at the geometric midpoint until ``hi - lo <= 1`` or
    ``hi <= (1 + rtol)·lo``. For a predicate that is monotone in the width and ``rtol = 0`` the answer is exactly the
    smallest succeeding width.
    """
    lo = _check_int(lo, "lo", minimum=1)
    hi = max(_check_int(hi, "hi", minimum=1), lo)
    rtol = _check_float(rtol, "rtol", minimum=0.0)
    while not succeeds(hi):
        if ceiling is None or hi >= ceiling:
            return None
        lo, hi = hi + 1, min(2 * hi, ceiling)
    below = lo - 1  # known (or assumed) failure
    while hi - below > 1 and hi > (1.0 + rtol) * max(below, 1):
        mid = round(math.sqrt(max(below, 1) * hi))
        mid = min(max(mid, below + 1), hi - 1)
        if succeeds(mid):
            hi = mid
        else:
            below = mid
    return hi


def fit_exponent(x: Sequence[float], y: Sequence[float], *, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict[str, Any]:
    r"""Least-squares fit :math:`\log y = s \log x + c` with a case-bootstrap confidence interval for :math:`s`.

    Points are resampled with replacement ``n_boot`` times (resamples with a single distinct ``x`` are skipped);
    the interval is the percentile interval at ``level``. Returns ``slope``, ``intercept``, ``ci`` and ``points``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x, y: expected two 1-D arrays of one length, got shapes {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any() or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x, y: expected finite positive values (a log-log fit)")
    if len(np.unique(x)) < 2:
        return {"slope": math.nan, "intercept": math.nan, "ci": [math.nan, math.nan], "points": len(x)}
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(x), len(x))
        if len(np.unique(lx[pick])) < 2:
            continue
        boots.append(np.polyfit(lx[pick], ly[pick], 1)[0])
    alpha = (1.0 - level) / 2
    ci = [float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))] if boots else [math.nan] * 2
    return {"slope": float(slope), "intercept": float(intercept), "ci": ci, "points": len(x)}


def series_dim(spec: int | str, n: int) -> int:
    """The input dimension of a series: a fixed integer, or ``"sqrt"`` for :math:`\\lceil\\sqrt n\\rceil`."""
    if spec == "sqrt":
        return max(2, math.ceil(math.sqrt(n)))
    return int(spec)


def memorization_data(n: int, dim: int, seed: int, data: str = "sphere") -> tuple[np.ndarray, np.ndarray]:
    r"""Unit inputs on the sphere with random labels :math:`\pm 1/\sqrt n` (:math:`\|y\| = 1`), or the first ``n``
    rows of a data file (rows normalized to unit norm, labels scaled to unit norm; ``dim`` is then ignored)."""
    if data == "sphere":
        X, _ = snt.data.sphere(n, dim, seed=seed)
        rng = np.random.default_rng([seed, n, dim, 13])
        return X, rng.choice(np.array([-1.0, 1.0]), size=n) / math.sqrt(n)
    X, y = snt.data.load(data)
    if n > len(X):
        raise ValueError(f"ns: the data file {data!r} has {len(X)} rows, fewer than n = {n}")
    order = np.random.default_rng(seed).permutation(len(X))[:n]
    X, y = X[order], y[order]
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"data: {data!r} has an all-zero row; unit inputs are needed")
    ny = float(np.linalg.norm(y))
    if ny == 0:
        raise ValueError(f"data: the labels of {data!r} are all zero")
    return X / norms, y / ny


def family_network(family: str, dim: int, width: int, seed: int, max_width: int,
                   activation: str = "gelu") -> snt.TwoLayer:
    """The width-``width`` member of a family's nested initialization (the first ``width`` neurons of a
    ``max_width`` draw)."""
    if family in ("a", "b"):
        return snt.TwoLayer(dim, width, activation=activation, train="both" if family == "a" else "last", seed=seed)
    if family in ("c0", "c1", "c2"):
        bias = float(family[1])
        draw = snt.ShallowReLU(dim, max_width, bias, seed=seed)
        return snt.TwoLayer.from_parameters(draw.W[:width], draw.a[:width] / math.sqrt(width), draw.b[:width],
                                            activation="relu", train="first", train_bias=True)
    raise ValueError(f"families: expected names among {FAMILIES}, got {family!r}")


def counting_floor(family: str, n: int, dim: int) -> int:
    """Smallest width with at least n trained parameters (n for the last-layer family, else ⌈n/(d₀+1)⌉)."""
    return n if family == "b" else max(1, math.ceil(n / (dim + 1)))


def parameter_count(family: str, width: int, dim: int) -> int:
    return width if family == "b" else width * (dim + 1)


class _Reached(Exception):
    """Raised from the training callback when the smallest target is reached (early stop)."""


def run_width(X: np.ndarray, y: np.ndarray, family: str, width: int, *, seed: int, steps: int,
              eps: Sequence[float], lr_scale: float, max_width: int, activation: str = "gelu") -> dict[str, Any]:
    """One GD run at one width: hitting times of every ε (stopped once the smallest is reached) and diagnostics."""
    eps_min = min(eps)
    dim = X.shape[1]
    net = family_network(family, dim, width, seed, max_width, activation)
    K0 = net.ntk(X)
    eig = np.linalg.eigvalsh(K0)
    lr = lr_scale / float(eig[-1])
    seen: dict[str, Any] = {}

    def stop(t: int, _net: Any, history: Any) -> None:
        seen["history"], seen["t"] = history, t
        if history.stats["relative_loss"][t] <= eps_min:
            raise _Reached

    diverged = False
    try:
        snt.train(net, X, y, lr=lr, steps=steps, callback=stop)
    except _Reached:
        pass
    except snt.TrainingDiverged:
        diverged = True
    history, t = seen["history"], seen["t"]
    rel = np.asarray(history.stats["relative_loss"][: t + 1])
    recorded = history.stats["kernel_change"][t]  # training's own value when step t was a kernel checkpoint
    change = float(recorded) if math.isfinite(recorded) else float(np.linalg.norm(net.ntk(X) - K0) / np.linalg.norm(K0))
    return {"width": width, "lr": lr, "lambda_min0": float(eig[0]), "lambda_max0": float(eig[-1]),
            "kappa0": float(eig[-1] / eig[0]) if eig[0] > 0 else math.inf, "steps_run": t,
            "relative_loss": rel[:: max(1, len(rel) // 200)].tolist(), "final_relative_loss": float(rel[-1]),
            "movement_W": float(history.stats["movement_W"][t]), "movement_V": float(history.stats["movement_V"][t]),
            "kernel_change": change, "diverged": diverged,
            "hits": _hits(rel, eps)}


def _hits(rel: np.ndarray, eps: Sequence[float]) -> dict[str, int]:
    """First step at which the relative loss is at most each ε (absent when never)."""
    out = {}
    for e in eps:
        below = np.nonzero(rel <= e)[0]
        if len(below):
            out[_eps_key(e)] = int(below[0])
    return out


def hitting_time(run: dict[str, Any], eps: float) -> int | None:
    """Steps a run needed to reach relative loss ``eps`` (one of the study's ε), or ``None``."""
    return run["hits"].get(_eps_key(eps))


def _eps_key(eps: float) -> str:
    if not 0 < eps < math.inf:
        raise ValueError(f"eps: expected positive targets, got {eps}")
    return f"{eps:g}"


def criterion_key(eps: float, steps: int) -> str:
    return f"eps={_eps_key(eps)},T={steps}"


# ------------------------------------------------------------------------------------------------ grid functions
def bisect_config(config: dict[str, Any]) -> dict[str, Any]:
    """One configuration of the grid: every criterion's smallest width for one (family, series, n, seed)."""
    n, seed, family = config["n"], config["seed"], config["family"]
    dim = series_dim(config["dim"], n)
    X, y = memorization_data(n, dim, seed, config["data"])
    dim = X.shape[1]
    ceiling = config["max_factor"] * n
    runs: dict[int, dict[str, Any]] = {}

    def run(width: int) -> dict[str, Any]:
        if width not in runs:
            runs[width] = run_width(X, y, family, width, seed=seed, steps=max(config["steps"]), eps=config["eps"],
                                    lr_scale=config["lr_scale"], max_width=ceiling, activation=config["activation"])
        return runs[width]

    floor = counting_floor(family, n, dim)
    primary = (config["target"][0], config["target"][1])
    criteria = [primary] + [(e, t) for e in config["eps"] for t in config["steps"] if (e, t) != primary]
    found: dict[str, int | None] = {}
    for eps, steps in criteria:
        def succeeds(width: int, eps: float = eps, steps: int = steps) -> bool:
            hit = hitting_time(run(width), eps)
            return hit is not None and hit <= steps

        found[criterion_key(eps, steps)] = bisect_width(succeeds, floor, max(2 * n, floor), ceiling=ceiling,
                                                        rtol=config["rtol"])
    star = found[criterion_key(*primary)]
    at_star = runs.get(star) if star is not None else None
    return {"dim_value": dim, "floor": floor, "ceiling": ceiling, "d1_star": star, "censored": star is None,
            "params_star": None if star is None else parameter_count(family, star, dim), "by_criterion": found,
            "diagnostics": None if at_star is None else {k: at_star[k] for k in (
                "kappa0", "lambda_min0", "movement_W", "movement_V", "kernel_change", "steps_run", "lr")},
            "runs": [runs[w] for w in sorted(runs)]}


def companion_config(config: dict[str, Any]) -> dict[str, Any]:
    """No-training quantities of family (a)'s initialization at a ladder of widths for one (series, n, seed)."""
    n, seed = config["n"], config["seed"]
    dim = series_dim(config["dim"], n)
    X, y = memorization_data(n, dim, seed, config["data"])
    dim = X.shape[1]
    act = config["activation"]
    d1_bound, d2_bound = snt.TwoLayer(1, 1, activation=act).derivative_bounds
    sigma_x = float(np.linalg.norm(X, 2))
    floor = counting_floor("a", n, dim)
    widths = sorted({round(floor * 2.0**k) for k in range(64) if floor * 2.0**k <= config["max_factor"] * n}
                    | {round(n * f) for f in config["cert_factors"]})
    rows = []
    for width in widths:
        net = snt.TwoLayer(dim, width, activation=act, seed=seed)
        A = net.features(X)
        s = np.linalg.svd(A, compute_uv=False)
        mu = float(s[n - 1]) if len(s) >= n else 0.0
        tol = s[0] * max(A.shape) * np.finfo(np.float64).eps
        eig = np.linalg.eigvalsh(net.ntk(X))
        nu = math.sqrt(max(float(eig[-1]), 0.0))
        beta = sigma_x * (2 * d1_bound + float(np.abs(net.V).max()) * d2_bound)
        r0 = float(np.linalg.norm((A @ net.V.T)[:, 0] - y))  # net.predict(X), from the features at hand
        rows.append({"width": width, "rank": int((s > tol).sum()), "sigma_min": mu, "lambda_min": float(eig[0]),
                     "kappa": float(eig[-1] / eig[0]) if eig[0] > 0 else math.inf, "nu": nu, "beta": beta, "r0": r0,
                     "certificate": 4 * nu * beta * r0 / mu**3 if mu > 0 else math.inf})
    return {"dim_value": dim, "sigma_max_X": sigma_x, "rows": rows}


def _grid_fn(config: dict[str, Any]) -> dict[str, Any]:
    """One grid configuration, on one thread: the matrices are small, and the grid runs configurations side by
    side (``workers``) instead."""
    import numba
    from threadpoolctl import threadpool_limits

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return bisect_config(config) if config["kind"] == "bisect" else companion_config(config)
    finally:
        numba.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------ the study
def width_study(
    *,
    ns: Sequence[int] = (32, 64, 128, 256),
    dims: Sequence[int | str] = (4, 8, "sqrt"),
    families: Sequence[str] = FAMILIES,
    seeds: Sequence[int] = (0, 1, 2),
    eps: Sequence[float] = (1e-1, 1e-2, 1e-3),
    steps: Sequence[int] = (250, 500, 1000),
    target: tuple[float, int] | None = None,
    lr_scale: float = 0.5,
    activation: str = "gelu",
    max_factor: int = 16,
    rtol: float = 0.05,
    cert_factors: Sequence[float] = (2.0, 4.0, 8.0, 16.0),
    companions: bool = True,
    data: str = "sphere",
    n_boot: int = 1000,
    out: str | os.PathLike | None = None,
    executor: Executor | None = None,
    workers: int = 1,
    resume: bool = True,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    r"""Smallest width :math:`d_1^*(n)` at which GD memorizes n points, for several families and input dimensions.

    Parameters
    ----------
    ns : sequence of int
        Numbers of training points.
    dims : sequence of int or "sqrt"
        Input-dimension series: fixed :math:`d_0`, or ``"sqrt"`` for :math:`d_0 = \lceil\sqrt n\rceil`.
    families : sequence of {"a", "b", "c0", "c1", "c2"}
        See the module docstring.
    seeds : sequence of int
        One data set and one nested initialization per seed.
    eps, steps : sequences
        Relative-loss targets and step budgets; every pair gets its own :math:`d_1^*` from the same
        trajectories (each run lasts ``max(steps)`` steps, or until ``min(eps)`` is reached).
    target : (eps, steps), optional
        The primary criterion (fits, plots, claims); default ``(1e-2, max(steps))``.
    lr_scale : float
        :math:`c` in :math:`\eta = c/\lambda_{\max}(K_0)` (loss :math:`\tfrac12\|f - y\|^2`; stable below 2).
    activation : str
        Activation of families a and b (P3: GeLU).
    max_factor : int
        The search doubles the width up to ``max_factor·n``; beyond, :math:`d_1^*` is censored (left out of fits).
    rtol : float
        Bisection stops when the bracket is within this relative width.
    cert_factors : sequence of float
        Widths (multiples of n) at which the certificate is evaluated (with the bisection range's ladder).
    companions : bool
        Compute the no-training companions.
    data : str
        ``"sphere"`` or a data file for :func:`sparsentk.data.load` (then ``dims`` is the file's dimension).
    n_boot : int
        Bootstrap resamples of each exponent fit.
    out : path, optional
        Folder of the per-configuration result files (resumable); ``None`` keeps them in memory.
    executor, workers, resume :
        Passed to :func:`sparsentk.run_grid`.
    callback : callable, optional
        Receives a progress message after each configuration.

    Returns
    -------
    dict
        ``config``, ``records`` (one per bisection), ``companions``, ``fits`` (per family and series: width and
        parameter-count exponents for the primary criterion, and the width exponent per criterion),
        ``certificate_fits``, ``failed``.
    """
    ns = [_check_int(n, "ns", minimum=2) for n in ns]
    seeds = [_check_int(s, "seeds", minimum=0) for s in seeds]
    if not ns or not seeds:
        raise ValueError("ns, seeds: expected at least one value each")
    families = list(families)
    for f in families:
        if f not in FAMILIES:
            raise ValueError(f"families: expected names among {FAMILIES}, got {f!r}")
    dims = [d if d == "sqrt" else _check_int(d, "dims", minimum=1) for d in dims]
    if data != "sphere":
        dims = ["file"]
    eps = sorted({float(e) for e in eps}, reverse=True)
    for e in eps:
        _eps_key(e)
    steps = sorted({_check_int(t, "steps", minimum=1) for t in steps})
    target = (1e-2 if 1e-2 in eps else eps[-1], steps[-1]) if target is None else (float(target[0]), int(target[1]))
    if target[0] not in eps or target[1] not in steps:
        raise ValueError(f"target: expected an (eps, steps) pair from eps={eps} and steps={steps}, got {target}")
    lr_scale = _check_float(lr_scale, "lr_scale", positive=True)
    max_factor = _check_int(max_factor, "max_factor", minimum=2)
    snt.TwoLayer(1, 1, activation=activation)  # validates the name
    common = {"data": data, "activation": activation, "max_factor": max_factor}
    grid = [{"kind": "bisect", "family": f, "dim": d, "n": n, "seed": s, "eps": eps, "steps": steps,
             "target": list(target), "lr_scale": lr_scale, "rtol": rtol, **common}
            for f in families for d in dims for n in ns for s in seeds]
    if companions:
        grid += [{"kind": "companion", "dim": d, "n": n, "seed": s, "cert_factors": list(cert_factors), **common}
                 for d in dims for n in ns for s in seeds]

    def progress(done: int, total: int, config: dict, record: dict) -> None:
        if callback is None:
            return
        what = (f"family {config['family']}" if config["kind"] == "bisect" else "companion")
        status = "" if record["status"] == "done" else " FAILED"
        callback(f"width: {done}/{total} {what}, d0 {config['dim']}, n {config['n']}, seed {config['seed']}"
                 f"{' (reused)' if record.get('reused') else ''}{status}")

    # Largest n first (the longest configurations), so that parallel workers finish together; the records are put
    # back in the grid's order, so nothing downstream (fits, bootstrap draws, files) depends on the schedule.
    order = sorted(range(len(grid)), key=lambda i: (-grid[i]["n"], grid[i]["kind"] == "companion"))
    result = snt.run_grid(_grid_fn, [grid[i] for i in order], out, executor=executor, workers=workers,
                          resume=resume, progress=progress)
    in_order: list[dict[str, Any]] = [{}] * len(grid)
    for i, record in zip(order, result.records, strict=True):
        in_order[i] = record
    result = snt.GridResult(in_order)
    records = [{**r["config"], **r["result"]} for r in result.records
               if r["status"] == "done" and r["config"]["kind"] == "bisect"]
    for r in records:
        r["params_by_criterion"] = {k: None if w is None else parameter_count(r["family"], w, r["dim_value"])
                                    for k, w in r["by_criterion"].items()}
    comps = [{**r["config"], **r["result"]} for r in result.records
             if r["status"] == "done" and r["config"]["kind"] == "companion"]
    failed = [{"config": r["config"], "error": r["error"]["message"] if r["error"] else None}
              for r in result.failed]
    config = {"ns": ns, "dims": dims, "families": families, "seeds": seeds, "eps": eps, "steps": steps,
              "target": list(target), "lr_scale": lr_scale, "activation": activation, "max_factor": max_factor,
              "rtol": rtol, "data": data, "n_boot": n_boot,
              "family_labels": {f: FAMILY_LABELS[f] for f in families},
              "series_labels": {str(d): series_label(d) for d in dims}}
    return {"config": config, "records": records, "companions": comps, "failed": failed,
            "fits": _fits(records, families, dims, eps, steps, target, n_boot),
            "certificate_fits": _certificate_fits(comps, dims, n_boot)}


def series_label(dim: int | str) -> str:
    return {"sqrt": "d0=⌈√n⌉", "file": "data file"}.get(str(dim), f"d0={dim}")


def _fits(records: list[dict], families: list[str], dims: list, eps: list, steps: list, target: tuple,
          n_boot: int) -> dict[str, dict[str, Any]]:
    fits: dict[str, dict[str, Any]] = {}
    for f in families:
        for d in dims:
            rows = [r for r in records if r["family"] == f and r["dim"] == d]
            done = [r for r in rows if r["d1_star"] is not None]
            entry: dict[str, Any] = {"family": f, "dim": d, "censored": len(rows) - len(done), "points": len(done)}
            if len({r["n"] for r in done}) >= 2:
                ns = [r["n"] for r in done]
                entry["width"] = fit_exponent(ns, [r["d1_star"] for r in done], n_boot=n_boot)
                entry["params"] = fit_exponent(ns, [r["params_star"] for r in done], n_boot=n_boot)
            by, by_params = {}, {}
            for e in eps:
                for t in steps:
                    key = criterion_key(e, t)
                    pts = [(r["n"], r["by_criterion"][key], r["dim_value"]) for r in rows
                           if r["by_criterion"].get(key)]
                    if len({p[0] for p in pts}) >= 2:
                        ns_, ws, ds = zip(*pts, strict=True)
                        by[key] = fit_exponent(ns_, ws, n_boot=max(n_boot // 5, 50))
                        by_params[key] = fit_exponent(ns_, [parameter_count(f, w, dd) for w, dd in zip(ws, ds,
                                                                                                     strict=True)],
                                                      n_boot=max(n_boot // 5, 50))
            entry["by_criterion"], entry["params_by_criterion"] = by, by_params
            if "width" not in entry:
                entry["fallback"] = _fallback(entry, "by_criterion")[1]
            fits[f"{f}|{d}"] = entry
    return fits


def _certificate_fits(comps: list[dict], dims: list, n_boot: int) -> dict[str, Any]:
    """Per series: the width at which the certificate ratio q reaches a common level q*, against n.

    Per (n, seed), log q is fitted linearly in log d₁ over the widths ≥ 2n (where μ > 0 is not a small-sample
    accident); q* is the median of every such q of the series (inside the measured range, so the widths are
    interpolated, not extrapolated far). The constant of P3's condition is unknown: only the slope counts.
    """
    out = {}
    for d in dims:
        curves = []
        for c in comps:
            if c["dim"] != d:
                continue
            pts = [(r["width"], r["certificate"]) for r in c["rows"]
                   if r["width"] >= 2 * c["n"] and r["certificate"] is not None and math.isfinite(r["certificate"])
                   and r["certificate"] > 0]
            if len(pts) >= 2:
                curves.append((c["n"], np.log(np.array(pts, dtype=np.float64))))
        if not curves:
            continue
        level = float(np.median(np.concatenate([lp[:, 1] for _, lp in curves])))
        pts = []
        for n, lp in curves:
            slope, icpt = np.polyfit(lp[:, 0], lp[:, 1], 1)
            if slope < 0:
                pts.append((n, math.exp((level - icpt) / slope)))
        if len({p[0] for p in pts}) >= 2:
            out[str(d)] = fit_exponent(*zip(*pts, strict=True), n_boot=n_boot) | {"level": math.exp(level)}
    return out


# ------------------------------------------------------------------------------------------------ presets, claims
def settings(quick: bool = True, *, report: bool = False, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of :func:`width_study` for the CLI's ``--quick``/``--full`` and the report.

    ``--quick`` (the CLI): n up to 256, 3 seeds, every family, the d₀ = ⌈√n⌉ series, T ≤ 1000 steps, ε ≥ 0.01,
    primary target ε = 0.1 within 1000 steps, search up to 8n. The report's quick part is smaller (n up to 128,
    2 seeds, T ≤ 500, search up to 4n) to fit the ``make demo`` budget. ``--full``: n up to 1024, 5 seeds, series
    d₀ = 4, 8 and ⌈√n⌉, T up to 4000, ε down to 1e-3 (primary 1e-2 within 4000 steps), search up to 16n.
    """
    seeds = tuple(seed + k for k in range(2 if (quick and report) else 3 if quick else 5))
    if quick and report:
        return {"ns": (32, 64, 128), "dims": ("sqrt",), "families": FAMILIES, "seeds": seeds,
                "eps": (0.3, 0.1, 0.01), "steps": (250, 500), "target": (0.1, 500), "lr_scale": 1.0,
                "max_factor": 4, "rtol": 0.15, "n_boot": 500, "cert_factors": (2.0, 4.0, 8.0)}
    if quick:
        return {"ns": (32, 64, 128, 256), "dims": ("sqrt",), "families": FAMILIES, "seeds": seeds,
                "eps": (0.3, 0.1, 0.01), "steps": (500, 1000), "target": (0.1, 1000), "lr_scale": 1.0,
                "max_factor": 8, "rtol": 0.15, "n_boot": 1000, "cert_factors": (2.0, 4.0, 8.0)}
    return {"ns": (32, 64, 128, 256, 512, 1024), "dims": (4, 8, "sqrt"), "families": FAMILIES, "seeds": seeds,
            "eps": (0.3, 0.1, 0.01, 0.001), "steps": (1000, 2000, 4000), "target": (0.01, 4000), "lr_scale": 1.0,
            "max_factor": 16, "rtol": 0.05, "n_boot": 2000, "cert_factors": (2.0, 4.0, 8.0, 16.0)}


def _fit_text(fit: dict | None) -> str:
    if not fit or not math.isfinite(fit.get("slope", math.nan)):
        return "no fit (fewer than two n with a finite d₁*)"
    return f"{fit['slope']:.2f} [95 % CI {fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}] over {fit['points']} points"


def _fallback(entry: dict, what: str) -> tuple[dict | None, str | None]:
    """The fit at the smallest ε (then the largest T) that has one, when the primary target has none."""
    table = entry.get(what, {})

    def order(key: str) -> tuple[float, int]:
        eps_text, steps_text = key.split(",T=")
        return float(eps_text.removeprefix("eps=")), -int(steps_text)

    usable = sorted((k for k in table if math.isfinite(table[k]["slope"])), key=order)
    return (table[usable[0]], usable[0]) if usable else (None, None)


def claims(study: dict[str, Any]) -> list[dict[str, str]]:
    """Claims rows (claim, source, measured, verdict) of the width study."""
    cfg, fits = study["config"], study["fits"]
    eps, steps = cfg["target"]
    budget = f"ε = {eps:g}, T = {steps}, c = {cfg['lr_scale']:g}, n ∈ {{{', '.join(map(str, cfg['ns']))}}}"
    rows = []
    series = "sqrt" if "sqrt" in cfg["dims"] else cfg["dims"][0]
    label = cfg["series_labels"][str(series)]
    if "a" in cfg["families"]:
        entry = fits.get(f"a|{series}", {})
        fit = entry.get("params")
        censored = entry.get("censored", 0)
        note = (f"; {censored} of {censored + entry.get('points', 0)} (n, seed) censored above {cfg['max_factor']}n"
                if censored else "")
        if not fit or not math.isfinite(fit["slope"]):
            fit, key = _fallback(entry, "params_by_criterion")
            if key:
                note += (f"; the primary target (ε = {eps:g}) is out of reach of the step budget, so this is the "
                         f"fit at {key}")
        if not fit or not math.isfinite(fit["slope"]):
            verdict = f"not measurable at this step budget ({budget})"
        elif fit["ci"][1] < 2.0:
            verdict = "reproduced (subquadratic)" + (": consistent with 3/2" if fit["ci"][0] <= 1.5 else
                                                      ": below 3/2 (P3 is a sufficient condition)")
        elif fit["ci"][0] > 1.5:
            verdict = "not reproduced (steeper than 3/2)"
        else:
            verdict = "inconclusive (interval contains 3/2 and 2)"
        rows.append({"claim": "GD on both layers of a smooth shallow net memorizes n points with about n^{3/2} "
                              "parameters (earlier work: n²)", "source": "P3 Theorem 3",
                     "measured": f"family (a), {label}: parameter-count exponent {_fit_text(fit)}; {budget}{note}",
                     "verdict": verdict})
    for f in cfg["families"]:
        entry = fits.get(f"{f}|{series}", {})
        fit, where = entry.get("width"), ""
        if not fit or not math.isfinite(fit["slope"]):
            fit, key = _fallback(entry, "by_criterion")
            where = f" (primary target out of reach; fit at {key})" if key else ""
        rows.append({"claim": f"width needed, {cfg['family_labels'][f]}", "source": "P3 §6 protocol; P1 for (c)",
                     "measured": f"{label}: width exponent {_fit_text(fit)}{where}"
                                 + (f"; {entry['censored']} censored at the primary target" if entry.get("censored")
                                    else ""),
                     "verdict": "measured" if fit and math.isfinite(fit["slope"]) else "not measurable"})
    sparse = [f for f in ("c0", "c1", "c2") if f in cfg["families"]]
    if len(sparse) >= 2:
        n_top = max(cfg["ns"])
        means = {}
        for f in sparse:
            vals = [r["d1_star"] for r in study["records"] if r["family"] == f and r["dim"] == series
                    and r["n"] == n_top]
            found = [v for v in vals if v]
            means[f] = (float(np.exp(np.mean(np.log(found)))) if found else None, len(vals) - len(found))
        text = ", ".join(f"B={f[1]}: " + (f"{m:.0f}" if m else "censored") + (f" ({c} censored)" if c and m else "")
                         for f, (m, c) in means.items())
        low, high = means[sparse[0]][0], means[sparse[-1]][0]
        if low and high:
            ratio = high / low
            verdict = (f"yes: B={sparse[-1][1]} needs {ratio:.2f}× the width of B={sparse[0][1]}" if ratio > 1.25
                       else f"no clear change ({ratio:.2f}×)")
        else:
            verdict = ("yes: the largest bias is censored (needs more than the search ceiling)" if low else
                       "not measurable")
        rows.append({"claim": "a larger bias changes the width needed (sparse ReLU, first layer trained)",
                     "source": "P1 (arXiv 2301.00327) width claim",
                     "measured": f"geometric-mean d₁* at n = {n_top} ({label}): {text}", "verdict": verdict})
    cert = study.get("certificate_fits", {}).get(str(series))
    if cert:
        rows.append({"claim": "P3's certificate (PL ball with measured μ, ν, β) asks for a width growing like "
                              "n^s (up to constants)", "source": "P3 condition (9), our reconstruction",
                     "measured": f"{label}: slope in n of the width where q = {cert['level']:.3g} (the median "
                                 f"measured q) {_fit_text(cert)}",
                     "verdict": "measured (only the slope counts)"})
    return rows


def report_blocks(study: dict[str, Any], figures: dict[str, str], quick: bool) -> list[tuple]:
    """Report blocks (h2, p, img, table) of the width study."""
    cfg = study["config"]
    eps, steps = cfg["target"]
    text = (f"Smallest width d₁* at which full-batch GD (η = {cfg['lr_scale']:g}/λ_max(K₀), loss ½‖f − y‖²) brings "
            f"‖f − y‖²/‖y‖² below ε = {eps:g} within T = {steps} steps, by bisection on log width (relative "
            f"tolerance {cfg['rtol']:g}) on nested initializations, between the counting floor and "
            f"{cfg['max_factor']}n (beyond: censored, left out of fits). Unit inputs on the sphere, labels ±1/√n; "
            f"n ∈ {{{', '.join(map(str, cfg['ns']))}}}, seeds {', '.join(map(str, cfg['seeds']))}, series "
            f"{', '.join(cfg['series_labels'].values())}. Families: (a) P3's GeLU net V·φ(Wx), W ~ N(0, 1), "
            f"V ~ N(0, 1/(d₀d₁)), both layers; (b) the same, last layer only; (c) P1's ReLU net d₁^(-1/2)·Σ a_r "
            f"relu(w_r·x − b_r), W and b trained, B ∈ {{0, 1, 2}}. Exponents: least squares on log–log with "
            f"bootstrap 95 % intervals. Other targets ε ∈ {{{', '.join(f'{e:g}' for e in cfg['eps'])}}} and budgets "
            f"T ∈ {{{', '.join(map(str, cfg['steps']))}}} come from the same trajectories (table).")
    if quick:
        text += (" Quick mode: a smaller grid than `sparsentk reproduce width --quick` (n up to 256, 3 seeds) and "
                 "far smaller than --full (n up to 1024, 5 seeds, T up to 4000, ε down to 1e-3); with so few n the "
                 "exponents are rough.")
    lazy_fams = [f for f in ("a", "b") if f in cfg["families"]]
    censored = sum(r["d1_star"] is None for r in study["records"] if r["family"] in lazy_fams)
    kappas = [row["kappa"] for c in study["companions"] for row in c["rows"]
              if row["width"] == max(x["width"] for x in c["rows"]) and row["kappa"] is not None
              and math.isfinite(row["kappa"])]
    if censored and kappas:
        text += (f" Families (a) and (b) are censored at the primary target in {censored} of "
                 f"{sum(r['family'] in lazy_fams for r in study['records'])} runs: at P3's initialization V is small, "
                 f"so the NTK is essentially the random-features kernel AAᵀ, whose condition number at the widest "
                 f"width tried is {min(kappas):.3g}–{max(kappas):.3g} (GeLU's non-zero mean adds a large top "
                 f"eigenvalue); GD with η = c/λ_max needs about κ·log(1/ε)/c steps, so the step budget, not the "
                 f"width, limits them. Their points at the smallest ε (then largest T) that still has a fit are "
                 f"drawn hollow.")
    blocks: list[tuple] = [("h2", "How wide is wide enough? (P3, width against n)"), ("p", text)]
    if "width" in figures:
        blocks.append(("img", figures["width"], "smallest width and parameter count against n, with reference "
                                                "slopes 1, 1.5 and 2"))
    table = []
    for key, entry in study["fits"].items():
        f, d = key.split("|")
        by = entry.get("by_criterion", {})
        table.append([cfg["family_labels"][f], cfg["series_labels"][d], _fit_text(entry.get("width")),
                      _fit_text(entry.get("params")), str(entry.get("censored", 0)),
                      "; ".join(f"{k}: {v['slope']:.2f}" for k, v in by.items() if math.isfinite(v["slope"]))
                      or "–"])
    blocks.append(("table", ["family", "series", "width exponent", "parameter exponent", "censored",
                             "width exponent per (ε, T)"], table, "fitted exponents (primary target, then per target)"))
    diag = []
    for r in study["records"]:
        dg = r.get("diagnostics")
        if dg:
            kappa = dg["kappa0"]
            diag.append([r["family"], cfg["series_labels"][str(r["dim"])], str(r["n"]), str(r["seed"]),
                         str(r["d1_star"]), "∞" if kappa is None or not math.isfinite(kappa) else f"{kappa:.3g}",
                         f"{dg['movement_W']:.3g}", f"{dg['movement_V']:.3g}", f"{dg['kernel_change']:.3g}"])
    blocks += [("p", "Diagnostics at d₁*: condition number of the initial NTK and how far the run moved (relative "
                     "Frobenius change of W, of V and of the NTK at the end of the run): small changes mean a lazy "
                     "run."),
               ("table", ["family", "series", "n", "seed", "d₁*", "κ(K₀)", "ΔW/W₀", "ΔV/V₀", "ΔK/K₀"], diag,
                "diagnostics at d₁* (primary target)")]
    if "companions" in figures:
        blocks.append(("img", figures["companions"], "no-training companions: σ_min of the random features (P3's μ), "
                                                     "λ_min and κ of K₀, and the certificate ratio (up to constants)"))
    return blocks


def report_figures(study: dict[str, Any], out: str | os.PathLike) -> dict[str, str]:
    """Write the study's figures into ``out``; returns their file names."""
    from pathlib import Path

    from sparsentk import plotting, plotting_width

    out = Path(out)
    files = {"width": "width.png"}
    plotting.save(plotting_width.width_exponents(study), out / files["width"])
    if study["companions"]:
        files["companions"] = "width_companions.png"
        plotting.save(plotting_width.width_companions(study), out / files["companions"])
    return files
