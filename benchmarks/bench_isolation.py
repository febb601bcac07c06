"""What closing every command port to other users costs, measured side by side in one run.

Spike: Spike and OpenOCD in the session's own network namespace (Python holds sockets the
namespace's keeper connected and passed over; no relay) against the same pair on 127.0.0.1
ports (UTVM_HOST_PRIVATE_NET=0). QEMU: its gdbstub on a Unix socket in the session folder
against QEMU started by hand with a TCP gdbstub, attached with devices.gdb_remote. Figures are
ratios private / open: session start, empty-call round trip, bulk write and read.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, repeat  # noqa: E402

from utvm_host import Session, build, devices, launch  # noqa: E402
from utvm_host.layout import MemoryLayout  # noqa: E402
from utvm_host.link import Linker  # noqa: E402
from utvm_host.toolchain import build_runtime  # noqa: E402

EMPTY = "void empty(void) {}\n"


def measure(cfg, src: Path, nbytes: int, calls: int) -> dict:
    t0 = time.perf_counter()
    sess = Session(cfg).open()
    opened = time.perf_counter() - t0
    try:
        mod = sess.load(build([src], cfg))
        empty = mod["empty"]
        for _ in range(5):
            empty()
        call = median(repeat(empty, number=calls, repeat=5))
        t = sess.empty((nbytes,), "uint8")
        data = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
        write = median(repeat(lambda: t.copyfrom(data), number=1, repeat=3))
        read = median(repeat(t.numpy, number=1, repeat=3))
        assert (t.numpy() == data).all()
    finally:
        sess.close()
    return {"start": opened, "call": call, "write": nbytes / write, "read": nbytes / read}


def qemu_over_tcp(tmp: Path, src: Path, nbytes: int, calls: int) -> dict:
    """QEMU Cortex-M3 started by hand with a TCP gdbstub (as a user would), attached by port."""
    cfg = devices.qemu("cortex-m3")
    layout = MemoryLayout([(r.name, r.start, r.size, r.align) for r in cfg.resolved_layout()])
    boot = Linker(cfg, layout, tmp).place(build_runtime(cfg), "boot", {})
    port = launch.free_port()
    t0 = time.perf_counter()
    qemu = launch.ManagedProcess("qemu", [launch.require_program("qemu-system-arm", "qemu-system-arm"), "-machine",
                                          cfg["transport"]["machine"], "-nographic", "-monitor", "none", "-serial",
                                          "null", "-kernel", boot.elf_path, "-S", "-gdb",
                                          f"tcp:127.0.0.1:{port}"], tmp / "qemu-tcp.log")
    try:
        memory = [(m["start"], m["size"]) for m in cfg["memory"]]
        started = time.perf_counter() - t0   # the session's start below counts QEMU's start too
        figures = measure(devices.gdb_remote("127.0.0.1", port, arch=cfg["arch"], memory=memory), src, nbytes, calls)
        figures["start"] += started
        return figures
    finally:
        qemu.stop()


def best(a: dict, b: dict) -> dict:
    """The better figure of two interleaved runs (the machine is shared: noise only slows)."""
    return {k: (min if k in ("start", "call") else max)(a[k], b[k]) for k in a}


def row(name: str, private: dict, open_: dict) -> None:
    print(f"  {name}")
    print(f"    session start   {private['start'] * 1e3:8.1f} ms  vs {open_['start'] * 1e3:8.1f} ms   "
          f"ratio {private['start'] / open_['start']:5.2f}")
    print(f"    empty call      {private['call'] * 1e6:8.0f} us  vs {open_['call'] * 1e6:8.0f} us   "
          f"ratio {private['call'] / open_['call']:5.2f}")
    for key in ("write", "read"):
        print(f"    bulk {key:5}      {private[key] / 1024:8.1f} KiB/s vs {open_[key] / 1024:8.1f} KiB/s "
              f"ratio {private[key] / open_[key]:5.2f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "empty.c"
        src.write_text(EMPTY)
        print("isolation cost: private channels / open loopback ports (medians; ratio 1.00 = free)")
        spike = devices.spike(isa="rv32imac")

        def spike_open() -> dict:
            os.environ["UTVM_HOST_PRIVATE_NET"] = "0"
            try:
                return measure(spike, src, 32 * 1024, 50)
            finally:
                del os.environ["UTVM_HOST_PRIVATE_NET"]

        runs = [(measure(spike, src, 32 * 1024, 50), spike_open()) for _ in range(2)]
        row("Spike rv32 + OpenOCD: private network namespace / 127.0.0.1 ports",
            best(runs[0][0], runs[1][0]), best(runs[0][1], runs[1][1]))
        runs = [(measure(devices.qemu("cortex-m3"), src, 2 << 20, 500), qemu_over_tcp(Path(tmp), src, 2 << 20, 500))
                for _ in range(2)]
        row("QEMU Cortex-M3 gdbstub: Unix socket / 127.0.0.1 TCP port",
            best(runs[0][0], runs[1][0]), best(runs[0][1], runs[1][1]))


if __name__ == "__main__":
    main()
