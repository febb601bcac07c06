"""Empty-kernel call overhead on the host device (goal <= 50 us), side by side with the floor:
a bare round trip over the same kind of pipe to a child process that answers at once."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, met, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402

KERNELS = """
#include <stdint.h>
void empty(void) {}
int32_t add(int32_t a, int32_t b) { return a + b; }
void touch(const float *a, float *b, int32_t n) { (void)a; (void)b; (void)n; }
"""


def pipe_round_trip() -> float:
    """Seconds for one 32-byte request/reply round trip with `cat` as the echoing child."""
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    msg = b"x" * 32
    fi, fo = proc.stdin.fileno(), proc.stdout.fileno()

    def once():
        os.write(fi, msg)
        os.read(fo, 32)
    try:
        return median(repeat(once, number=2000))
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    cfg = devices.host()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "bench_kernels.c"
        src.write_text(KERNELS)
        lib = build([src], cfg)
        with Session(cfg) as sess:
            mod = sess.load(lib)
            empty, add, touch = mod["empty"], mod["add"], mod["touch"]
            for _ in range(200):
                empty()
            t_empty = median(repeat(empty, number=2000))
            t_add = median(repeat(lambda: add(1, 2), number=2000))
            a = np.zeros(64, np.float32)
            ta, tb = sess.tensor(a), sess.empty((64,), "float32")
            t_tensors = median(repeat(lambda: touch(ta, tb, 64), number=2000))
            t_arrays = median(repeat(lambda: touch(a, a, 64), number=2000))
    floor = pipe_round_trip()
    print("call overhead on the host device (median of 5 x 2000 calls)")
    print(f"  empty()                      {t_empty * 1e6:7.1f} us   goal <= 50 us   "
          f"{met(t_empty, 50e-6)}")
    print(f"  add(1, 2) -> int             {t_add * 1e6:7.1f} us")
    print(f"  touch(tensor, tensor, 64)    {t_tensors * 1e6:7.1f} us")
    print(f"  touch(array, array, 64)      {t_arrays * 1e6:7.1f} us   (copy in + copy out)")
    print(f"  bare pipe round trip         {floor * 1e6:7.1f} us   (the floor)")
    print(f"  empty() / pipe round trip    {t_empty / floor:7.2f} x")


if __name__ == "__main__":
    main()
