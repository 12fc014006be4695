r"""P2's conditioning study: gradient angles and the NTK condition number against depth, and what a bias does.

Liu, Bi, Hui, Liu, arXiv 2305.08813 (P2); paper-notes §5. Four parts, every one at infinite width
(:func:`sparsentk.deep_ntk`) and, where P2 measured, next to finite networks of width 512
(:class:`sparsentk.DeepReLU`, exact :func:`sparsentk.empirical_ntk`, several seeds through
:func:`sparsentk.run_grid`):

- ``angle_map`` (P2 Fig. 1): the gradient angle :math:`\varphi` against the input angle :math:`\theta_{in}` for
  several depths (Lemma 3.1, :func:`sparsentk.theory.gradient_angle_relu`, checked against the kernel of pairs of
  unit vectors), the linear diagonal :math:`\varphi = \theta_{in}`, the crossover angles, width-512 networks, and the
  map at a fixed depth for each bias.
- ``depth`` (P2 Fig. 3): the minimum pairwise gradient angle and :math:`\kappa = \lambda_{\max}/\lambda_{\min}` for
  depths L = 0…10, ReLU and linear, with all layers trained and with the first layer only (P2 Thm 4.2), on P2's
  synthetic set (points from N(0, I₅), raw) and on images (MNIST, or scikit-learn's digits offline; raw pixel rows;
  κ per batch of 512 averaged over the batches, the minimum angle over the pairs within the batches). P2's network
  has no biases (``train_bias=False``).
- ``bias`` (our extension): the same curves for B ∈ {0, 0.5, 1, 2} on unit rows (the variance-preserving
  normalization needs them), infinite and finite width, and where the finite networks leave the infinite-width
  kernel: the first depth from which most inputs have an NTK diagonal off by more than 50 %
  (:math:`|K_m(x,x)/K_\infty(x,x) - 1| > 1/2`; an input with no active unit in some layer counts), against the
  predicted reliable depth :math:`L^* = \log(m/2)/(2\log\chi_1)` (:func:`sparsentk.theory.reliable_depth`). The
  mean :math:`|\cos\varphi_m - \cos\varphi_\infty|` over pairs of live inputs is recorded too.
- ``limits`` (infinite width only): :math:`\varphi` at depths up to 10⁴ against :math:`\arccos(1/4)` (Thm 3.5),
  κ of n unit points against (n+3)/3 and P2's printed (n+4)/3 (Thm 4.3), κ and the angles at B > 0 at large depth
  (φ → 90°, κ → 1), and an example where κ rises with depth when every layer is trained.

Angles are in degrees in the result; the claims rows and the report section are in
:mod:`sparsentk.experiments.conditioning_report`. A singular kernel (e.g. the linear network with more rows than input
dimensions: its NTK is a multiple of the Gram matrix) has κ = ∞, written ``null`` in JSON.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

import sparsentk as snt
from sparsentk.experiments.mnist_sparsity import resolve_data

REGIMES = {"all": None, "first": [1]}
ACTIVATIONS = ("relu", "linear")
FINITE_KEYS = ("kappa", "min_angle", "mean_angle", "deviation", "diag_off", "dead")


# ------------------------------------------------------------------------------------------------ data
@functools.lru_cache(maxsize=8)
def _rows(kind: str, n: int, dim: int, seed: int, data_dir: str | None, batch_size: int) -> tuple[np.ndarray, ...]:
    """The batches of one data set (a tuple of row arrays; cached per process).

    ``synthetic``: one batch of n raw points from N(0, I_dim) (P2); ``unit``: the same points normalized (the bias
    axis); ``mnist`` / ``digits``: n random training images (pixels in [0, 1]), cut into batches of ``batch_size``.
    """
    rng = np.random.default_rng(seed)
    if kind in ("synthetic", "unit"):
        X = rng.standard_normal((n, dim))
        if kind == "unit":
            X /= np.linalg.norm(X, axis=1, keepdims=True)
        return (X,)
    if kind == "mnist":
        X, _ = snt.data.mnist(data_dir, split="train", download=False)
    elif kind == "digits":
        from sklearn.datasets import load_digits

        X = load_digits().data / 16.0
    else:
        raise ValueError(f"data: expected 'synthetic', 'unit', 'mnist' or 'digits', got {kind!r}")
    X = np.asarray(X, dtype=np.float64)
    X = X[X.any(axis=1)]  # a blank image has no angle
    if n > len(X):
        raise ValueError(f"image_batches: {n} images requested, the {kind} training set has {len(X)}")
    X = X[rng.permutation(len(X))[:n]]
    return tuple(X[s : s + batch_size] for s in range(0, n, batch_size))


def _batches(spec: dict[str, Any]) -> tuple[np.ndarray, ...]:
    return _rows(spec["kind"], spec["n"], spec["dim"], spec["seed"], spec["data_dir"], spec["batch_size"])


# ------------------------------------------------------------------------------------------------ measures
def _kappa(K: np.ndarray) -> float:
    """λ_max/λ_min, ``inf`` when the kernel is numerically singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return snt.condition_number(K)


