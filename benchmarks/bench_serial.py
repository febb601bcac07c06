"""The serial transport on QEMU (the stub on its UART, reached through a loopback socket),
measured side by side in one run: bulk write and read throughput as a fraction of the raw byte
rate of the same socket into the same stub (its SINK command swallows unframed bytes; goal for
writes >= 0.8), and the round trip of an empty call."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402

SIZE = 128 * 1024


def main() -> None:
    for machine in sys.argv[1:] or ["riscv32", "cortex-m3"]:
        cfg = devices.qemu(machine, transport="serial")
        with Session(cfg) as sess:
            tr = sess.transport
            data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8)
            t = sess.empty(SIZE, "uint8")
            out = np.empty_like(data)
            raw, writes, reads = [], [], []
            for _ in range(3):   # interleaved, so drift on a shared machine hits all three alike
                raw.append(tr.raw_rate(SIZE))
                t0 = time.perf_counter()
                tr.write(t.addr, data)
                writes.append(SIZE / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                tr.readinto(t.addr, out)
                reads.append(SIZE / (time.perf_counter() - t0))
            assert (out == data).all()
            src = Path(sess.workdir) / "empty.c"
            src.write_text("void empty(void) {}\n")
            fn = sess.load(build([src], cfg))["empty"]
            call = median(repeat(fn, number=20, repeat=5))
            w, r, base = median(writes), median(reads), median(raw)
            print(f"QEMU {machine} over its UART (serial stub), {SIZE // 1024} KiB transfers, medians of 3")
            print(f"  raw bytes into the stub   {base / 1e3:7.1f} KB/s")
            print(f"  framed write              {w / 1e3:7.1f} KB/s   write / raw {w / base:.2f} (goal >= 0.8)")
            print(f"  framed read               {r / 1e3:7.1f} KB/s   read / raw  {r / base:.2f}")
            print(f"  empty call round trip     {call * 1e3:7.2f} ms")
            print(f"  link: {tr.stats}, stub: {tr.stub_stats()}")


if __name__ == "__main__":
    main()
