"""Dask backend of the kernel operator: panels as tasks on a 2-process LocalCluster (started once per module).

Oracles: the in-memory kernel ``bias_ntk(X)`` and ``numpy.linalg.solve`` on it; a worker process is killed
(SIGKILL) in the middle of a CG solve and the solution must still equal the direct one.
"""

import os
import signal

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster

import sparsentk as snt
from conftest import unit_rows
from sparsentk.ridge import KernelOperator, kernel_ridge

pytestmark = [pytest.mark.xdist_group("dask"), pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit="1GiB")
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = unit_rows(rng, 90, 4)
    path = tmp_path_factory.mktemp("dask") / "X.npy"
    np.save(path, X)
    Y = np.column_stack([np.sin(3 * X[:, 0]), rng.standard_normal(90)])
    return X, path, Y


@pytest.mark.parametrize(("cache", "budget"), [(True, None), (False, None), ("auto", 2 * 20 * 90 * 8)])
def test_dask_matvec_equals_in_memory_kernel(client, problem, cache, budget):
    X, path, _ = problem
    V = np.random.default_rng(1).standard_normal((90, 3))
    K = snt.bias_ntk(X, 1.0)
    with KernelOperator(path, 1.0, 0.5, client=client, panel_rows=20, cache=cache, memory_budget=budget) as op:
        assert op.cached_panels == {True: 5, False: 0, "auto": 2}[cache]
        np.testing.assert_allclose(op @ V, K @ V + 0.5 * V, rtol=0, atol=1e-12)
        np.testing.assert_allclose(op @ V[:, 1], K @ V[:, 1] + 0.5 * V[:, 1], rtol=0, atol=1e-12)


def test_dask_cg_equals_direct_solve_array_input(client, problem, tmp_path):
    X, _, Y = problem
    expected = np.linalg.solve(snt.bias_ntk(X, 0.0) + 1e-2 * np.eye(90), Y)
    Xt = unit_rows(np.random.default_rng(3), 30, 4)
    res = kernel_ridge(X, Y, 0.0, 1e-2, X_test=Xt, client=client, panel_rows=25, tol=1e-13, rank=20,
                       data_dir=tmp_path)
    assert res.solver == "cg" and res.converged and res.cached_panels == 4
    np.testing.assert_allclose(res.coef, expected, rtol=0, atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(res.predictions, snt.bias_ntk(Xt, 0.0, X) @ expected, rtol=0,
                               atol=1e-8 * np.abs(expected).max())
    assert list(tmp_path.iterdir()) == []  # the .npy files written for the workers are removed


def test_dask_cg_survives_a_killed_worker(client, problem):
    X, path, Y = problem
    expected = np.linalg.solve(snt.bias_ntk(X, 1.0) + 1e-3 * np.eye(90), Y)
    pids = sorted(client.run(os.getpid).values())
    killed = []

    def progress(stage, done, total):
        if stage == "cg" and done == 2 and not killed:
            os.kill(pids[0], signal.SIGKILL)  # a worker process this module's cluster started
            killed.append(pids[0])

    res = kernel_ridge(path, Y, 1.0, 1e-3, client=client, panel_rows=15, tol=1e-13, rank=70, progress=progress)
    assert killed and res.converged and res.iterations > 2
    np.testing.assert_allclose(res.coef, expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_dask_bad_client(problem, tmp_path):
    X, path, _ = problem
    with pytest.raises(TypeError, match=r"client: expected a dask\.distributed\.Client"):
        KernelOperator(path, 1.0, client=object())
    with pytest.raises(TypeError, match="client"):
        kernel_ridge(X, np.ones(90), 1.0, 0.1, client="tcp://nowhere:1", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_study_on_a_scheduler_equals_the_local_run(client, tmp_path):
    """``reproduce conditioning --scheduler ADDRESS``: the finite networks run as tasks on the cluster, each one's
    file lands in OUT/networks, and the result equals the run in this process."""
    import json

    from click.testing import CliRunner

    from sparsentk.cli import cli

    args = ["reproduce", "conditioning", "--depths", "0,1", "--width", "16", "--seeds", "0", "--synthetic-n", "8",
            "--data", "none", "--biases", "0,1", "--bias-n", "6", "--resume"]
    results = {}
    for where, extra in (("local", []), ("dask", ["--scheduler", client.scheduler.address])):
        out = tmp_path / where
        r = CliRunner().invoke(cli, [*args, *extra, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert len(list((out / "networks").glob("*.json"))) == 8
        results[where] = json.loads((out / "conditioning.json").read_text())
    for key in ("depth", "bias"):
        assert results["dask"][key] == results["local"][key]
