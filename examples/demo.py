"""utvm-host demo on the embedded default device (the host): compile C kernels, place them in
device memory, call them with numpy arrays, check the results, crash one safely."""
import pathlib
import time

import numpy as np

from utvm_host import DeviceFault, Session, build, devices, load

HERE = pathlib.Path(__file__).parent / "kernels"


def main() -> None:
    cfg = devices.host()
    with Session(cfg) as sess:
        t0 = time.perf_counter()
        lib = build([HERE / "vadd.c", HERE / "dot.c", HERE / "matmul.c"], cfg, cflags=["-O2"])
        print(f"built {lib.name} in {(time.perf_counter() - t0) * 1e3:.0f} ms (cached after the first time)")
        mod = load(lib)
        print(mod)

        a = np.arange(64, dtype=np.float32)
        b = np.ones(64, np.float32)
        c = np.empty_like(a)
        mod["vadd"](a, b, c, 64)
        assert (c == a + b).all()
        print("vadd      matches numpy:", c[:4], "...")

        rng = np.random.default_rng(0)
        x = rng.integers(-128, 128, 64, dtype=np.int8)
        y = rng.integers(-128, 128, 64, dtype=np.int8)
        s = mod["dot_i8"](x, y, 64)
        assert s == int(x.astype(np.int32) @ y.astype(np.int32))
        print("dot_i8    matches numpy:", s)

        n = 16
        A = rng.standard_normal((n, n), dtype=np.float32)
        B = rng.standard_normal((n, n), dtype=np.float32)
        C = np.empty((n, n), np.float32)
        mod["matmul"](A, B, C, n)
        assert np.allclose(C, A @ B, rtol=1e-5, atol=1e-5)
        print("matmul    matches numpy: max |diff| =", float(np.abs(C - A @ B).max()))

        t = sess.tensor(a)                      # device-resident: no copy per call
        u = sess.empty((64,), "float32")
        mod["vadd"](t, t, u, 64)
        assert (u.numpy() == 2 * a).all()
        print("tensors   stay on the device:", t, u)

        crash = load(build([HERE / "crash.c"], cfg))
        try:
            crash["write_null"](0)
        except DeviceFault as exc:
            print("a crashing kernel raised DeviceFault:", exc)
        mod["vadd"](a, b, c, 64)                 # and the session goes on working
        assert (c == a + b).all()
        print("after the crash, vadd still matches numpy")
        print()
        print(sess.memory_map())
    print("demo finished: all results matched numpy")


if __name__ == "__main__":
    main()
