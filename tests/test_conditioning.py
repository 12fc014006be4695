"""The conditioning study (P2 Figs. 1 and 3, the bias axis, the depth limits) on tiny sizes, against independent
computations written here: Lemma 3.1 as a plain loop, κ of the Gram matrix, input angles from dot products."""

import copy
import itertools
import math

import numpy as np
import pytest

from p2_oracles import lemma31_phi
from sparsentk.experiments.conditioning import _rows, conditioning_study
from sparsentk.experiments.conditioning_report import claim_rows, report_blocks

TINY = dict(depths=(0, 1, 2, 3), seeds=(0, 1), width=64, synthetic_n=12, synthetic_dim=5, images="digits",
            image_batches=2, batch_size=10, biases=(0.0, 1.0), bias_n=10, angle_points=13, angle_seeds=1,
            bias_angle_depth=2, limit_depths=(10, 3000), limit_n=(3,), bias_limit_depths=(10, 60), rise_draws=3)


@pytest.fixture(scope="module")
def study():
    return conditioning_study(**TINY)


def test_angle_map_is_lemma_31(study):
    am = study["angle_map"]
    for depth, phis in am["phi_kernel"].items():
        for theta, phi in zip(am["theta"], phis, strict=True):
            assert phi == pytest.approx(math.degrees(lemma31_phi(math.radians(theta), int(depth))), abs=1e-6)
    # small angles: φ > θ_in, and φ ≈ √(Lθ/π) to leading order
    k = 1
    theta = math.radians(am["theta"][k])
    for depth in am["phi_kernel"]:
        assert am["phi_kernel"][depth][k] > am["theta"][k]
    assert math.radians(am["phi_kernel"]["10"][k]) == pytest.approx(math.sqrt(10 * theta / math.pi), rel=0.35)


def test_linear_kappa_is_gram_kappa_and_angles_are_input_angles(study):
    entry = study["depth"]["images"]
    batches = _rows("digits", 20, 0, 0, None, 10)
    kappas, angles = [], []
    for X in batches:
        w = np.linalg.eigvalsh(X @ X.T.copy())
        kappas.append(w[-1] / w[0])
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        C = np.clip(U @ U.T.copy(), -1, 1)
        angles.append(np.degrees(np.arccos(C[~np.eye(len(X), dtype=bool)])).min())
    gram = float(np.mean(kappas))
    assert entry["gram_kappa"] == pytest.approx(gram, rel=1e-9)
    for regime in ("all", "first"):
        for kappa in entry["infinite"]["linear"][regime]["kappa"]:
            assert kappa == pytest.approx(gram, rel=1e-8)
        for angle in entry["infinite"]["linear"][regime]["min_angle"]:
            assert angle == pytest.approx(min(angles), abs=1e-6)
    # a finite linear network trained in its first layer only: Δ does not depend on x, so K = c·Gram exactly
    for per_seed in entry["finite"]["linear"]["first"]["kappa"]:
        for kappa in per_seed:
            assert kappa == pytest.approx(gram, rel=1e-7)
    # n > d: the synthetic set's Gram matrix is singular, so is every linear NTK (∞)
    assert study["depth"]["synthetic"]["gram_kappa"] == math.inf


def test_relu_curves_and_limits(study):
    c = study["config"]
    for name, entry in study["depth"].items():
        angle = entry["infinite"]["relu"]["first"]["min_angle"]
        assert all(b > a for a, b in itertools.pairwise(angle)), name
        assert len(entry["finite"]["relu"]["all"]["kappa"]) == len(c["finite_depths"])
        assert all(len(v) == len(c["seeds"]) for v in entry["finite"]["relu"]["all"]["kappa"])
    lim = study["limits"]
    assert lim["kappa"]["3"]["limit"] == pytest.approx(2.0) and lim["kappa"]["3"]["printed"] == pytest.approx(7 / 3)
    assert lim["kappa"]["3"]["by_depth"]["3000"] == pytest.approx(2.0, rel=0.01)
    for by_depth in lim["chaotic"].values():
        assert by_depth["60"]["min_angle"] > 89.9 and by_depth["60"]["kappa"] < 1.001
    bias = study["bias"]["per_bias"]
    assert bias["0"]["reliable_depth"] == math.inf and bias["1"]["chi1"] == pytest.approx(2.1059, abs=1e-4)
    assert bias["1"]["reliable_depth"] == pytest.approx(math.log(64 / 2) / (2 * math.log(bias["1"]["chi1"])))


