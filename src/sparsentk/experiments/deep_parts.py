"""The report's deep-network parts (P2, arXiv 2305.08813): ``conditioning`` and ``depth_accuracy``.

:mod:`sparsentk.experiments.report` calls these hooks: their settings (quick and full), runners, figures, claims
rows and blocks. Quick mode stays within about 35 s per part on 2 idle cores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparsentk import plotting
from sparsentk.experiments import _figures, conditioning, conditioning_report, depth_accuracy

PARTS = ("conditioning", "depth_accuracy")


def settings(quick: bool, seed: int, data: str, data_dir: str | None) -> dict[str, dict[str, Any]]:
    """Configurations of both parts; ``data`` is already resolved to ``"mnist"`` or ``"digits"``.

    Quick: width 512 everywhere, 3 seeds, 256 synthetic points and one batch of 256 images for the conditioning
    study; for depth-accuracy a subset of MNIST (5500 images, 2 epochs) or the digits (10 epochs), a two-point
    learning-rate grid and 3 selection steps. Full: P2's sizes (2000 synthetic points, 4 batches of 512 images —
    3 for the 1797 digits —, 5 seeds) and the whole MNIST training set for 5 epochs with the grid 1, 3, 10, 30.
    Quick mode runs single-threaded (BLAS, numba and PyTorch): the products are small, and on a busy machine
    threads of small products oversubscribe the cores (measured with 3–5 runnable processes on 2 cores:
    conditioning 32 s with 1 thread against 219 s with 2, depth-accuracy 18 s against 57 s). Single-threaded CPU
    time: conditioning about 29 s with its figures, depth-accuracy about 16 s on MNIST.
    """
    mnist = data == "mnist"
    return {
        "conditioning": {
            "seeds": [seed + k for k in range(3 if quick else 5)], "width": 512, "depths": list(range(11)),
            "synthetic_n": 256 if quick else 2000, "images": data, "data_dir": data_dir,
            "image_batches": 1 if quick else (4 if mnist else 3), "batch_size": 256 if quick else 512,
            "bias_n": 128 if quick else 500, "angle_points": 61 if quick else 181,
            "angle_seeds": 2 if quick else 5, "seed": seed, "threads": 1 if quick else None},
        "depth_accuracy": {
            "depths": [1, 3, 6, 8, 10, 12], "width": 512, "data": data, "data_dir": data_dir,
            "epochs": (2 if mnist else 10) if quick else (5 if mnist else 60), "batch_size": 500,
            "lr_grid": [3.0, 10.0] if quick else list(depth_accuracy.LR_GRID),
            "selection_steps": 3 if quick else 20,
            "train_limit": 5500 if quick and mnist else None, "test_limit": 2000 if quick and mnist else None,
            "seeds": [seed], "device": "cpu", "threads": 1 if quick else None},
    }


def run_conditioning(cfg: dict, say: Callable[[str], None]) -> dict:
    """The configuration's keys are :func:`conditioning.conditioning_study`'s arguments."""
    return conditioning.conditioning_study(**cfg, callback=say)


def run_depth_accuracy(cfg: dict, say: Callable[[str], None]) -> dict:
    """The configuration's keys are :func:`depth_accuracy.depth_accuracy_study`'s arguments."""
    return depth_accuracy.depth_accuracy_study(**cfg, callback=say)


RUNNERS = {"conditioning": run_conditioning, "depth_accuracy": run_depth_accuracy}


def figures(results: dict, out: Path) -> dict[str, str]:
    """Write the parts' PNG figures into ``out``; their names by key."""
    names: dict[str, str] = {}
    study = results.get("conditioning")
    if study:
        plotting.save(_figures.angle_map(study), out / "conditioning_angles.png")
        names["conditioning_angle_map"] = "conditioning_angles.png"
        for name in study["depth"]:
            plotting.save(_figures.depth_curves(study, name), out / f"conditioning_depth_{name}.png")
            names[f"conditioning_depth_{name}"] = f"conditioning_depth_{name}.png"
        plotting.save(_figures.bias_axis(study), out / "conditioning_bias.png")
        names["conditioning_bias"] = "conditioning_bias.png"
    if results.get("depth_accuracy"):
        plotting.save(_figures.depth_accuracy(results["depth_accuracy"]), out / "depth_accuracy.png")
        names["depth_accuracy"] = "depth_accuracy.png"
    return names


def claims(results: dict) -> list[dict[str, str]]:
    rows = []
    if results.get("conditioning"):
        rows += conditioning_report.claim_rows(results["conditioning"])
    if results.get("depth_accuracy"):
        rows += depth_accuracy.claim_rows(results["depth_accuracy"])
    return rows


def blocks(results: dict, figure_names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    if results.get("conditioning"):
        prefix = "conditioning_"
        out += conditioning_report.report_blocks(results["conditioning"], {k[len(prefix):]: v for k, v in
                                                                    figure_names.items() if k.startswith(prefix)})
    if results.get("depth_accuracy"):
        out += depth_accuracy.report_blocks(results["depth_accuracy"], figure_names.get("depth_accuracy"))
    return out
