"""Debug a faulting kernel on Spike, notebook style: stop at the fault, look at the bad pointer,
let the call end in DeviceFault, and go on with the session.

    python examples/debug_fault.py            # Spike rv32imac; or: qemu-riscv32, qemu-cortex-m3
"""
import pathlib
import sys

import numpy as np

from utvm_host import DeviceFault, Session, build, devices

HERE = pathlib.Path(__file__).parent / "kernels"


def main(device: str = "spike-rv32") -> None:
    cfg = devices.by_name(device)
    with Session(cfg) as sess:
        mod = sess.load(build([HERE / "scatter.c"], cfg, cflags=["-O0", "-g"]))
        idx = np.array([0, 1, 2, 0x10000000], np.int32)     # the last index is far out of range
        src = np.arange(1, 5, dtype=np.float32)
        dst = sess.zeros(8, "float32")
        with sess.debugger() as dbg:                         # gdb-multiarch, attached to the device
            dbg.break_on_fault()
            call = mod["scatter"].start(idx, src, dst, 4)    # runs until the debugger stops it
            frame = dbg.wait_stop()
            print(f"stopped in {frame.function} at {pathlib.Path(frame.file).name}:{frame.line}: "
                  f"{frame.fault['cause']}")
            print(f"  locals: {frame.locals}")
            print(f"  slot = {dbg.evaluate('slot')}, dst = {frame.args['dst']}, idx[i] = {dbg.evaluate('idx[i]')}")
            print(f"  the faulting address: 0x{frame.fault['address']:x}")
            dbg.cont()
            try:
                call.result(timeout=30)
            except DeviceFault as exc:
                print(f"the call ends in DeviceFault: {exc}")
        print("dst after the fault:", dst.numpy())
        mod["scatter"](np.arange(4, dtype=np.int32), src, dst, 4)   # the session goes on
        print("dst after a good call:", dst.numpy())


if __name__ == "__main__":
    main(*sys.argv[1:])
