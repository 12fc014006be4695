"""P2's training claim: MNIST test accuracy and training loss of bias-free ReLU networks of depth 1 to 12.

Liu & Hui, arXiv 2305.08813 (P2), §5: fully connected ReLU networks of width 512 with 1, 3, 6, 8, 10 and 12 hidden
layers, trained with cross-entropy and SGD (batch 500, learning rate by grid search), reach 95.98 / 97.43 / 97.57 /
97.52 / 97.39 / 97.19 % MNIST test accuracy, and deeper networks drive the training loss down faster.

The network is P2's (paper-notes §5): no biases, all weights N(0, 1), the √2 fan-in (NTK) scaling in every hidden
layer, and a linear head of 10 logits with the same scaling, every layer trained,

.. math::

    h^{(0)} = x,\\quad h^{(l)} = \\mathrm{relu}\\big(\\sqrt{2/m_{l-1}}\\,W^{(l)} h^{(l-1)}\\big),\\quad
    f(x) = \\sqrt{c_{\\mathrm{out}}/m}\\,W^{(L+1)} h^{(L)},\\quad c_{\\mathrm{out}} = 2,

that is :class:`sparsentk.DeepReLU` at bias 0 without bias parameters, with 10 outputs instead of one.

**Learning rate.** Under this parameterization the useful step grows with the kernel's scale, so the grid is wide:
1, 3, 10, 30 by default (the bias-free NTK's diagonal is (L+1)‖x‖²: deeper networks want smaller steps). A
held-out part of the training images (``holdout``, 10 % by default) is set aside. Every learning rate of the grid
trains the network from the *same* initialization for ``selection_steps`` SGD steps on the remaining images; the
one with the lowest held-out cross-entropy wins (ties: the smaller step; a diverged run loses), and its run simply
continues, so the selection costs ``(len(lr_grid) − 1)·selection_steps`` extra steps. The held-out losses of every
grid point are returned: at a *common* learning rate they also compare the depths' early progress directly.

Requires PyTorch (``pip install sparsentk[deep]``).
"""

from __future__ import annotations

import functools
import math
import operator
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

import sparsentk as snt
from sparsentk.experiments.mnist_sparsity import load_images, resolve_data

#: P2's Table (§5): MNIST test accuracy (%) by depth.
P2_ACCURACY = {1: 95.98, 3: 97.43, 6: 97.57, 8: 97.52, 10: 97.39, 12: 97.19}
#: The default learning-rate grid (see the module docstring).
LR_GRID = (1.0, 3.0, 10.0, 30.0)


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the depth-accuracy study needs PyTorch: pip install 'sparsentk[deep]'") from err
    return torch


