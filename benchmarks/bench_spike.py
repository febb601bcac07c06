"""Spike over OpenOCD, measured side by side on one Spike in one run:

- bulk write and read: ours / gdb-multiarch `restore` and `dump` through the same OpenOCD (goal >= 1.0)
- empty-kernel call round trip: ours / a raw Tcl `reg pc; reg sp; resume; wait_halt` (goal <= 1.3)
- time to open a session: start Spike + OpenOCD + load the runtime (goal < 1.5 s)
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import gdb_restore_dump, median, met, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402

SIZE = 64 * 1024


def gdb_transfer(target: str, isa: str, addr: int, src: Path, dst: Path) -> tuple:
    """gdb on OpenOCD's gdb port, reached as a user's gdb reaches it (``sess.gdb_target``: a
    socket in the session folder relayed into the session's private network)."""
    arch = "riscv:rv32" if isa.startswith("rv32") else "riscv:rv64"
    return gdb_restore_dump(arch, f"target extended-remote {target}", addr, SIZE, src, dst)


def main() -> None:
    isa = sys.argv[1] if len(sys.argv) > 1 else "rv32imac"
    cfg = devices.spike(isa=isa)
    opens = []
    for _ in range(3):
        t0 = time.perf_counter()
        with Session(cfg):
            opens.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp, Session(cfg) as sess:
        tmp = Path(tmp)
        tr = sess.transport
        data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
        src, dst = tmp / "src.bin", tmp / "dst.bin"
        src.write_bytes(data)
        buf = sess.empty((SIZE,), "uint8")
        addr = buf.addr
        ours_w, ours_r, gdb_w, gdb_r = [], [], [], []

        def ours(times: int) -> None:
            tr.write(addr, data[:4096])                 # connected before timing, as gdb is
            for _ in range(times):
                t0 = time.perf_counter(); tr.write(addr, data); ours_w.append(time.perf_counter() - t0)
                t0 = time.perf_counter(); back = tr.read(addr, SIZE); ours_r.append(time.perf_counter() - t0)
                assert back == data

        # ours, gdb, ours again: a drift of the machine during the run hits both sides
        ours(2)
        tr.release_gdb_port()                           # OpenOCD serves one gdb connection
        for _ in range(3):
            w, r = gdb_transfer(sess.gdb_target, isa, addr, src, dst)
            gdb_w.append(w); gdb_r.append(r)
            assert dst.read_bytes() == data
            tr.halt()                                   # gdb's detach may have resumed the core
        ours(2)
        src_name = tmp / "empty.c"
        src_name.write_text("void empty(void) {}\n")
        empty = sess.load(build([src_name], cfg))["empty"]
        empty()
        n = 30
        t_ours = median(repeat(empty, number=n, repeat=5))
        entry, top = sess._entry, sess._stack_block.end & ~0xF
        one_trip = (f"reg pc 0x{entry:x}; reg sp 0x{top:x}; resume; wait_halt 1000")
        t_raw_one = median(repeat(lambda: tr.raw(one_trip), number=n, repeat=5))

        def three_trips():
            tr.raw(f"reg pc 0x{entry:x}"); tr.raw(f"reg sp 0x{top:x}"); tr.raw("resume"); tr.raw("wait_halt 1000")
        t_raw_sep = median(repeat(three_trips, number=n, repeat=5))
    kib = SIZE / 1024
    w_ratio = median(gdb_w) / median(ours_w)
    r_ratio = median(gdb_r) / median(ours_r)
    print(f"Spike {isa} over OpenOCD, one Spike, one run")
    print(f"  write {kib:.0f} KiB: ours {kib / median(ours_w):6.1f} KiB/s   gdb restore {kib / median(gdb_w):6.1f} KiB/s   "
          f"ours/gdb {w_ratio:5.2f} (goal >= 1.0) {met(w_ratio, 1, at_most=False)}")
    print(f"  read  {kib:.0f} KiB: ours {kib / median(ours_r):6.1f} KiB/s   gdb dump    {kib / median(gdb_r):6.1f} KiB/s   "
          f"ours/gdb {r_ratio:5.2f} (goal >= 1.0) {met(r_ratio, 1, at_most=False)}")
    print(f"  empty call: ours {t_ours * 1e3:.2f} ms   raw reg pc+sp/resume/wait_halt in one script "
          f"{t_raw_one * 1e3:.2f} ms, as separate commands {t_raw_sep * 1e3:.2f} ms")
    print(f"  ours / raw one-script {t_ours / t_raw_one:5.2f} (goal <= 1.3) "
          f"{met(t_ours / t_raw_one, 1.3)}   ours / raw separate {t_ours / t_raw_sep:5.2f}")
    print(f"  open a session (Spike + OpenOCD + runtime): median {statistics.median(opens):.2f} s of "
          f"{len(opens)} (goal < 1.5 s) {'OK' if statistics.median(opens) < 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
