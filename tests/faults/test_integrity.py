"""Data integrity under interruptions and crashes (issue 14, items 3-6 and 8): what a read returns
is what the device holds, a dead device is an error on every path and is restarted, every run's
completion record is checked, and Session(verify=True) checks every write."""
from __future__ import annotations

import os
import signal
import threading
import time
import traceback

import numpy as np
import pytest

from helpers import EXAMPLES, device_cfg, is_host
from utvm_host import ConnectionLost, DeviceError, Session, TransportError, build

#: Where each check applies: the serial devices too for transfers (their own link).
LINKS = ["host", "spike-rv32", "qemu-cortex-m3", "qemu-riscv32-serial", "qemu-cortex-m3-serial"]
#: Big enough that a transfer takes a good part of a second at the link's speed.
TRANSFER_BYTES = {"host": 4 << 20, "spike-rv32": 24 << 10, "qemu-cortex-m3": 1 << 20,
                  "qemu-riscv32-serial": 32 << 10, "qemu-cortex-m3-serial": 32 << 10}


@pytest.fixture(scope="module", params=LINKS)
def dev(request):
    return request.param


@pytest.fixture(scope="module")
def isess(dev):
    s = Session(device_cfg(dev)).open()
    try:
        yield s
    finally:
        s.close()


def _in_transport(exc: BaseException) -> bool:
    """Whether the exception was raised inside a transport (mid-transfer, not in the test's loop)."""
    return any("/transport/" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def _interrupt_during(operation, landings: int = 3, limit: float = 60.0) -> int:
    """Run ``operation`` over and over while a timer thread sends SIGINT to the main thread, until
    a KeyboardInterrupt came out of a transport ``landings`` times; returns how often it did."""
    main = threading.get_ident()
    rng = np.random.default_rng(7)
    landed, deadline = 0, time.monotonic() + limit
    while landed < landings and time.monotonic() < deadline:
        timer = threading.Timer(float(rng.uniform(0.01, 0.15)), signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        try:
            while True:
                operation()
        except KeyboardInterrupt as exc:
            landed += _in_transport(exc)
        finally:
            timer.cancel()
            timer.join()
    return landed


def test_ctrl_c_during_reads_leaves_the_link_in_step(dev, isess):
    n = TRANSFER_BYTES[dev]
    a_data = np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8)
    b_data = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8)
    a, b = isess.tensor(a_data), isess.tensor(b_data)
    landed = _interrupt_during(a.numpy, landings=1 if is_host(isess.cfg) else 3)
    assert landed >= (0 if is_host(isess.cfg) else 1)
    np.testing.assert_array_equal(b.numpy(), b_data)      # not the interrupted read's bytes
    np.testing.assert_array_equal(a.numpy(), a_data)
    np.testing.assert_array_equal(b.numpy()[:64], b_data[:64])


def test_ctrl_c_during_writes_leaves_the_link_in_step(dev, isess):
    n = TRANSFER_BYTES[dev]
    new = np.random.default_rng(3).integers(1, 256, n, dtype=np.uint8)
    b_data = np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8)
    a, b = isess.zeros(n, np.uint8), isess.tensor(b_data)
    landed = _interrupt_during(lambda: a.copyfrom(new), landings=1 if is_host(isess.cfg) else 3)
    assert landed >= (0 if is_host(isess.cfg) else 1)
    np.testing.assert_array_equal(b.numpy(), b_data)
    got = a.numpy()   # every byte is the old or the new one, and two reads agree
    assert np.all((got == 0) | (got == new))
    np.testing.assert_array_equal(a.numpy(), got)
    a.copyfrom(new)
    np.testing.assert_array_equal(a.numpy(), new)


# -- a dead device (items 4 and 8) -------------------------------------------------------------

def _kill(sess, name: str) -> int:
    proc = next(p for p in sess._processes if getattr(p, "name", "") == name)
    pid = proc.pid
    os.kill(pid, signal.SIGKILL)
    proc.proc.wait(5)
    return pid