def resolve_device(device: str | None) -> str:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present, else the CPU) as a checked device
    name; a CUDA device that is not present is a ``ValueError``."""
    torch = _torch()
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device: expected a device name such as 'cpu' or 'cuda', got {device!r}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available here (use 'cpu')")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device!r} requested but only {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type != "cpu":
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return str(parsed)


def build_classifier(dim: int, width: int, depth: int, classes: int = 10, *, c_out: float = 2.0, seed: int = 0):
    """P2's bias-free network with ``depth`` hidden layers and ``classes`` logits as a ``torch.nn.Module``.

    Weights N(0, 1) drawn from ``torch.Generator().manual_seed(seed)`` (in float32, on the CPU); the forward pass
    multiplies layer l by √(2/m_{l−1}) and the head by √(c_out/m) (the NTK parameterization; see the module
    docstring).
    """
    torch = _torch()
    for name, value in (("dim", dim), ("width", width), ("depth", depth), ("classes", classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")

    class P2Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(int(seed))
            dims = [dim] + [width] * depth
            self.hidden = torch.nn.ParameterList(
                torch.nn.Parameter(torch.randn(dims[k + 1], dims[k], generator=gen)) for k in range(depth))
            self.head = torch.nn.Parameter(torch.randn(classes, width, generator=gen))
            self.scales = [math.sqrt(2.0 / d) for d in dims[:-1]]
            self.head_scale = math.sqrt(c_out / width)

        def forward(self, x):
            h = x
            for weight, scale in zip(self.hidden, self.scales, strict=True):
                h = torch.relu(torch.nn.functional.linear(h, weight) * scale)
            return torch.nn.functional.linear(h, self.head) * self.head_scale

    return P2Classifier()


@functools.lru_cache(maxsize=2)
def _images(data: str, data_dir: str | None, train_limit: int | None, test_limit: int | None, seed: int) -> dict:
    return load_images(data, data_dir, train_limit=train_limit, test_limit=test_limit, seed=seed)


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training part and of the held-out part (at least one image each)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = min(max(1, round(holdout * n)), n - 1)
    return order[cut:], order[:cut]


def train_depth(config: dict[str, Any]) -> dict[str, Any]:
    """One network (one depth, one seed): learning-rate selection, then SGD; the unit of :func:`snt.run_grid`.

    ``config`` holds every argument of :func:`depth_accuracy_study` for one ``depth`` and one ``seed``.
    Returns the selected ``lr``, the ``selection`` table (held-out loss per learning rate after
    ``selection_steps`` steps; ``None`` when diverged), the per-step training (batch) ``loss`` of the selected
    run from its first step, per-epoch mean training loss, held-out loss and test accuracy, and ``seconds``.
    """
    torch = _torch()
    c = config
    torch.manual_seed(c["seed"])
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    device = torch.device(c["device"])
    images = _images(c["data"], c["data_dir"], c["train_limit"], c["test_limit"], c["data_seed"])
    train_idx, hold_idx = _split(len(images["X_train"]), c["holdout"], c["data_seed"])

    def tensor(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    Xtr, ytr = tensor(images["X_train"][train_idx]), tensor(images["y_train"][train_idx])
    Xho, yho = tensor(images["X_train"][hold_idx]), tensor(images["y_train"][hold_idx])
    Xte, yte = tensor(images["X_test"]), tensor(images["y_test"])
    size = min(c["batch_size"], len(Xtr))
    per_epoch = len(Xtr) // size
    total = per_epoch * c["epochs"]
    select = min(c["selection_steps"], total)
    generator = torch.Generator().manual_seed(c["seed"])
    orders = [torch.randperm(len(Xtr), generator=generator).to(device) for _ in range(c["epochs"])]

    def batch(step: int):
        epoch, k = divmod(step, per_epoch)
        return orders[epoch][k * size : (k + 1) * size]

    @torch.no_grad()
    def evaluate(model, X, y) -> tuple[float, float]:
        loss, correct = 0.0, 0
        for s in range(0, len(X), 2048):
            out = model(X[s : s + 2048])
            loss += float(torch.nn.functional.cross_entropy(out, y[s : s + 2048], reduction="sum"))
            correct += int((out.argmax(1) == y[s : s + 2048]).sum())
        return loss / len(X), correct / len(X)

    def sgd_steps(model, opt, start: int, stop: int, losses: list[float]) -> None:
        for step in range(start, stop):
            idx = batch(step)
            loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))

    start = time.perf_counter()
    runs = []
    for lr in c["lr_grid"]:
        model = build_classifier(Xtr.shape[1], c["width"], c["depth"], seed=c["seed"]).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        losses: list[float] = []
        sgd_steps(model, opt, 0, select, losses)
        held = evaluate(model, Xho, yho)[0]
        runs.append({"lr": lr, "model": model, "opt": opt, "losses": losses,
                     "held": held if math.isfinite(held) and all(map(math.isfinite, losses)) else math.inf})
    chosen = min(runs, key=lambda run: (run["held"], run["lr"]))
    if not math.isfinite(chosen["held"]):
        raise FloatingPointError(f"depth {c['depth']}, seed {c['seed']}: every learning rate of the grid "
                                 f"{list(c['lr_grid'])} diverged within {select} steps; try smaller ones")
    model, opt, losses = chosen["model"], chosen["opt"], chosen["losses"]
    selection = [{"lr": r["lr"], "holdout_loss": r["held"]} for r in runs]
    del runs
    epoch_loss, holdout_loss, accuracy = [], [], []
    step = select
    for epoch in range(c["epochs"]):
        stop = (epoch + 1) * per_epoch
        if step < stop:
            sgd_steps(model, opt, step, stop, losses)
            step = stop
        model.eval()
        epoch_loss.append(float(np.mean(losses[epoch * per_epoch : stop])))
        holdout_loss.append(evaluate(model, Xho, yho)[0])
        accuracy.append(evaluate(model, Xte, yte)[1])
        model.train()
        if not math.isfinite(epoch_loss[-1]):
            raise FloatingPointError(f"depth {c['depth']}, seed {c['seed']}: the training loss diverged in epoch "
                                     f"{epoch + 1} at lr {chosen['lr']:g}")
    return {"lr": chosen["lr"], "selection": selection, "loss": losses, "epoch_loss": epoch_loss,
            "holdout_loss": holdout_loss, "accuracy": accuracy, "steps_per_epoch": per_epoch,
            "train_size": len(Xtr), "holdout_size": len(Xho), "test_size": len(Xte),
            "source": images["source"], "seconds": time.perf_counter() - start}


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def depth_accuracy_study(
    *,
    depths: Sequence[int] = (1, 3, 6, 8, 10, 12),
    width: int = 512,
    data: str = "auto",
    data_dir: str | os.PathLike | None = None,
    epochs: int = 5,
    batch_size: int = 500,
    lr_grid: Sequence[float] = LR_GRID,
    selection_steps: int = 20,
    holdout: float = 0.1,
    train_limit: int | None = None,
    test_limit: int | None = None,
    seeds: Sequence[int] = (0,),
    device: str = "cpu",
    threads: int | None = None,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    executor: Executor | None = None,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train P2's bias-free ReLU network at every depth and seed on MNIST (or digits); loss curves and accuracy.

    Parameters
    ----------
    depths : sequence of int
        Numbers of hidden layers (P2: 1, 3, 6, 8, 10, 12).
    width : int
        Hidden width (P2: 512).
    data, data_dir : str
        ``"mnist"``, ``"digits"`` or ``"auto"`` (MNIST when its IDX files are found locally, else scikit-learn's
        digits); MNIST is looked for in ``data_dir``, then ``$SPARSENTK_MNIST_DIR``, then the cache.
    epochs, batch_size : int
        SGD epochs over the training part (full batches only) and the batch size (P2: 500).
    lr_grid, selection_steps, holdout :
        The learning-rate selection (module docstring): grid, steps of the short runs, held-out fraction.
    train_limit, test_limit : int, optional
        Random subsets of the training and test images (quick runs).
    seeds : sequence of int
        One run per depth and seed (initialization and batch order); the subsets and the held-out split come from
        the first seed.
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    threads : int, optional
        PyTorch CPU threads (default: all cores).
    out, workers, executor :
        Passed to :func:`sparsentk.run_grid`: a folder makes every (depth, seed) run a resumable file; ``workers``
        processes share the cores, or ``executor`` (e.g. a Dask cluster's) runs the runs.
    callback : callable, optional
        Called with a progress message after each run.

    Returns
    -------
    dict
        ``config``; ``runs`` (one per depth and seed: the selected ``lr``, the ``selection`` table, the per-step
        training ``loss``, per-epoch ``epoch_loss``, ``holdout_loss`` and test ``accuracy``); ``per_depth`` (per
        depth, lists over seeds of the final accuracy, the selected lr, the mean training loss of the whole run
        and of the first epoch); ``p2`` (P2's accuracy table); ``common_lr`` (held-out loss after
        ``selection_steps`` steps at each learning rate of the grid, per depth, mean over seeds).
    """
    torch = _torch()
    try:
        depths = tuple(_positive_int(d, "depths") for d in depths)
        seeds = tuple(operator.index(s) for s in seeds)
        lr_grid = tuple(float(lr) for lr in lr_grid)
    except TypeError:
        raise ValueError(f"depths, seeds, lr_grid: expected sequences of integers, integers and numbers, got "
                         f"{depths!r}, {seeds!r}, {lr_grid!r}") from None
    if not depths or len(set(depths)) != len(depths):
        raise ValueError(f"depths: expected distinct depths, at least one, got {depths!r}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    if not lr_grid or any(not math.isfinite(lr) or lr <= 0 for lr in lr_grid):
        raise ValueError(f"lr_grid: expected positive finite learning rates, got {lr_grid!r}")
    width, epochs, batch_size = (_positive_int(v, n) for v, n in ((width, "width"), (epochs, "epochs"),
                                                                   (batch_size, "batch_size")))
    selection_steps = _positive_int(selection_steps, "selection_steps")
    for name, limit in (("train_limit", train_limit), ("test_limit", test_limit)):
        if limit is not None:
            _positive_int(limit, name)
    if isinstance(holdout, bool) or not isinstance(holdout, float | int) or not 0 < holdout < 1:
        raise ValueError(f"holdout: expected a fraction strictly between 0 and 1, got {holdout!r}")
    if threads is not None:
        threads = _positive_int(threads, "threads")
    device = resolve_device(device)
    data = resolve_data(data, data_dir)
    data_dir = None if data_dir is None else os.fspath(data_dir)
    torch.use_deterministic_algorithms(True, warn_only=True)
    base = {"width": width, "data": data, "data_dir": data_dir, "epochs": epochs, "batch_size": batch_size,
            "lr_grid": list(lr_grid), "selection_steps": selection_steps, "holdout": float(holdout),
            "train_limit": train_limit, "test_limit": test_limit, "data_seed": seeds[0], "device": device,
            "threads": threads or os.cpu_count() or 1}
    grid = [base | {"depth": d, "seed": s} for d in depths for s in seeds]

    def progress(done: int, total: int, config: dict, record: dict) -> None:
        if callback is not None:
            r = record["result"]
            what = (f"lr {r['lr']:g}, accuracy {r['accuracy'][-1]:.4f}" if record["status"] == "done"
                    else "failed")
            callback(f"depth-accuracy: depth {config['depth']}, seed {config['seed']} ({done}/{total}): {what}")

    before = torch.get_num_threads()
    try:
        result = snt.run_grid(train_depth, grid, out, executor=executor, workers=workers, progress=progress)
    finally:
        torch.set_num_threads(before)  # the runs set the threads of this process; give them back
    if result.failed:
        bad = result.failed[0]
        raise RuntimeError(f"depth-accuracy: depth {bad['config']['depth']}, seed {bad['config']['seed']} failed: "
                           f"{bad['error']['message']}")
    runs = [{"depth": cfg["depth"], "seed": cfg["seed"], **res}
            for cfg, res in zip(grid, result.results, strict=True)]
    first = runs[0]
    config = {k: v for k, v in base.items() if k != "data_seed"} | {
        "depths": list(depths), "seeds": list(seeds), "source": first["source"], "train_size": first["train_size"],
        "holdout_size": first["holdout_size"], "test_size": first["test_size"],
        "steps_per_epoch": first["steps_per_epoch"], "torch": torch.__version__}
    return {"config": config, "runs": runs, "per_depth": _per_depth(runs), "p2": {str(k): v for k, v in
                                                                                  P2_ACCURACY.items()},
            "common_lr": _common_lr(runs, lr_grid)}


def _per_depth(runs: list[dict]) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = {}
    for run in runs:
        row = out.setdefault(str(run["depth"]), {"seeds": [], "accuracy": [], "lr": [], "mean_loss": [],
                                                 "first_epoch_loss": [], "final_epoch_loss": []})
        row["seeds"].append(run["seed"])
        row["accuracy"].append(run["accuracy"][-1])
        row["lr"].append(run["lr"])
        row["mean_loss"].append(float(np.mean(run["loss"])))
        row["first_epoch_loss"].append(run["epoch_loss"][0])
        row["final_epoch_loss"].append(run["epoch_loss"][-1])
    return out


def _common_lr(runs: list[dict], lr_grid: Sequence[float]) -> dict[str, dict[str, float | None]]:
    """Per learning rate of the grid, per depth: held-out loss after the selection steps (mean over seeds;
    ``None`` when a seed diverged)."""
    table: dict[str, dict[str, float | None]] = {}
    for lr in lr_grid:
        row: dict[str, float | None] = {}
        for depth in dict.fromkeys(r["depth"] for r in runs):
            values = [s["holdout_loss"] for r in runs if r["depth"] == depth for s in r["selection"]
                      if s["lr"] == lr]
            ok = [v for v in values if v is not None and math.isfinite(v)]
            row[str(depth)] = float(np.mean(ok)) if len(ok) == len(values) else None
        table[f"{lr:g}"] = row
    return table


# ------------------------------------------------------------------------------------------------ report
def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties averaged); NaN for fewer than three points or a constant input."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _listing(per: dict[str, dict[str, list]], key: str, fmt: str, scale: float = 1.0) -> str:
    def one(values: list[float]) -> str:
        values = [scale * v for v in values]
        if len(values) == 1:
            return format(values[0], fmt)
        return f"{format(float(np.mean(values)), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"

    return ", ".join(f"L={depth}: {one(row[key])}" for depth, row in per.items())