def _angles(K: np.ndarray) -> np.ndarray:
    return np.degrees(snt.gradient_angles(K))


def _cosines(K: np.ndarray) -> np.ndarray:
    d = 1.0 / np.sqrt(np.diagonal(K))
    return K * d[:, None] * d[None, :]


def _measure(K: np.ndarray) -> dict[str, float]:
    """κ, the smallest and the mean pairwise gradient angle (degrees) of one kernel matrix.

    A finite network can leave an input with no active unit in some layer (likely when B > 0): its gradient is 0,
    the kernel singular (κ = ∞), and the input has no angle; such ``dead`` inputs are counted and left out of the
    angles.
    """
    alive = np.diagonal(K) > 0
    dead = int((~alive).sum())
    if dead:
        K = K[np.ix_(alive, alive)]
    if len(K) < 2:
        return {"kappa": math.inf, "min_angle": math.nan, "mean_angle": math.nan, "dead": dead}
    phi = _angles(K)
    off = ~np.eye(len(K), dtype=bool)
    return {"kappa": math.inf if dead else _kappa(K), "min_angle": float(snt.min_angle(phi)),
            "mean_angle": float(phi[off].mean()), "dead": dead}


def _summary(per_batch: list[dict[str, float]]) -> dict[str, float]:
    """Over batches: κ averaged (P2), the smallest angle, the mean angle averaged, dead inputs summed."""
    kappas = [m["kappa"] for m in per_batch]
    mins = [m["min_angle"] for m in per_batch if math.isfinite(m["min_angle"])]
    means = [m["mean_angle"] for m in per_batch if math.isfinite(m["mean_angle"])]
    return {"kappa": float(np.mean(kappas)) if all(map(math.isfinite, kappas)) else math.inf,
            "min_angle": min(mins) if mins else math.nan, "mean_angle": float(np.mean(means)) if means else math.nan,
            "dead": int(sum(m["dead"] for m in per_batch))}


def _finite_mean(values: Sequence[float]) -> float:
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else math.nan


def finite_point(config: dict[str, Any]) -> dict[str, Any]:
    """One width-m network (data set, activation, bias, depth, seed) in each training regime: κ and angles of its
    exact NTK per batch, summarized, and its distance from the infinite-width kernel (mean |Δcos φ| over the pairs
    of live inputs). The unit of :func:`sparsentk.run_grid` (a module-level function of one JSON configuration)."""
    c = config
    results: dict[str, list] = {regime: [] for regime in c["regimes"]}
    deviations: dict[str, list] = {regime: [] for regime in c["regimes"]}
    diagonals: dict[str, list] = {regime: [] for regime in c["regimes"]}
    for k, X in enumerate(_batches(c["data"])):
        net = snt.DeepReLU(X.shape[1], c["width"], c["depth"], c["bias"], activation=c["activation"],
                           train_bias=c["train_bias"], seed=c["seed"] * 1000 + k)
        for regime in c["regimes"]:
            K = snt.empirical_ntk(net, X, layers=REGIMES[regime])
            K_inf = snt.deep_ntk(X, c["depth"], c["bias"], activation=c["activation"], train_bias=c["train_bias"],
                                 layers=REGIMES[regime])
            results[regime].append(_measure(K))
            alive = np.diagonal(K) > 0
            off = ~np.eye(int(alive.sum()), dtype=bool)
            gap = np.abs(_cosines(K[np.ix_(alive, alive)]) - _cosines(K_inf[np.ix_(alive, alive)]))[off]
            deviations[regime].append(float(gap.mean()) if gap.size else math.nan)
            diagonals[regime].append(float((np.abs(np.diagonal(K) / np.diagonal(K_inf) - 1.0) > 0.5).mean()))
    return {regime: _summary(results[regime]) | {"deviation": _finite_mean(deviations[regime]),
                                                 "diag_off": float(np.mean(diagonals[regime]))}
            for regime in c["regimes"]}


