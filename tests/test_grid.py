"""run_grid: one file per configuration, resume runs each configuration exactly once, failures recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import sparsentk as snt
from sparsentk import _grid


def _square(config: dict) -> dict:
    """Counts its calls in ``config['log']`` (one line per call) and returns x² (or fails on request)."""
    with open(config["log"], "a") as fh:
        fh.write(f"{config['x']}\n")
    if config.get("fail") == config["x"]:
        raise RuntimeError(f"configuration {config['x']} always fails")
    if config.get("die") == config["x"]:
        os._exit(3)  # the worker process dies
    return {"y": config["x"] ** 2, "pid": os.getpid()}


def _grid_of(tmp_path: Path, n: int = 6, **extra) -> list[dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return [{"x": x, "log": str(tmp_path / "calls.log"), **extra} for x in range(n)]


def _calls(tmp_path: Path) -> list[int]:
    path = tmp_path / "calls.log"
    return sorted(int(v) for v in path.read_text().split()) if path.exists() else []


def test_sequential_writes_one_file_per_configuration_in_order(tmp_path):
    grid = _grid_of(tmp_path)
    result = snt.run_grid(_square, grid, tmp_path / "out")
    assert [r["result"]["y"] for r in result.records] == [x * x for x in range(6)]
    assert all(r["status"] == "done" and not r["reused"] for r in result.records)
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 6
    for record in result.records:
        saved = json.loads((tmp_path / "out" / f"{record['key']}.json").read_text())
        assert saved["config"] == record["config"] and saved["result"] == record["result"]
        assert saved["version"] == snt.__version__
    assert [row["x"] for row in result.table()] == list(range(6))
    assert [row["y"] for row in result.table()] == [x * x for x in range(6)]


def test_interrupted_grid_resumes_and_runs_each_configuration_once(tmp_path):
    grid = _grid_of(tmp_path)

    def stop_halfway(done, total, config, record):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        snt.run_grid(_square, grid, tmp_path / "out", progress=stop_halfway)
    assert _calls(tmp_path) == [0, 1, 2]
    result = snt.run_grid(_square, grid, tmp_path / "out")
    assert _calls(tmp_path) == list(range(6))  # every configuration exactly once over both runs
    assert [r["reused"] for r in result.records] == [True] * 3 + [False] * 3
    fresh = snt.run_grid(_square, _grid_of(tmp_path / "x"), None)
    assert [r["y"] for r in result.results] == [r["y"] for r in fresh.results]


def test_failing_configuration_is_recorded_and_the_rest_go_on(tmp_path):
    grid = _grid_of(tmp_path, fail=2)
    result = snt.run_grid(_square, grid, tmp_path / "out", retries=1)
    statuses = [r["status"] for r in result.records]
    assert statuses == ["done", "done", "failed", "done", "done", "done"]
    assert "always fails" in result.failed[0]["error"]["message"]
    assert _calls(tmp_path).count(2) == 2  # tried again once
    assert [row["x"] for row in result.table()] == [0, 1, 3, 4, 5]
    again = snt.run_grid(_square, grid, tmp_path / "out")
    assert _calls(tmp_path).count(2) == 3 and len(_calls(tmp_path)) == 8  # only the failed one runs again
    assert again.table() == result.table()


def test_resume_reruns_only_corrupt_missing_or_changed_files(tmp_path):
    grid = _grid_of(tmp_path)
    first = snt.run_grid(_square, grid, tmp_path / "out")
    files = {r["config"]["x"]: tmp_path / "out" / f"{r['key']}.json" for r in first.records}
    files[1].write_text("{ not json")
    files[4].unlink()
    grid[5] = {**grid[5], "extra": 1}  # a changed configuration gets its own file
    before = {x: p.read_bytes() for x, p in files.items() if x in (0, 2, 3)}
    snt.run_grid(_square, grid, tmp_path / "out")
    assert sorted(_calls(tmp_path)) == sorted([*range(6), 1, 4, 5])
    assert {x: files[x].read_bytes() for x in before} == before
    assert snt.run_grid(_square, grid, tmp_path / "out", resume=False).records[0]["reused"] is False


def test_key_depends_on_configuration_function_and_version(monkeypatch):
    key = _grid.config_key({"a": 1}, _square)
    assert key == _grid.config_key({"a": 1}, _square)
    assert key != _grid.config_key({"a": 2}, _square)
    assert key != _grid.config_key({"a": 1}, _calls)
    monkeypatch.setattr(_grid, "_version", lambda: "0.0.0-other")
    assert key != _grid.config_key({"a": 1}, _square)


def test_process_pool_matches_sequential_and_survives_a_dying_worker(tmp_path):
    grid = _grid_of(tmp_path, n=5, die=3)
    pooled = snt.run_grid(_square, grid, tmp_path / "pool", workers=2)
    assert [r["status"] for r in pooled.records] == ["done", "done", "done", "failed", "done"]
    assert "died" in pooled.failed[0]["error"]["message"]
    assert {r["result"]["pid"] for r in pooled.records if r["result"]} != {os.getpid()}
    sequential = snt.run_grid(_square, _grid_of(tmp_path / "seq", n=5), None)
    assert [row["y"] for row in pooled.table()] == [row["y"] for i, row in enumerate(sequential.table()) if i != 3]


def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        result = snt.run_grid(_square, _grid_of(tmp_path, fail=1), tmp_path / "out", executor=client.get_executor())
    assert [r["status"] for r in result.records] == ["done", "failed", "done", "done", "done", "done"]
    assert [row["y"] for row in result.table()] == [0, 4, 9, 16, 25]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fn": 3}, TypeError, "fn: expected a callable"),
        ({"grid": {"x": 1}}, TypeError, "grid: expected a sequence"),
        ({"grid": [{"x": object()}]}, TypeError, "grid: configuration 0 is not JSON"),
        ({"grid": [1]}, TypeError, "grid: expected a sequence of dicts, got int at position 0"),
        ({"grid": [{"x": 1}, {"x": 1}]}, ValueError, "grid: configurations 0 and 1 are equal"),
        ({"workers": 0}, ValueError, "workers: expected a positive integer"),
        ({"executor": "pool"}, TypeError, "executor: expected a concurrent.futures.Executor"),
        ({"progress": 1}, TypeError, "progress: expected a callable"),
    ],
)
def test_bad_input(tmp_path, kwargs, error, match):
    args = {"fn": _square, "grid": _grid_of(tmp_path, n=2), "out": tmp_path / "out", **kwargs}
    with pytest.raises(error, match=match):
        snt.run_grid(**args)
    assert _calls(tmp_path) == []


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="out: cannot create the folder"):
        snt.run_grid(_square, _grid_of(tmp_path, n=1), blocker / "sub")


def test_make_executor(tmp_path):
    assert _grid.make_executor(1) is None
    with pytest.raises(ValueError, match="workers"):
        _grid.make_executor(0)
    with pytest.raises(ValueError, match="scheduler: cannot connect"):
        _grid.make_executor(scheduler="tcp://127.0.0.1:9", timeout=1)


def test_sweep_runs_through_the_grid_and_resumes(tmp_path):
    X, y = snt.data.sphere(12, 3, seed=0)
    kwargs = {"biases": [0.0, 1.0], "widths": [64, 128], "steps": 5, "seed": 1}
    seen = []
    first = snt.sweep(X, y, **kwargs, out=tmp_path / "runs", progress=lambda d, t, c, r: seen.append(r["reused"]))
    assert seen == [False] * 4 and len(list((tmp_path / "runs").glob("*.json"))) == 4
    seen.clear()
    again = snt.sweep(X, y, **kwargs, out=tmp_path / "runs", progress=lambda d, t, c, r: seen.append(r["reused"]))
    assert seen == [True] * 4 and again["rows"] == first["rows"]
    other = snt.sweep(X, -y, **kwargs, out=tmp_path / "runs")  # other data: nothing reused
    assert len(list((tmp_path / "runs").glob("*.json"))) == 8 and other["rows"] != first["rows"]
    pooled = snt.sweep(X, y, **kwargs, workers=2)
    assert pooled["rows"] == first["rows"]


@pytest.mark.parametrize(("path", "args"), [
    (["sweep"], ["--n", "8", "--dim", "3", "--biases", "0", "--widths", "16", "--steps", "2"]),
    (["reproduce", "conditioning"], ["--depths", "0", "--width", "8", "--seeds", "0", "--data", "none"]),
    (["reproduce", "depth-accuracy"], ["--depths", "1", "--data", "digits"]),
    (["reproduce", "width"], ["--quick"]),
    (["reproduce", "lazy"], ["--quick", "--data", "digits"]),
])
def test_grid_commands_take_workers_and_a_scheduler(path, args, tmp_path, capsys, monkeypatch):
    """Every study that runs many configurations has ``--workers`` and ``--scheduler``; an unreachable scheduler is
    a one-line error naming the flag (exit 2) before any work starts."""
    import functools

    from click.testing import CliRunner

    from sparsentk.cli import cli, main

    monkeypatch.setattr(_grid, "make_executor", functools.partial(_grid.make_executor, timeout=1))
    help_text = CliRunner().invoke(cli, [*path, "--help"]).output
    assert "--workers" in help_text and "--scheduler" in help_text
    with pytest.raises(SystemExit) as exc:
        main([*path, *args, "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--scheduler" in err and "cannot connect" in err and "\n" not in err