def claim_rows(study: dict[str, Any]) -> list[dict[str, str]]:
    """The report's claims rows for P2's training experiment: numbers and a plain verdict."""
    c = study["config"]
    per = study["per_depth"]
    depths = [int(d) for d in per]
    seeds = len(c["seeds"])
    over = f" (mean over {seeds} seeds, range in parentheses)" if seeds > 1 else ""
    budget = (f"{c['epochs']} epoch(s) on {c['train_size']} {c['data']} images, width {c['width']}, "
              f"batch {c['batch_size']}")
    full = c["data"] == "mnist" and c["train_limit"] is None
    rows = []

    def add(claim: str, measured: str, verdict: str) -> None:
        rows.append({"claim": claim, "source": "P2 §5", "measured": measured, "verdict": verdict})

    mean_loss = [float(np.mean(per[str(d)]["mean_loss"])) for d in depths]
    rho = _spearman(depths, mean_loss)
    common = []
    for lr, row in study["common_lr"].items():
        values = [row[str(d)] for d in depths]
        if all(v is not None for v in values):
            common.append(f"lr {lr}: ρ = {_spearman(depths, values):+.2f}")
    add("deeper networks drive the training loss down faster",
        "mean training loss over the run at each depth's selected lr" + over + ": "
        + _listing(per, "mean_loss", ".3f") + f"; Spearman ρ(depth, loss) = {rho:+.2f}"
        + ("; held-out loss after the selection steps at a common lr, ρ(depth, loss): " + ", ".join(common)
           if common else "") + f" ({budget})",
        "reproduced" if rho <= -0.8 else ("partly reproduced" if rho <= -0.4 else "not reproduced"))
    measured = {d: 100 * float(np.mean(per[str(d)]["accuracy"])) for d in depths}
    paired = [(d, measured[d], P2_ACCURACY[d]) for d in depths if d in P2_ACCURACY]
    if paired:
        gap = max(abs(m - p) for _, m, p in paired)
        text = ", ".join(f"L={d}: {m:.2f} % (P2 {p:.2f} %)" for d, m, p in paired)
        if gap <= 0.5:
            verdict = "reproduced"
        elif gap <= 1.5:
            verdict = "partly reproduced"
        else:
            verdict = "not reproduced" if full else "not comparable at the quick budget"
        add("MNIST test accuracy by depth 1/3/6/8/10/12: 95.98/97.43/97.57/97.52/97.39/97.19 %",
            f"test accuracy{over}: {text}; largest gap {gap:.2f} points ({budget})", verdict)
    if len(depths) >= 3:
        best = max(depths, key=lambda d: measured[d])
        shallowest = min(depths)
        worst_is_shallowest = all(measured[shallowest] < measured[d] for d in depths if d != shallowest)
        near_six = best in (3, 6, 8)
        add("depth helps: one hidden layer is the worst, accuracy peaks around depth 6",
            f"best depth {best} ({measured[best]:.2f} %), depth {shallowest}: {measured[shallowest]:.2f} %"
            f" ({budget})",
            "reproduced" if worst_is_shallowest and near_six else (
                "partly reproduced" if worst_is_shallowest or near_six else "not reproduced"))
    return rows


