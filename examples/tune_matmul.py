"""Tune a tiled float32 matmul (examples/kernels/matmul_tiled.c) on the host device and on
Spike rv32, and print the best variant and its speed-up over the untiled baseline.

    python examples/tune_matmul.py            # host and Spike
    python examples/tune_matmul.py host       # one device
"""
import pathlib
import sys

import numpy as np

from utvm_host import devices
from utvm_host.tune import tune

SRC = pathlib.Path(__file__).parent / "kernels" / "matmul_tiled.c"
SPACE = {"TILE_M": [1, 4, 16], "TILE_N": [1, 4, 16], "UNROLL": [1, 2, 4]}


def run(name: str, cfg, n: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.zeros((n, n), np.float32)
    result = tune(SRC, SPACE, cfg, "matmul", (a, b, c, n), reference={2: a @ b}, number=1, repeat=1)
    baseline = next(t for t in result.trials if t.config == {"TILE_M": 1, "TILE_N": 1, "UNROLL": 1})
    best = result.best
    unit = "s" if best.mean is not None else best.counter
    print(f"{name}: {n}x{n} matmul, {len(result.trials)} candidates, best {best.config}: "
          f"{best.score:.4g} {unit} per call, {baseline.score / best.score:.2f}x faster than untiled "
          f"({baseline.score:.4g} {unit}); counter: {best.counter}")


def main() -> None:
    which = sys.argv[1:] or ["host", "spike"]
    if "host" in which:
        run("host", devices.host(), 64)
    if "spike" in which:
        run("spike rv32imac", devices.spike(isa="rv32imac"), 32)


if __name__ == "__main__":
    main()
