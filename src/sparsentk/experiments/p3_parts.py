"""The report's P3 parts (arXiv 2111.01875): ``width`` (how wide is wide enough) and ``lazy`` (P3 Fig. 1).

:mod:`sparsentk.experiments.report` calls these hooks: settings (quick and full), runners, figures, claims rows and
blocks. Quick mode aims at about 45 s per part on 2 idle cores: the width part runs a smaller grid than
``sparsentk reproduce width --quick`` (its text says so) on two worker processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparsentk.experiments import lazy, width

PARTS = ("width", "lazy")


def settings(quick: bool, seed: int, data: str, data_dir: str | None) -> dict[str, dict[str, Any]]:
    """Configurations of both parts (JSON-shaped, so a resumed report compares them exactly); ``data`` is already
    resolved to ``"mnist"`` or ``"digits"``."""
    width_cfg = width.settings(quick, report=True, seed=seed) | {"workers": 2 if quick else 1}
    lazy_cfg = lazy.settings(quick, seed=seed, data=data, data_dir=data_dir)
    return json.loads(json.dumps({"width": width_cfg | {"quick": quick}, "lazy": lazy_cfg | {"quick": quick}}))


def run_width(cfg: dict, say: Callable[[str], None]) -> dict:
    kwargs = {k: v for k, v in cfg.items() if k != "quick"}
    kwargs["target"] = tuple(kwargs["target"])
    return width.width_study(**kwargs, callback=say) | {"quick": cfg["quick"]}


def run_lazy(cfg: dict, say: Callable[[str], None]) -> dict:
    kwargs = {k: v for k, v in cfg.items() if k != "quick"}
    return lazy.lazy_study(**kwargs, callback=say) | {"quick": cfg["quick"]}


RUNNERS = {"width": run_width, "lazy": run_lazy}


def figures(results: dict, out: Path) -> dict[str, str]:
    """Write the parts' figures into ``out``; their names by key (``width``, ``companions``, ``lazy``)."""
    names: dict[str, str] = {}
    if "width" in results:
        names.update(width.report_figures(results["width"], out))
    if "lazy" in results:
        names.update(lazy.report_figures(results["lazy"], out))
    return names


def claims(results: dict) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    if "width" in results:
        rows += width.claims(results["width"])
    if "lazy" in results:
        rows += lazy.claims(results["lazy"])
    return rows


def blocks(results: dict, figure_names: dict[str, str]) -> list[tuple]:
    out: list[tuple] = []
    if "width" in results:
        out += width.report_blocks(results["width"], figure_names, results["width"].get("quick", False))
    if "lazy" in results:
        out += lazy.report_blocks(results["lazy"], figure_names, results["lazy"].get("quick", False))
    return out
