"""The tuning loop: parallel builds, one session, wrong candidates rejected, failures logged,
resume without re-measuring."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import EXAMPLES
from utvm_host import devices
from utvm_host.tune import tune

SRC = EXAMPLES / "matmul_tiled.c"


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((16, 16), dtype=np.float32)
    b = rng.standard_normal((16, 16), dtype=np.float32)
    return a, b, np.zeros((16, 16), np.float32)


def test_wrong_and_broken_candidates_are_rejected_and_logged(problem, tmp_path):
    a, b, c = problem
    space = {"TILE_M": [4, 8], "WRONG": [0, 1], "UNROLL": [1, "("]}      # "(" does not compile
    log = tmp_path / "tune.jsonl"
    result = tune(SRC, space, devices.host(), "matmul", (a, b, c, 16), reference={2: a @ b}, log=log,
                  progress=False)
    by_status = {}
    for t in result.trials:
        by_status.setdefault(t.status, []).append(t.config)
    assert sorted(map(str, by_status["ok"])) == sorted(map(str, [{"TILE_M": m, "WRONG": 0, "UNROLL": 1} for m in (4, 8)]))
    assert len(by_status["wrong"]) == 2 and all(cfg["WRONG"] == 1 for cfg in by_status["wrong"])
    assert len(by_status["build error"]) == 4
    assert result.best.config["WRONG"] == 0 and result.best.mean > 0 and result.best.counter == "nanoseconds"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 8 and {l["status"] for l in lines} == {"ok", "wrong", "build error"}
    wrong = next(l for l in lines if l["status"] == "wrong")
    assert wrong["error"].startswith("output argument 2 differs from the reference (max |diff| ")
    assert np.array_equal(c, np.zeros((16, 16), np.float32))          # the caller's arrays are untouched


def test_resume_measures_nothing_twice(problem, tmp_path, monkeypatch):
    a, b, c = problem
    space = {"TILE_M": [4, 8], "TILE_N": [4, 8]}
    log = tmp_path / "tune.jsonl"
    first = tune(SRC, space, devices.host(), "matmul", (a, b, c, 16), log=log, progress=False)
    assert len(first.trials) == 4
    with log.open("a") as f:
        f.write('{"config": {"TILE_M": 4, "TI')                       # a line cut short by a crash
    from utvm_host import tune as tune_module
    measured = []
    real = tune_module._measure
    monkeypatch.setattr(tune_module, "_measure", lambda *a, **k: measured.append(a[1]) or real(*a, **k))
    again = tune(SRC, space, devices.host(), "matmul", (a, b, c, 16), log=log, progress=False)
    assert measured == []                                              # everything came from the log
    assert [t.config for t in again.trials] == [t.config for t in first.trials]
    assert again.best.config == first.best.config
    bigger = {"TILE_M": [4, 8], "TILE_N": [4, 8, 16]}
    tune(SRC, bigger, devices.host(), "matmul", (a, b, c, 16), log=log, progress=False)
    assert [m["TILE_N"] for m in measured] == [16, 16]                 # only the new candidates


def test_search_plot(problem, tmp_path):
    a, b, c = problem
    result = tune(SRC, {"TILE_M": [4, 8]}, devices.host(), "matmul", (a, b, c, 16), progress=False)
    png = result.plot(str(tmp_path / "search.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
