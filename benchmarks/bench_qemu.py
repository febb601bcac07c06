"""QEMU over its gdbstub, measured side by side on one QEMU in one run:

- bulk write and read: ours / gdb-multiarch `restore` and `dump` (goal >= 0.9)
- empty-kernel call round trip (goal <= 1 ms)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import gdb_restore_dump, median, met, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402

SIZE = 1024 * 1024
GDB_ARCH = {"riscv32": "riscv:rv32", "riscv64": "riscv:rv64", "cortex-m3": "arm", "cortex-m33": "arm"}


def gdb_transfer(target: str, machine: str, addr: int, size: int, src: Path, dst: Path) -> tuple:
    """QEMU serves one gdb connection: ours is closed meanwhile. ``target``: its gdb socket."""
    return gdb_restore_dump(GDB_ARCH[machine], f"target remote {target}", addr, size, src, dst)


def main() -> None:
    machine = sys.argv[1] if len(sys.argv) > 1 else "riscv32"
    cfg = devices.qemu(machine)
    with tempfile.TemporaryDirectory() as tmp, Session(cfg) as sess:
        tmp = Path(tmp)
        data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
        src, dst = tmp / "src.bin", tmp / "dst.bin"
        src.write_bytes(data)
        buf = sess.empty((SIZE,), "uint8")
        addr = buf.addr
        empty_c = tmp / "empty.c"
        empty_c.write_text("void empty(void) {}\n")
        empty = sess.load(build([empty_c], cfg))["empty"]
        empty()
        t_call = median(repeat(empty, number=200, repeat=5))
        tr = sess.transport
        target = sess.gdb_target                     # QEMU's gdbstub: a socket in the session folder
        ours_w, ours_r, gdb_w, gdb_r = [], [], [], []
        for _ in range(3):
            t0 = time.perf_counter(); tr.write(addr, data); ours_w.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); back = tr.read(addr, SIZE); ours_r.append(time.perf_counter() - t0)
            assert back == data
        tr.close()                                   # QEMU's gdbstub takes one client at a time
        for _ in range(3):
            w, r = gdb_transfer(target, machine, addr, SIZE, src, dst)
            gdb_w.append(w); gdb_r.append(r)
            assert dst.read_bytes() == data
    mb = SIZE / 1e6
    w_ratio, r_ratio = median(gdb_w) / median(ours_w), median(gdb_r) / median(ours_r)
    print(f"QEMU {machine} over its gdbstub, one QEMU, one run ({SIZE >> 20} MiB transfers)")
    print(f"  write: ours {mb / median(ours_w):6.1f} MB/s   gdb restore {mb / median(gdb_w):6.1f} MB/s   "
          f"ours/gdb {w_ratio:5.2f} (goal >= 0.9) {met(w_ratio, 0.9, at_most=False)}")
    print(f"  read:  ours {mb / median(ours_r):6.1f} MB/s   gdb dump    {mb / median(gdb_r):6.1f} MB/s   "
          f"ours/gdb {r_ratio:5.2f} (goal >= 0.9) {met(r_ratio, 0.9, at_most=False)}")
    print(f"  empty call: {t_call * 1e3:.3f} ms (goal <= 1 ms) {met(t_call, 1e-3)}")


if __name__ == "__main__":
    main()
