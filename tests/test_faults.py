"""A kernel that crashes or hangs raises DeviceFault / DeviceTimeout; Python survives and the
session keeps working (the host device restarts its CPU process and reloads the libraries)."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import EXAMPLES, KERNELS
from utvm_host import ConnectionLost, DeviceFault, DeviceTimeout, Session, build


@pytest.fixture(scope="module")
def mods(sess, host_cfg):
    faults = sess.load(build([KERNELS / "faults.c"], host_cfg, cflags=["-O1"]))
    vadd = sess.load(build([EXAMPLES / "vadd.c"], host_cfg))
    return faults, vadd


def _vadd_works(vadd) -> None:
    a = np.arange(32, dtype=np.float32)
    c = np.zeros(32, np.float32)
    vadd["vadd"](a, a, c, 32)
    np.testing.assert_array_equal(c, 2 * a)


class TestFaults:
    def test_segfault_names_cause_address_and_line(self, sess, mods):
        faults, vadd = mods
        pid_before = sess.transport.cpu.pid
        with pytest.raises(DeviceFault) as e:
            faults["segv"](0)
        err = e.value
        assert err.cause == "SIGSEGV (address not mapped)"
        assert err.fault_address == 0
        assert err.location.startswith("segv+0x") and err.location.endswith("(faults.c:5)")
        assert str(err) == (f"kernel 'segv' crashed: SIGSEGV (address not mapped) accessing address 0x0 at "
                            f"{err.location}; the device was restarted and its 2 libraries reloaded")
        assert sess.transport.cpu.pid != pid_before
        _vadd_works(vadd)

    def test_fault_address_is_reported(self, sess, mods):
        faults, vadd = mods
        with pytest.raises(DeviceFault) as e:
            faults["segv"](0x400)
        assert e.value.fault_address == 0x1000
        _vadd_works(vadd)

    def test_illegal_instruction(self, sess, mods):
        faults, vadd = mods
        with pytest.raises(DeviceFault) as e:
            faults["illegal"]()
        err = e.value
        assert err.cause == "SIGILL (illegal operand)"
        assert err.location.startswith("illegal+0x") and "(faults.c:9)" in err.location
        assert str(err) == (f"kernel 'illegal' crashed: SIGILL (illegal operand) at {err.location}; "
                            "the device was restarted and its 2 libraries reloaded")
        _vadd_works(vadd)

    def test_stack_overflow_faults_instead_of_corrupting(self, sess, mods):
        faults, vadd = mods
        with pytest.raises(DeviceFault) as e:
            faults["overflow_stack"](1)
        assert e.value.cause.startswith("SIGSEGV")
        stack = sess.layout["stack"]
        assert e.value.fault_address < stack.start        # ran off the bottom into the guard
        _vadd_works(vadd)

    def test_infinite_loop_times_out_with_location(self, sess, mods):
        faults, vadd = mods
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout) as e:
            faults["spin"](1, timeout=0.3)
        assert time.monotonic() - t0 < 3.0
        err = e.value
        assert err.timeout == 0.3
        assert err.location.startswith("spin+0x") and "(faults.c:14)" in err.location
        assert str(err) == (f"kernel 'spin' did not finish within 0.3 s; it was at {err.location} when stopped; "
                            "the device was restarted and its 2 libraries reloaded")
        _vadd_works(vadd)

    def test_session_timeout_applies_to_every_call(self, host_cfg):
        with Session(host_cfg, timeout=0.2) as s:
            faults = s.load(build([KERNELS / "faults.c"], host_cfg, cflags=["-O1"]))
            with pytest.raises(DeviceTimeout) as e:
                faults["spin"](0)
            assert e.value.timeout == 0.2

    def test_tensors_survive_a_crash(self, sess, mods):
        faults, vadd = mods
        t = sess.tensor(np.arange(10, dtype=np.float32))
        with pytest.raises(DeviceFault):
            faults["segv"](0)
        np.testing.assert_array_equal(t.numpy(), np.arange(10, dtype=np.float32))
        u = sess.empty((10,), "float32")
        vadd["vadd"](t, t, u, 10)
        np.testing.assert_array_equal(u.numpy(), 2 * np.arange(10, dtype=np.float32))
        t.free(); u.free()

    def test_ctrl_c_during_a_call_keeps_the_session_usable(self, sess, mods):
        faults, vadd = mods
        main = threading.get_ident()
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                faults["spin"](0, timeout=30)
        finally:
            timer.cancel()
        _vadd_works(vadd)

    def test_reset(self, sess, mods):
        faults, vadd = mods
        pid = sess.transport.cpu.pid
        sess.reset()
        assert sess.transport.cpu.pid != pid
        _vadd_works(vadd)

    def test_killed_device_process_is_reported_and_recovered(self, sess, mods):
        # A fault the real kernel cannot produce on its own: the CPU process dies from outside
        # (e.g. the OOM killer). Injected by killing it, as the test says.
        faults, vadd = mods
        os.kill(sess.transport.cpu.pid, signal.SIGKILL)
        time.sleep(0.05)
        with pytest.raises(ConnectionLost) as e:
            _vadd_works(vadd)
        assert str(e.value) == ("the host device process went away: [Errno 32] Broken pipe before kernel 'vadd' "
                                "ran; the device was restarted and its 2 libraries reloaded")
        _vadd_works(vadd)