DEAD = {"spike-rv32": "spike", "qemu-cortex-m3": "qemu", "qemu-cortex-m3-serial": "qemu"}


@pytest.mark.parametrize("dev_name", list(DEAD))
def test_device_killed_while_idle_is_an_error_then_restarted(dev_name):
    cfg = device_cfg(dev_name)
    with Session(cfg) as s:
        mod = s.load(build([EXAMPLES / "vadd.c"], cfg))
        data = np.arange(2048, dtype=np.float32)   # 8 KiB: a bulk read (gdb port on OpenOCD)
        t = s.tensor(data)
        pid = _kill(s, DEAD[dev_name])
        with pytest.raises(ConnectionLost) as e:
            t.numpy()
        assert str(e.value) == (
            f"the device's {DEAD[dev_name]} (pid {pid}) was killed by SIGKILL while read float32[2048]; the device "
            "could not be reached, so it was started again and its 1 library reloaded (tensor contents were lost "
            "with its memory)")
        with pytest.raises(DeviceError) as e:
            t.numpy()
        assert str(e.value) == (
            f"{t!r} lost its contents when the device was started again (the device went away while read "
            "float32[2048]); its memory now holds whatever the new device has there: write it again "
            "(t.copyfrom(array)) before reading it")
        c = np.zeros(16, np.float32)
        mod["vadd"](data[:16], data[:16], c, 16)
        np.testing.assert_array_equal(c, 2 * data[:16])
        t.copyfrom(data)
        np.testing.assert_array_equal(t.numpy(), data)


@pytest.mark.parametrize("dev_name", ["qemu-cortex-m3", "qemu-cortex-m3-serial"])
def test_device_killed_before_a_call_is_restarted_by_the_call(dev_name):
    cfg = device_cfg(dev_name)
    with Session(cfg) as s:
        mod = s.load(build([EXAMPLES / "vadd.c"], cfg))
        pid = _kill(s, "qemu")
        a, c = np.arange(16, dtype=np.float32), np.zeros(16, np.float32)
        with pytest.raises(ConnectionLost) as e:
            mod["vadd"](a, a, c, 16)
        assert str(e.value).startswith(f"the device's qemu (pid {pid}) was killed by SIGKILL while ")
        assert str(e.value).endswith("; the device could not be reached, so it was started again and its 1 library "
                                     "reloaded (tensor contents were lost with its memory)")
        mod["vadd"](a, a, c, 16)
        np.testing.assert_array_equal(c, 2 * a)


def test_qemu_killed_mid_transfer_is_connection_lost_not_a_raw_oserror():
    cfg = device_cfg("qemu-cortex-m3")
    with Session(cfg) as s:
        data = np.random.default_rng(5).integers(0, 256, 2 << 20, dtype=np.uint8)
        t = s.tensor(data)
        qemu = next(p for p in s._processes if getattr(p, "name", "") == "qemu")
        pid = qemu.pid
        timer = threading.Timer(0.05, os.kill, (pid, signal.SIGKILL))
        timer.start()
        try:
            with pytest.raises(ConnectionLost) as e:
                for _ in range(100):
                    t.numpy()
        finally:
            timer.join()
        assert str(e.value).startswith(f"the device's qemu (pid {pid}) was killed by SIGKILL while read uint8[")
        with pytest.raises(DeviceError, match="lost its contents when the device was started again"):
            t.numpy()


# -- every run's completion record (item 5) ----------------------------------------------------

CLOBBER_C = """
#include <stdint.h>
extern volatile uint32_t utvm_run[2];
/* A kernel that writes over the runtime's task count (as a buffer overrun might). */
void clobber_task_count(uint32_t value) { utvm_run[0] = value; }
void clobber_run_id(uint32_t value) { utvm_run[1] = value; }
int32_t answer(void) { return 42; }
"""