def _infinite(batches: Sequence[np.ndarray], depth: int, bias: float, activation: str, train_bias: bool,
              regime: str) -> dict[str, float]:
    return _summary([_measure(snt.deep_ntk(X, depth, bias, activation=activation, train_bias=train_bias,
                                           layers=REGIMES[regime])) for X in batches])


# ------------------------------------------------------------------------------------------------ parts
def _angle_map(cfg: dict, say: Callable[[str], None]) -> dict[str, Any]:
    theta = np.linspace(0.0, 180.0, cfg["angle_points"])
    rad = np.radians(theta)
    circle = np.column_stack([np.cos(rad), np.sin(rad)])  # row 0 is the reference direction (θ = 0)
    phi_theory, phi_kernel, phi_finite, crossover = {}, {}, {}, {}
    worst = 0.0
    for depth in cfg["angle_depths"]:
        with np.errstate(divide="ignore"):  # θ_in = 180°: log(1 − θ/π) = −∞ is exact there
            phi_theory[str(depth)] = np.degrees(snt.theory.gradient_angle_relu(rad, depth)).tolist()
        K = snt.deep_ntk(circle, depth, 0.0, train_bias=False)
        phi_kernel[str(depth)] = _angles(K)[0].tolist()
        worst = max(worst, float(np.abs(np.array(phi_kernel[str(depth)]) - phi_theory[str(depth)]).max()))
        crossover[str(depth)] = math.degrees(snt.theory.crossover_angle(depth))
        runs = [_angles(snt.empirical_ntk(snt.DeepReLU(2, cfg["width"], depth, 0.0, train_bias=False, seed=s),
                                          circle))[0] for s in cfg["seeds"][: cfg["angle_seeds"]]]
        phi_finite[str(depth)] = np.mean(runs, axis=0).tolist()
    phi_bias = {}
    for bias in cfg["biases"]:
        K = snt.deep_ntk(circle, cfg["bias_angle_depth"], bias, train_bias=cfg["bias_train_bias"])
        phi_bias[f"{bias:g}"] = _angles(K)[0].tolist()
    say("conditioning: angle map (P2 Fig. 1)")
    return {"theta": theta.tolist(), "phi_theory": phi_theory, "phi_kernel": phi_kernel, "phi_finite": phi_finite,
            "finite_seeds": len(cfg["seeds"][: cfg["angle_seeds"]]), "crossover": crossover,
            "kernel_vs_lemma_max_deg": worst, "phi_bias": phi_bias, "limit": math.degrees(snt.theory.angle_limit())}


def _data_specs(cfg: dict) -> dict[str, dict[str, Any]]:
    specs = {"synthetic": {"kind": "synthetic", "n": cfg["synthetic_n"], "dim": cfg["synthetic_dim"],
                           "seed": cfg["seed"], "data_dir": None, "batch_size": cfg["synthetic_n"]}}
    if cfg["images"] != "none":
        specs["images"] = {"kind": cfg["images"], "n": cfg["image_batches"] * cfg["batch_size"], "dim": 0,
                           "seed": cfg["seed"], "data_dir": cfg["data_dir"], "batch_size": cfg["batch_size"]}
    return specs


def _grid(cfg: dict, specs: dict) -> list[dict[str, Any]]:
    grid = []
    for name, spec in specs.items():
        for activation in ACTIVATIONS:
            for depth in cfg["finite_depths"]:
                for seed in cfg["seeds"]:
                    grid.append({"part": "depth", "set": name, "data": spec, "activation": activation, "bias": 0.0,
                                 "train_bias": False, "depth": depth, "seed": seed, "width": cfg["width"],
                                 "regimes": list(REGIMES)})
    unit = {"kind": "unit", "n": cfg["bias_n"], "dim": cfg["synthetic_dim"], "seed": cfg["seed"], "data_dir": None,
            "batch_size": cfg["bias_n"]}
    for bias in cfg["biases"]:
        for depth in cfg["finite_depths"]:
            for seed in cfg["seeds"]:
                grid.append({"part": "bias", "set": "unit", "data": unit, "activation": "relu", "bias": bias,
                             "train_bias": cfg["bias_train_bias"], "depth": depth, "seed": seed,
                             "width": cfg["width"], "regimes": ["all"]})
    return grid


