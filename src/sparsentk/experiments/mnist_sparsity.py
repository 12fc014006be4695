"""P1 Figure 1: sparsity persists during training in a deep MLP whose biases start at −B.

Six hidden layers of width 1024 with trainable biases initialized to −B (PyTorch *adds* the bias, so −B is the
paper's threshold B), Kaiming-normal weights, BatchNorm *after* each ReLU, SGD with learning rate 5e-3, cross-entropy
on MNIST (or scikit-learn's digits offline). Records every layer's fraction of active units per SGD batch and the
test accuracy per epoch. Requires PyTorch (``pip install sparsentk[deep]``).
"""

from __future__ import annotations

import itertools
import math
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import sparsentk as snt


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the MNIST sparsity study needs PyTorch: pip install 'sparsentk[deep]'") from err
    return torch


def resolve_data(data: str, data_dir: str | os.PathLike | None = None) -> str:
    """``"mnist"`` or ``"digits"``: ``"auto"`` means MNIST when its IDX files are found locally (no download)."""
    if data not in ("mnist", "digits", "auto"):
        raise ValueError(f"data: expected 'mnist', 'digits' or 'auto', got {data!r}")
    if data != "auto":
        return data
    try:
        snt.data.mnist_dir(data_dir, download=False)
    except FileNotFoundError:
        return "digits"
    return "mnist"