def report_blocks(study: dict[str, Any], figure: str | None) -> list[tuple]:
    """The report's section for P2's training experiment (blocks as in :func:`report.render`)."""
    c = study["config"]
    per = study["per_depth"]
    seeds = len(c["seeds"])
    blocks: list[tuple] = [
        ("h2", "Depth and MNIST accuracy (P2 §5)"),
        ("p", f"P2's bias-free network: width {c['width']}, weights N(0, 1) with the √2 fan-in scaling, a 10-logit "
              f"head, cross-entropy, plain SGD (batch {c['batch_size']}), {c['epochs']} epoch(s) on "
              f"{c['train_size']} images of {c['data']} ({c['source']}); {c['holdout_size']} further training "
              f"images held out for the learning rate; test on {c['test_size']}. Learning rate per depth and seed "
              f"from the grid {', '.join(f'{lr:g}' for lr in c['lr_grid'])}: each candidate trains "
              f"{c['selection_steps']} steps from the same initialization, the lowest held-out cross-entropy wins "
              f"and its run continues. Device {c['device']}, seeds {', '.join(map(str, c['seeds']))}."),
    ]
    if figure:
        blocks.append(("img", figure, "training loss per SGD step (each depth at its selected lr), test accuracy "
                                      "against P2's table, and held-out loss at a common lr"))
    rows = []
    for depth, row in per.items():
        acc = [100 * a for a in row["accuracy"]]
        spread = f" ({min(acc):.2f}–{max(acc):.2f})" if seeds > 1 else ""
        p2 = P2_ACCURACY.get(int(depth))
        rows.append([depth, "–" if p2 is None else f"{p2:.2f}", f"{np.mean(acc):.2f}{spread}",
                     ", ".join(f"{lr:g}" for lr in row["lr"]), f"{np.mean(row['first_epoch_loss']):.3f}",
                     f"{np.mean(row['final_epoch_loss']):.3f}"])
    blocks.append(("table", ["depth L", "P2 accuracy (%)", "accuracy (%)", "selected lr", "loss, first epoch",
                             "loss, last epoch"], rows))
    lrs = list(study["common_lr"])
    blocks.append(("table", ["depth L"] + [f"held-out loss, lr {lr}" for lr in lrs],
                   [[depth] + [("diverged" if study["common_lr"][lr][depth] is None
                                else f"{study['common_lr'][lr][depth]:.3f}") for lr in lrs] for depth in per],
                   f"held-out cross-entropy after {c['selection_steps']} steps at each learning rate of the grid"))
    if seeds > 1:
        blocks.append(("details", f"per-seed runs ({len(study['runs'])})",
                       [("table", ["depth L", "seed", "lr", "accuracy (%)", "loss, last epoch", "seconds"],
                         [[str(r["depth"]), str(r["seed"]), f"{r['lr']:g}", f"{100 * r['accuracy'][-1]:.2f}",
                           f"{r['epoch_loss'][-1]:.3f}", f"{r['seconds']:.1f}"] for r in study["runs"]])]))
    return blocks