@pytest.fixture(params=["host", "spike-rv32", "qemu-cortex-m3", "qemu-riscv32-serial"])
def clobbering(request, tmp_path):
    """(session, the clobbering kernels, how recovery words the device's restart)."""
    cfg = device_cfg(request.param)
    src = tmp_path / "clobber.c"
    src.write_text(CLOBBER_C)
    with Session(cfg) as s:
        mod = s.load(build([src], cfg, cflags=["-O1"]))
        yield s, mod, {"host": "restarted", "qemu-riscv32-serial": "checked"}.get(request.param, "halted")


def test_a_corrupted_task_count_is_an_error_not_a_stale_result(clobbering):
    s, mod, verb = clobbering
    assert mod["answer"]() == 42
    with pytest.raises(DeviceError) as e:
        mod["clobber_task_count"](0)
    assert str(e.value) == (
        f"kernel 'clobber_task_count' did not run as asked: the runtime reports run {s._run_id & 0xFF} with 1 of "
        f"0 tasks done, but this was run {s._run_id & 0xFF} of 1 task: the runtime's state in device memory was "
        f"corrupted (a kernel writing outside its buffers?), so its result cannot be trusted; the device was "
        f"{verb} and its 1 library reloaded")
    assert mod["answer"]() == 42   # not the previous call's return slot
    assert mod["answer"]() == 42


def test_a_run_whose_record_does_not_echo_its_id_is_an_error(clobbering):
    s, mod, verb = clobbering
    run = s._run_id + 1
    with pytest.raises(DeviceError) as e:
        mod["clobber_run_id"](run + 7)
    assert str(e.value) == (
        f"kernel 'clobber_run_id' did not run as asked: the runtime reports run {(run + 7) & 0xFF} with 1 of 1 "
        f"tasks done, but this was run {run & 0xFF} of 1 task: the runtime's state in device memory was "
        f"corrupted (a kernel writing outside its buffers?), so its result cannot be trusted; the device was "
        f"{verb} and its 1 library reloaded")
    assert mod["answer"]() == 42
    with pytest.raises(DeviceError) as e:
        mod["clobber_task_count"](3)
    assert "the runtime reports run" in str(e.value) and "with 1 of 3 tasks done" in str(e.value)
    assert mod["answer"]() == 42


# -- Session(verify=True) (item 6) -------------------------------------------------------------

class _CorruptingWrites:
    """A fault the real links cannot be told to produce: flips one bit of the next write of at
    least ``size`` bytes (wraps the session's transport; everything else passes through)."""

    def __init__(self, inner, size: int):
        self.inner, self.size, self.armed = inner, size, True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, addr, data):
        view = memoryview(data).cast("B")
        if self.armed and view.nbytes >= self.size:
            self.armed = False
            bad = bytearray(view)
            bad[100] ^= 0x10
            return self.inner.write(addr, bad)
        return self.inner.write(addr, data)


@pytest.mark.parametrize("dev_name", ["host", "spike-rv32", "qemu-cortex-m3", "qemu-riscv32-serial"])
def test_verify_names_the_first_differing_byte(dev_name):
    cfg = device_cfg(dev_name)
    with Session(cfg, verify=True) as s:
        data = np.arange(4096, dtype=np.uint8) & 0x7F
        t = s.tensor(data)
        np.testing.assert_array_equal(t.numpy(), data)
        s.transport = _CorruptingWrites(s.transport, 4096)
        try:
            with pytest.raises(TransportError) as e:
                t.copyfrom(data)
        finally:
            s.transport = s.transport.inner
        assert str(e.value) == (
            f"verifying write uint8[4096]: 4,096 bytes written at 0x{t.addr:x} do not read back: byte "
            f"0x{t.addr + 100:x} (offset 100) holds 0x{data[100] ^ 0x10:02x} instead of 0x{data[100]:02x}; the link "
            "or the device's memory corrupts data (check the connection, or the memory map: is that address "
            "writable RAM?)")


def test_verify_is_on_from_the_environment(monkeypatch):
    monkeypatch.setenv("UTVM_HOST_VERIFY", "1")
    assert Session(device_cfg("host")).verify is True
    monkeypatch.setenv("UTVM_HOST_VERIFY", "0")
    assert Session(device_cfg("host")).verify is False