def _collect(values: list[dict], key: str) -> list[list[float]]:
    """Per depth, the list over seeds (``None`` for ∞)."""
    return [[None if not math.isfinite(v[key]) else v[key] for v in per_depth] for per_depth in values]


def _depth_part(cfg: dict, specs: dict, finite: dict, say: Callable[[str], None]) -> dict[str, Any]:
    out = {}
    for name, spec in specs.items():
        batches = _batches(spec)
        gram = [_measure(snt.deep_ntk(X, 0, 0.0, train_bias=False)) for X in batches]
        entry: dict[str, Any] = {
            "kind": spec["kind"], "rows": int(sum(len(X) for X in batches)), "batches": len(batches),
            "batch_size": len(batches[0]), "dim": int(batches[0].shape[1]),
            "gram_kappa": _summary(gram)["kappa"], "input_min_angle": _summary(gram)["min_angle"],
            "infinite": {}, "finite": {}}
        for activation in ACTIVATIONS:
            entry["infinite"][activation], entry["finite"][activation] = {}, {}
            for regime in REGIMES:
                rows = [_infinite(batches, d, 0.0, activation, False, regime) for d in cfg["depths"]]
                entry["infinite"][activation][regime] = {k: [r[k] for r in rows]
                                                         for k in ("kappa", "min_angle", "mean_angle")}
                per_depth = [[finite["depth", name, activation, 0.0, d, s][regime] for s in cfg["seeds"]]
                             for d in cfg["finite_depths"]]
                entry["finite"][activation][regime] = {k: _collect(per_depth, k) for k in FINITE_KEYS}
        say(f"conditioning: depth curves on the {name} set")
        out[name] = entry
    return out


def _bias_part(cfg: dict, finite: dict, say: Callable[[str], None]) -> dict[str, Any]:
    unit = _rows("unit", cfg["bias_n"], cfg["synthetic_dim"], cfg["seed"], None, cfg["bias_n"])
    out: dict[str, Any] = {"n": cfg["bias_n"], "dim": cfg["synthetic_dim"], "train_bias": cfg["bias_train_bias"],
                           "per_bias": {}}
    for bias in cfg["biases"]:
        rows = [_infinite(unit, d, bias, "relu", cfg["bias_train_bias"], "all") for d in cfg["depths"]]
        per_depth = [[finite["bias", "unit", "relu", bias, d, s]["all"] for s in cfg["seeds"]]
                     for d in cfg["finite_depths"]]
        diag = [float(np.mean([s["diag_off"] for s in seeds])) for seeds in per_depth]
        out["per_bias"][f"{bias:g}"] = {
            "chi1": snt.theory.chi1(bias), "fixed_point": snt.theory.fixed_point_correlation(bias),
            "reliable_depth": snt.theory.reliable_depth(bias, cfg["width"]),
            "infinite": {k: [r[k] for r in rows] for k in ("kappa", "min_angle", "mean_angle")},
            "finite": {k: _collect(per_depth, k) for k in FINITE_KEYS},
            "diag_off": diag,
            "parting_depth": _parting_depth(cfg["finite_depths"], diag, cfg["part_threshold"])}
    say("conditioning: bias axis")
    return out


def _parting_depth(depths: Sequence[int], diag_off: Sequence[float], threshold: float) -> int | None:
    """The first depth from which, at that depth and every deeper one, more than the fraction ``threshold`` of the
    inputs (mean over seeds) have a finite-width NTK diagonal off the infinite-width one by more than 50 %;
    ``None`` if that never happens."""
    for k in range(len(depths)):
        if all(e > threshold for e in diag_off[k:]):
            return int(depths[k])
    return None