def test_claims_follow_the_numbers(study):
    rows = {r["claim"][:30]: r for r in claim_rows(study)}
    kappa_row = next(r for k, r in rows.items() if k.startswith("κ → (n+3)/3"))
    assert kappa_row["verdict"].startswith("reproduced with (n+3)/3")
    bad = copy.deepcopy(study)
    bad["limits"]["kappa"]["3"]["by_depth"]["3000"] = 7 / 3  # the printed value
    bad["limits"]["chaotic"]["1"]["60"]["kappa"] = 1.5
    bad["angle_map"]["phi_kernel"]["1"][1] = 0.0  # φ below θ_in at a small angle
    bad["bias"]["per_bias"]["1"]["parting_depth"] = None
    bad["bias"]["per_bias"]["1"]["reliable_depth"] = 1.0
    flipped = {r["claim"][:30]: r["verdict"] for r in claim_rows(bad)}
    assert next(v for k, v in flipped.items() if k.startswith("κ → (n+3)/3")) == "not reproduced"
    assert next(v for k, v in flipped.items() if k.startswith("with a bias B > 0")) == "not reproduced"
    assert next(v for k, v in flipped.items() if k.startswith("ReLU enlarges")) == "not reproduced"
    assert next(v for k, v in flipped.items() if k.startswith("width-64 networks")) == "not consistent"
    blocks = report_blocks(study, {})
    assert any(b[0] == "details" for b in blocks)


def test_same_seed_same_numbers_and_resume(tmp_path):
    small = TINY | dict(depths=(0, 2), seeds=(3,), images="none", biases=(0.0, 0.5), angle_points=5,
                        limit_depths=(10,), bias_limit_depths=(10,))
    import numba

    threads = numba.get_num_threads()
    first = conditioning_study(**small, out=tmp_path, threads=1)
    assert numba.get_num_threads() == threads  # given back
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2 * 2 + 2 * 2  # (synthetic: 2 activations, bias axis: 2 biases) × 2 depths, one seed
    stamps = [f.stat().st_mtime_ns for f in files]
    again = conditioning_study(**small, out=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # every network reused from its file
    first.pop("seconds"), again.pop("seconds")
    assert again == first


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(depths=(-1, 2)), "depths"), (dict(depths=()), "depths"), (dict(biases=(-0.5,)), "biases"),
    (dict(images="cifar"), "images"), (dict(part_threshold=0.0), "part_threshold"), (dict(width=0), "width"),
    (dict(limit_thetas=(0.0,)), "limit_thetas"), (dict(seeds=(1.5,)), "seeds"), (dict(threads=0), "threads"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conditioning_study(**kwargs)


def test_bias_train_bias_must_be_bool():
    with pytest.raises(TypeError, match="bias_train_bias"):
        conditioning_study(bias_train_bias=1)


def test_cli(tmp_path):
    import json

    from click.testing import CliRunner

    from sparsentk.cli import cli, main

    out = tmp_path / "cond"
    r = CliRunner().invoke(cli, ["reproduce", "conditioning", "--depths", "0,1", "--width", "16", "--seeds", "0",
                                 "--synthetic-n", "8", "--data", "none", "--biases", "0,1", "--bias-n", "6",
                                 "--resume", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "conditioning.json").read_text())
    assert data["config"]["width"] == 16 and list(data["depth"]) == ["synthetic"]
    for name in ("conditioning_angles.png", "conditioning_bias.png", "conditioning_depth_synthetic.png"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "networks").glob("*.json"))) == 2 * 2 + 2 * 2
    assert "[reproduced with (n+3)/3; the printed (n+4)/3 is not]" in r.output
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "conditioning", "--biases", "-1", "--out", str(out)])
    assert exc.value.code == 2