def load_images(data: str = "mnist", data_dir: str | os.PathLike | None = None, *, train_limit: int | None = None,
                test_limit: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Train/test images and integer labels: MNIST from IDX files, or the 8×8 digits, standardized with the mean
    and standard deviation of all training pixels (for MNIST the familiar 0.1307 / 0.3081).

    ``data="auto"`` uses MNIST when its files are found locally (no download) and the digits otherwise.
    """
    data = resolve_data(data, data_dir)
    rng = np.random.default_rng(seed)
    if data == "mnist":
        Xtr, ytr = snt.data.mnist(data_dir, split="train")
        Xte, yte = snt.data.mnist(data_dir, split="test")
        source = str(snt.data.mnist_dir(data_dir, download=False))
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        X = (bunch.data / 16.0).astype(np.float32)
        order = rng.permutation(len(X))
        cut = int(0.8 * len(X))
        Xtr, ytr = X[order[:cut]], bunch.target[order[:cut]].astype(np.int64)
        Xte, yte = X[order[cut:]], bunch.target[order[cut:]].astype(np.int64)
        source = "sklearn.datasets.load_digits"
    for name, limit in (("train_limit", train_limit), ("test_limit", test_limit)):
        if limit is not None and limit < 1:
            raise ValueError(f"{name}: expected a positive integer, got {limit}")
    if train_limit is not None and train_limit < len(Xtr):
        keep = rng.permutation(len(Xtr))[:train_limit]
        Xtr, ytr = Xtr[keep], ytr[keep]
    if test_limit is not None and test_limit < len(Xte):
        keep = rng.permutation(len(Xte))[:test_limit]
        Xte, yte = Xte[keep], yte[keep]
    # the usual MNIST normalization: one mean and standard deviation over all training pixels
    mean, std = float(Xtr.mean()), float(Xtr.std())
    Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    return {"data": data, "source": source, "X_train": Xtr.astype(np.float32), "y_train": ytr,
            "X_test": Xte.astype(np.float32), "y_test": yte, "pixel_mean": mean, "pixel_std": std}


def build_mlp(in_dim: int, bias: float, *, width: int = 1024, depth: int = 6, classes: int = 10):
    """``depth`` blocks Linear → ReLU → BatchNorm1d (biases −B, Kaiming-normal weights), then a linear head."""
    torch = _torch()
    layers = []
    dims = [in_dim] + [width] * depth
    for k in range(depth):
        linear = torch.nn.Linear(dims[k], dims[k + 1])
        torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        torch.nn.init.constant_(linear.bias, -bias)
        layers += [linear, torch.nn.ReLU(), torch.nn.BatchNorm1d(dims[k + 1])]
    head = torch.nn.Linear(width, classes)
    return torch.nn.Sequential(*layers, head)


def mnist_sparsity_study(
    *,
    biases: tuple[float, ...] = (0.5, 1.0, 1.5),
    data: str = "auto",
    data_dir: str | os.PathLike | None = None,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 5e-3,
    momentum: float = 0.9,
    width: int = 1024,
    depth: int = 6,
    train_limit: int | None = None,
    test_limit: int | None = None,
    seeds: Sequence[int] = (0,),
    threads: int | None = None,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the MLP once per bias and seed; per-layer active fractions per batch, test accuracy per epoch.

    Sparsity of layer k on a batch = (units with positive pre-activation) / (batch size × width), read from the
    ReLU outputs. Each epoch uses full batches only (a short last batch is dropped). Defaults: batch 128,
    momentum 0.9 and three epochs (the paper gives only the learning rate). A seed fixes the initialization and
    the batch order; the image subsets (``train_limit``, ``test_limit``) come from the first seed, so every run
    sees the same images.
    Returns a JSON-ready dict: ``runs`` (one per bias and seed), where ``layers[k]["max_change"]`` is the largest
    |sparsity(batch) − sparsity(first batch)| of layer k, and ``per_bias`` with, per seed, the largest change of
    a hidden layer after the first (``hidden_change``, absent for one layer), the first layer's change, the mean
    final active fraction over layers and the final test accuracy.
    """
    torch = _torch()
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("width", width), ("depth", depth)):
        if int(value) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr: expected a positive number, got {lr}")
    try:
        seeds = tuple(operator.index(s) for s in seeds)
    except TypeError:
        raise ValueError(f"seeds: expected a sequence of integers, got {seeds!r}") from None
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    images = load_images(data, data_dir, train_limit=train_limit, test_limit=test_limit, seed=seeds[0])
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    Xtr = torch.from_numpy(np.ascontiguousarray(images["X_train"]))
    ytr = torch.from_numpy(images["y_train"])
    Xte = torch.from_numpy(np.ascontiguousarray(images["X_test"]))
    yte = torch.from_numpy(images["y_test"])
    results = []
    for bias, seed in itertools.product(biases, seeds):
        torch.manual_seed(seed)
        model = build_mlp(Xtr.shape[1], bias, width=width, depth=depth)
        relus = [m for m in model if isinstance(m, torch.nn.ReLU)]
        captured: list[Any] = [None] * len(relus)

        def keep(k: int, store: list = captured) -> Callable:
            return lambda module, inputs, output: store.__setitem__(k, output)

        hooks = [relu.register_forward_hook(keep(k)) for k, relu in enumerate(relus)]
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        generator = torch.Generator().manual_seed(seed)
        per_batch: list[list[float]] = []
        accuracy = []
        losses = []
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(Xtr), generator=generator)
            size = min(batch_size, len(Xtr))
            for start in range(0, len(Xtr) - size + 1, size):  # full batches only: BatchNorm and sparsity
                batch = order[start : start + size]  # statistics of a short last batch are not comparable
                out = model(Xtr[batch])
                loss = torch.nn.functional.cross_entropy(out, ytr[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                per_batch.append([float((c > 0).float().mean()) for c in captured])
                losses.append(float(loss.detach()))
            model.eval()
            with torch.no_grad():
                correct = sum(int((model(Xte[s : s + 1024]).argmax(1) == yte[s : s + 1024]).sum())
                              for s in range(0, len(Xte), 1024))
            accuracy.append(correct / len(Xte))
            if callback is not None:
                callback(f"sparsity: B = {bias:g}, seed {seed}, epoch {epoch + 1}/{epochs}, "
                         f"accuracy {accuracy[-1]:.4f}")
        for h in hooks:
            h.remove()
        curves = np.array(per_batch)
        layers = [{"layer": k, "initial": float(curves[0, k]), "final": float(curves[-1, k]),
                   "mean": float(curves[:, k].mean()),
                   "max_change": float(np.abs(curves[:, k] - curves[0, k]).max())} for k in range(curves.shape[1])]
        results.append({"bias": bias, "seed": seed, "sparsity": curves.tolist(), "layers": layers,
                        "accuracy": accuracy, "loss": losses})
    return {
        "config": {"biases": list(biases), "data": images["data"], "source": images["source"], "epochs": epochs,
                   "batch_size": batch_size, "lr": lr, "momentum": momentum, "width": width, "depth": depth,
                   "train_size": len(Xtr), "test_size": len(Xte), "seeds": list(seeds), "threads": threads,
                   "torch": torch.__version__},
        "runs": results,
        "per_bias": _per_bias(results),
    }


def _per_bias(runs: list[dict]) -> dict[str, dict[str, list]]:
    """Per bias, one entry per seed: the summaries the report's claims are judged on."""
    out: dict[str, dict[str, list]] = {}
    for run in runs:
        row = out.setdefault(str(float(run["bias"])), {"seeds": [], "input_change": [], "final_active": [],
                                                 "accuracy": []})
        row["seeds"].append(run["seed"])
        row["input_change"].append(run["layers"][0]["max_change"])
        row["final_active"].append(float(np.mean([lay["final"] for lay in run["layers"]])))
        row["accuracy"].append(run["accuracy"][-1])
        if len(run["layers"]) > 1:
            row.setdefault("hidden_change", []).append(max(lay["max_change"] for lay in run["layers"][1:]))
    return out