def _limits(cfg: dict, say: Callable[[str], None]) -> dict[str, Any]:
    thetas = cfg["limit_thetas"]
    rad = np.radians([0.0, *thetas])
    circle = np.column_stack([np.cos(rad), np.sin(rad)])
    phi: dict[str, dict[str, float]] = {}
    for depth in cfg["limit_depths"]:
        K = snt.deep_ntk(circle, depth, 0.0, train_bias=False)  # checked against Lemma 3.1 in the angle map
        kernel = _angles(K)[0, 1:]
        phi[str(depth)] = {f"{t:g}": {"kernel": float(k)} for t, k in zip(thetas, kernel, strict=True)}
    kappa: dict[str, dict[str, Any]] = {}
    for n in cfg["limit_n"]:
        X = _rows("unit", n, cfg["synthetic_dim"], cfg["seed"] + 1, None, n)[0]
        kappa[str(n)] = {"limit": snt.theory.kappa_limit(n), "printed": snt.theory.kappa_limit(n, printed=True),
                         "by_depth": {str(d): _kappa(snt.deep_ntk(X, d, 0.0, train_bias=False))
                                      for d in cfg["limit_depths"]}}
    unit = _rows("unit", cfg["limit_n"][-1], cfg["synthetic_dim"], cfg["seed"] + 1, None, cfg["limit_n"][-1])[0]
    chaotic: dict[str, dict[str, Any]] = {}
    for bias in cfg["biases"]:
        if bias == 0:
            continue
        chaotic[f"{bias:g}"] = {str(d): _measure(snt.deep_ntk(unit, d, bias, train_bias=cfg["bias_train_bias"]))
                                for d in cfg["bias_limit_depths"]}
    rises = {regime: 0 for regime in REGIMES}
    draws = cfg["rise_draws"]
    # one kernel over all draws; each draw's kernel is its diagonal block (an entry depends only on its pair)
    R = np.vstack([_rows("unit", 5, 10, cfg["seed"] + 100 + k, None, 5)[0] for k in range(draws)])
    for regime in REGIMES:
        K0, K1 = (snt.deep_ntk(R, d, 0.0, train_bias=False, layers=REGIMES[regime]) for d in (0, 1))
        for k in range(draws):
            block = slice(5 * k, 5 * k + 5)
            rises[regime] += int(_kappa(K1[block, block]) > _kappa(K0[block, block]))
    E = np.eye(5, 10)
    orthogonal = {regime: [_kappa(snt.deep_ntk(E, d, 0.0, train_bias=False, layers=REGIMES[regime]))
                           for d in range(4)] for regime in REGIMES}
    say("conditioning: large-depth limits")
    return {"phi": phi, "angle_limit": math.degrees(snt.theory.angle_limit()), "kappa": kappa, "chaotic": chaotic,
            "rise": {"draws": draws, "n": 5, "dim": 10, "rises": rises, "orthogonal": orthogonal}}


# ------------------------------------------------------------------------------------------------ driver
@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """BLAS and numba threads limited to ``threads`` for the block (``None``: left alone)."""
    if threads is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        numba.set_num_threads(before)


