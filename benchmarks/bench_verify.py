"""What Session(verify=True) costs: tensor writes (copyfrom) and a small kernel call, with and
without verification, on the host device, Spike (OpenOCD) and QEMU (gdbstub), as ratios
verify / no-verify. Long writes on Spike are checked with a CRC-32 the device computes; this also
prints what a read-back would have cost there instead.

    python benchmarks/bench_verify.py [host spike-rv32 qemu-cortex-m3 ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402

EXAMPLES = Path(__file__).parent.parent / "examples" / "kernels"
DEVICES = {
    "host": (devices.host, 1 << 20, 200),
    "spike-rv32": (lambda: devices.spike(isa="rv32imac"), 16 << 10, 5),
    "qemu-cortex-m3": (lambda: devices.qemu("cortex-m3"), 256 << 10, 20),
}


def measure(name: str) -> None:
    make, size, number = DEVICES[name]
    cfg = make()
    lib = build([EXAMPLES / "vadd.c"], cfg)
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    a = np.arange(16, dtype=np.float32)
    c = np.zeros(16, np.float32)
    times = {}
    for verify in (False, True):
        with Session(cfg, verify=verify) as sess:
            mod = sess.load(lib)
            t = sess.empty(size, np.uint8)
            vadd = mod["vadd"]
            times[verify] = (median(repeat(lambda: t.copyfrom(data), number=max(1, number // 5), repeat=3)),
                             median(repeat(lambda: vadd(a, a, c, 16), number=number, repeat=3)))
            if verify and name == "spike-rv32":
                readback = median(repeat(lambda: sess.transport.read(t.addr, size), number=1, repeat=3))
                print(f"{name}: read-back of {size:,} B would take {readback * 1e3:.1f} ms per write "
                      f"(the device CRC is used instead)")
    (w0, c0), (w1, c1) = times[False], times[True]
    print(f"{name}: write {size:,} B {w0 * 1e3:.2f} -> {w1 * 1e3:.2f} ms (verify/no-verify {w1 / w0:.2f}x); "
          f"vadd call {c0 * 1e6:.0f} -> {c1 * 1e6:.0f} us ({c1 / c0:.2f}x)")


def main() -> None:
    for name in sys.argv[1:] or list(DEVICES):
        measure(name)


if __name__ == "__main__":
    main()
