"""Device-memory write and read throughput on the host device (goal >= 1 GB/s), side by side
with a plain numpy copy of the same size in the same run."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, met, repeat  # noqa: E402

from utvm_host import Session, devices  # noqa: E402

SIZE = 32 * 1024 * 1024


def main() -> None:
    cfg = devices.host()
    data = np.random.default_rng(0).integers(0, 255, SIZE, dtype=np.uint8)
    back = np.empty_like(data)
    with Session(cfg) as sess:
        t = sess.empty((SIZE,), "uint8")
        tr = sess.transport
        t_write = median(repeat(lambda: tr.write(t.addr, data), number=3))
        t_read = median(repeat(lambda: tr.readinto(t.addr, back), number=3))
        t_tensor = median(repeat(lambda: sess.tensor(data).free(), number=3))
        t_numpy = median(repeat(lambda: t.numpy(), number=3))
        assert np.array_equal(back, data)
    scratch = np.empty_like(data)
    t_copy = median(repeat(lambda: np.copyto(scratch, data), number=3))
    gb = SIZE / 1e9
    print(f"host device memory throughput, {SIZE >> 20} MiB transfers (median of 5 x 3)")
    print(f"  transport.write              {gb / t_write:7.2f} GB/s   goal >= 1 GB/s   "
          f"{met(gb / t_write, 1, at_most=False)}")
    print(f"  transport.readinto           {gb / t_read:7.2f} GB/s   goal >= 1 GB/s   "
          f"{met(gb / t_read, 1, at_most=False)}")
    print(f"  sess.tensor(array) + free    {gb / t_tensor:7.2f} GB/s")
    print(f"  tensor.numpy()               {gb / t_numpy:7.2f} GB/s")
    print(f"  numpy copyto (reference)     {gb / t_copy:7.2f} GB/s")
    print(f"  write / numpy copy           {t_copy / t_write:7.2f} x   read / numpy copy {t_copy / t_read:5.2f} x")


if __name__ == "__main__":
    main()