def conditioning_study(
    *,
    depths: Sequence[int] = tuple(range(11)),
    finite_depths: Sequence[int] | None = None,
    width: int = 512,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    synthetic_n: int = 2000,
    synthetic_dim: int = 5,
    images: str = "auto",
    data_dir: str | os.PathLike | None = None,
    image_batches: int = 4,
    batch_size: int = 512,
    biases: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    bias_n: int = 500,
    bias_train_bias: bool = False,
    angle_depths: Sequence[int] = (1, 2, 3, 5, 10),
    angle_points: int = 91,
    angle_seeds: int = 3,
    bias_angle_depth: int = 3,
    limit_depths: Sequence[int] = (10, 100, 1000, 10000),
    limit_thetas: Sequence[float] = (10.0, 90.0, 170.0),
    limit_n: Sequence[int] = (5, 20),
    bias_limit_depths: Sequence[int] = (10, 30, 100),
    rise_draws: int = 20,
    part_threshold: float = 0.5,
    seed: int = 0,
    threads: int | None = None,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    r"""P2 Figs. 1 and 3 at infinite and finite width, the bias axis, and the large-depth limits (module docstring).

    Parameters
    ----------
    depths : sequence of int
        Depths of the depth and bias curves (P2: 0…10).
    finite_depths : sequence of int, optional
        The depths at which finite networks are measured (default: ``depths``; a subset saves time).
    width, seeds :
        Width of the finite networks (P2: 512) and their seeds (P2: 5). Batch k of seed s uses the network seeded
        ``1000·s + k``.
    synthetic_n, synthetic_dim :
        P2's synthetic set: ``synthetic_n`` points from N(0, I_dim) (P2: 2000 in ℝ⁵), one batch.
    images, data_dir, image_batches, batch_size :
        ``"mnist"``, ``"digits"``, ``"auto"`` (MNIST when its files are found locally, else digits) or ``"none"``;
        ``image_batches`` random training images × ``batch_size`` (P2: batches of 512).
    biases, bias_n, bias_train_bias :
        The bias axis: thresholds, unit rows (the synthetic points normalized), and whether the biases are trained.
    angle_depths, angle_points, angle_seeds, bias_angle_depth :
        P2 Fig. 1: depths, θ_in grid over [0°, 180°], finite-width seeds, and the depth of the bias panel.
    limit_depths, limit_thetas, limit_n, bias_limit_depths :
        The large-depth checks (infinite width): depths, input angles (degrees), numbers of unit points for κ,
        depths for B > 0.
    rise_draws : int
        Draws of 5 random unit points in ℝ¹⁰ on which κ at depth 1 is compared with depth 0 (does κ rise?).
    part_threshold : float
        Where the finite networks "part ways" with the infinite-width kernel: the fraction of inputs whose NTK
        diagonal is off by more than 50 %, :math:`|K_m(x, x)/K_\infty(x, x) - 1| > 1/2` (dead inputs included),
        exceeds it at that depth and every deeper one. The fluctuations behind
        :func:`sparsentk.theory.reliable_depth` are those of the diagonal (they grow by :math:`\chi_1` per
        layer).
    seed : int
        Seed of the data sets.
    threads : int, optional
        BLAS and numba threads while the study runs in this process (default: left alone). The kernels of the
        quick sizes are small: one thread avoids the threads of tiny products oversubscribing a busy machine (the
        report's quick mode uses 1; ``workers`` parallelizes over networks instead).
    out, workers, executor :
        Passed to :func:`sparsentk.run_grid` for the finite networks (one resumable file per network; ``executor``,
        e.g. a Dask cluster's, runs them instead of ``workers`` local processes).
    callback : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``config``, ``angle_map``, ``depth`` (per set: ``infinite[activation][regime]`` lists over ``depths``,
        ``finite[activation][regime]`` lists over ``finite_depths`` of lists over seeds of ``kappa``,
        ``min_angle``, ``mean_angle`` (degrees), ``deviation``, ``diag_off``, ``dead``; ``gram_kappa``), ``bias``
        (``per_bias``: χ₁, ρ*, ``reliable_depth``, the curves, ``diag_off`` per finite depth, ``parting_depth``),
        ``limits`` (``phi``, ``kappa``, ``chaotic``, ``rise``), ``seconds``.
    """
    depths = _int_list(depths, "depths", minimum=0)
    finite_depths = depths if finite_depths is None else _int_list(finite_depths, "finite_depths", minimum=0)
    seeds = _int_list(seeds, "seeds", minimum=0)
    angle_depths = _int_list(angle_depths, "angle_depths", minimum=1)
    limit_depths = _int_list(limit_depths, "limit_depths", minimum=1)
    limit_n = _int_list(limit_n, "limit_n", minimum=2)
    bias_limit_depths = _int_list(bias_limit_depths, "bias_limit_depths", minimum=1)
    for name, value, low in (("width", width, 1), ("synthetic_n", synthetic_n, 2), ("synthetic_dim", synthetic_dim, 2),
                             ("image_batches", image_batches, 1), ("batch_size", batch_size, 2),
                             ("bias_n", bias_n, 2), ("angle_points", angle_points, 3), ("angle_seeds", angle_seeds, 1),
                             ("bias_angle_depth", bias_angle_depth, 1), ("seed", seed, 0), ("workers", workers, 1),
                             ("rise_draws", rise_draws, 1)):
        _int(value, name, minimum=low)
    if threads is not None:
        threads = _int(threads, "threads", minimum=1)
    with _threads(threads):
        return _study(depths, finite_depths, width, seeds, synthetic_n, synthetic_dim, images, data_dir,
                      image_batches, batch_size, biases, bias_n, bias_train_bias, angle_depths, angle_points,
                      angle_seeds, bias_angle_depth, limit_depths, limit_thetas, limit_n, bias_limit_depths,
                      rise_draws, part_threshold, seed, out, workers, executor, callback)


def _study(depths, finite_depths, width, seeds, synthetic_n, synthetic_dim, images, data_dir, image_batches,
           batch_size, biases, bias_n, bias_train_bias, angle_depths, angle_points, angle_seeds, bias_angle_depth,
           limit_depths, limit_thetas, limit_n, bias_limit_depths, rise_draws, part_threshold, seed, out, workers,
           executor, callback) -> dict[str, Any]:
    """The study with its integer arguments checked (:func:`conditioning_study`)."""
    try:
        biases = [float(b) for b in biases]
        limit_thetas = [float(t) for t in limit_thetas]
    except (TypeError, ValueError):
        raise ValueError(f"biases, limit_thetas: expected sequences of numbers, got {biases!r}, "
                         f"{limit_thetas!r}") from None
    if not biases or any(not math.isfinite(b) or b < 0 for b in biases) or len(set(biases)) != len(biases):
        raise ValueError(f"biases: expected distinct finite thresholds >= 0, got {biases!r}")
    if any(not 0 < t < 180 for t in limit_thetas):
        raise ValueError(f"limit_thetas: expected input angles strictly between 0 and 180 degrees, got "
                         f"{limit_thetas!r}")
    if not isinstance(bias_train_bias, bool):
        raise TypeError(f"bias_train_bias: expected True or False, got {bias_train_bias!r}")
    if not math.isfinite(part_threshold) or part_threshold <= 0:
        raise ValueError(f"part_threshold: expected a positive number, got {part_threshold!r}")
    if images not in ("mnist", "digits", "auto", "none"):
        raise ValueError(f"images: expected 'mnist', 'digits', 'auto' or 'none', got {images!r}")
    if images != "none":
        images = resolve_data(images, data_dir)
    say = callback or (lambda message: None)
    cfg = {"depths": depths, "finite_depths": finite_depths, "width": int(width), "seeds": seeds,
           "synthetic_n": int(synthetic_n), "synthetic_dim": int(synthetic_dim), "images": images,
           "data_dir": None if data_dir is None else os.fspath(data_dir), "image_batches": int(image_batches),
           "batch_size": int(batch_size), "biases": biases, "bias_n": int(bias_n), "bias_train_bias": bias_train_bias,
           "angle_depths": angle_depths, "angle_points": int(angle_points), "angle_seeds": int(angle_seeds),
           "bias_angle_depth": int(bias_angle_depth), "limit_depths": limit_depths, "limit_thetas": limit_thetas,
           "limit_n": limit_n, "bias_limit_depths": bias_limit_depths, "part_threshold": float(part_threshold),
           "rise_draws": int(rise_draws), "seed": int(seed)}
    seconds = {}
    start = time.perf_counter()
    specs = _data_specs(cfg)
    for spec in specs.values():
        _batches(spec)  # data errors (missing files, too few images) before any work
    angle_map = _angle_map(cfg, say)
    seconds["angle_map"] = time.perf_counter() - start

    start = time.perf_counter()
    grid = _grid(cfg, specs)

    def progress(done: int, total: int, config: dict, record: dict) -> None:
        if done % max(1, total // 20) == 0 or done == total:
            say(f"conditioning: finite-width networks {done}/{total}")

    result = snt.run_grid(finite_point, grid, out, executor=executor, workers=workers, progress=progress)
    if result.failed:
        bad = result.failed[0]
        c = bad["config"]
        raise RuntimeError(f"conditioning: the width-{c['width']} network ({c['set']}, {c['activation']}, "
                           f"B = {c['bias']:g}, depth {c['depth']}, seed {c['seed']}) failed: "
                           f"{bad['error']['message']}")
    finite = {(c["part"], c["set"], c["activation"], c["bias"], c["depth"], c["seed"]): r
              for c, r in zip(grid, result.results, strict=True)}
    finite = {k: {regime: {m: ((math.inf if m == "kappa" else math.nan) if v is None else v)
                           for m, v in values.items()}
                  for regime, values in r.items()} for k, r in finite.items()}
    seconds["finite"] = time.perf_counter() - start

    start = time.perf_counter()
    depth_part = _depth_part(cfg, specs, finite, say)
    bias_part = _bias_part(cfg, finite, say)
    seconds["infinite"] = time.perf_counter() - start
    start = time.perf_counter()
    limits = _limits(cfg, say)
    seconds["limits"] = time.perf_counter() - start
    return {"config": cfg, "angle_map": angle_map, "depth": depth_part, "bias": bias_part, "limits": limits,
            "seconds": seconds}


def _int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _int_list(values: Any, name: str, *, minimum: int) -> list[int]:
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of integers, got {values!r}") from None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
            raise ValueError(f"{name}: expected integers >= {minimum}, got {values!r}")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name}: expected at least one value, got none")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct values, got {values!r}")
    return out
