"""The report's rendering (formulas as math, long tables folded) and its deep-network parts (resume)."""

import json
import re

import pytest

from sparsentk.experiments import deep_parts
from sparsentk.experiments import report as rep

pytest.importorskip("torch")


def test_math_in_html_and_markdown(tmp_path):
    blocks = [("h2", "λ_min(H∞) and e^{B²}"),
              ("p", "λ(B) decays like λ₀·e^{−B²/2}; κ = λ_{max}/λ_{min}; χ₁^L layers; a < b & c"),
              ("table", ["B", "η·e^{B²}"], [["1", "θ_in = 3°"]], "a caption with e^{x}")]
    md, page = rep.render(blocks, tmp_path)
    assert "λ₀·e<sup>−B²/2</sup>" in page and "e<sup>B²</sup>" in page
    assert "λ<sub>max</sub>/λ<sub>min</sub>" in page and "λ<sub>min</sub>(H∞)" in page
    assert "χ₁<sup>L</sup>" in page and "θ<sub>in</sub>" in page
    assert "a &lt; b &amp; c" in page  # text is still escaped
    assert "<caption>a caption with e<sup>x</sup></caption>" in page
    assert "{" not in re.sub(r"<style>.*?</style>", "", page)  # no raw TeX braces left in the page
    assert "λ₀·e^(−B²/2)" in md and "e^(B²)" in md and "λ_max/λ_min" in md and "e^x" in md
    assert "{" not in md


def test_long_tables_and_details_fold(tmp_path):
    long = ("table", ["seed", "value"], [[str(k), f"{k / 7:.3f}"] for k in range(rep.FOLD_ROWS + 1)])
    short = ("table", ["seed", "value"], [["0", "1"]])
    nested = ("details", "every network (2 rows)", [("table", ["a"], [["1"], ["2"]])])
    md, page = rep.render([short, long, nested], tmp_path)
    assert page.count("<details>") == 2 and page.count("<table>") == 3
    assert f"<summary>table ({rep.FOLD_ROWS + 1} rows)</summary>" in page
    assert "<summary>every network (2 rows)</summary><table>" in page
    assert md.count("<details>") == 2 and md.count("</details>") == 2
    assert "| seed | value |" in md and "| 1 |" in md  # the folded tables stay in the Markdown


@pytest.fixture
def tiny_settings(monkeypatch):
    original = rep.settings

    def settings(quick, seed, data, data_dir):
        config = original(quick, seed, data, data_dir)
        config["conditioning"] |= {"seeds": [seed], "width": 32, "depths": [0, 1, 2], "synthetic_n": 10,
                                   "image_batches": 1, "batch_size": 8, "bias_n": 8, "angle_points": 7,
                                   "angle_seeds": 1, "biases": [0.0, 1.0], "limit_depths": [10, 100],
                                   "bias_limit_depths": [10], "rise_draws": 2, "angle_depths": [1, 3]}
        config["depth_accuracy"] |= {"depths": [1, 2], "width": 8, "epochs": 1, "lr_grid": [1.0],
                                     "selection_steps": 1, "batch_size": 400}
        return config

    monkeypatch.setattr(rep, "settings", settings)


def test_deep_parts_in_the_report_and_resume(tmp_path, monkeypatch, tiny_settings):
    calls = []
    original = deep_parts.RUNNERS["conditioning"]
    monkeypatch.setitem(deep_parts.RUNNERS, "conditioning", lambda cfg, say: calls.append(1) or original(cfg, say))
    drawn = []
    draw = deep_parts.figures
    monkeypatch.setattr(deep_parts, "figures", lambda results, folder: drawn.append(draw(results, folder)) or drawn[0])
    out = tmp_path / "rep"
    first = rep.reproduce_report(out, quick=True, data="digits", parts=deep_parts.PARTS)
    for name in ("conditioning_angles.png", "conditioning_depth_synthetic.png", "conditioning_depth_images.png",
                 "conditioning_bias.png", "depth_accuracy.png", "parts/conditioning.json",
                 "parts/depth_accuracy.json"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "Gradient angles and NTK conditioning with depth" in page and "Depth and MNIST accuracy" in page
    assert page.count("data:image/png;base64,") == 5 and "<details>" in page
    assert "λ<sub>max</sub>" in page and "λ_max" in md
    sources = {row["source"] for row in first["claims"]}
    assert {"P2 Thm 4.3", "P2 Thm 3.5", "P2 §5"} <= sources
    monkeypatch.setattr(deep_parts, "figures", lambda results, folder: drawn[0])  # the resumed run need not redraw
    second = rep.reproduce_report(out, quick=True, data="digits", parts=deep_parts.PARTS, resume=True)
    assert len(calls) == 1  # the conditioning part was reused
    assert second["results"] == first["results"] and second["claims"] == first["claims"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["conditioning"]["width"] == 32


def test_unknown_part(tmp_path):
    with pytest.raises(ValueError, match="parts"):
        rep.reproduce_report(tmp_path, parts=("conditioning", "magic"))
