"""Tuning throughput on Spike rv32: a 64x64 float32 matmul, 27 candidates (TILE_M x TILE_N x
UNROLL), builds cached as in a real second run (goal >= 60 candidates per minute on 2 cores)."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import met  # noqa: E402

from utvm_host import devices  # noqa: E402
from utvm_host.tune import tune  # noqa: E402

SRC = Path(__file__).parent.parent / "examples" / "kernels" / "matmul_tiled.c"
SPACE = {"TILE_M": [4, 8, 16], "TILE_N": [4, 8, 16], "UNROLL": [1, 2, 4]}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "spike"
    cfg = devices.spike(isa="rv32imac") if name == "spike" else devices.host()
    n = 64
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.zeros((n, n), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = tune(SRC, SPACE, cfg, "matmul", (a, b, c, n), reference={2: a @ b},
                      log=Path(tmp) / "tune.jsonl", progress=False)
        elapsed = time.perf_counter() - t0
    rate = len(result.trials) / elapsed * 60
    ok = sum(t.status == "ok" for t in result.trials)
    print(f"tuning on {cfg.name}: {len(result.trials)} candidates ({ok} correct) in {elapsed:.1f} s; "
          f"best {result.best.config} at {result.best.value:,.0f} {result.best.counter} per call")
    print(f"  candidates per minute  {rate:.0f}   goal >= 60   {met(rate, 60, at_most=False)}")


if __name__ == "__main__":
    main()
