"""The processes behind a device die (killed, crashed by a kernel) or outlive their starter:
the session says what happened, starts them again, and the next call is correct."""
from __future__ import annotations

import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, device_cfg, is_host, vadd_works
from utvm_host import ConnectionLost, DeviceError, Session, build

#: vadd's length in these tests: its arrays go through the links' bulk paths (>= 512 bytes)
N = 600

FAULTS_C = KERNELS / "faults.c"


def process(sess, name: str):
    return next(p for p in sess._processes if p.name == name)


@pytest.fixture(scope="module", params=["spike-rv32", "qemu-cortex-m3"])
def simulated(request):
    cfg = device_cfg(request.param)
    sess = Session(cfg, timeout=5).open()
    try:
        vadd = sess.load(build([EXAMPLES / "vadd.c"], cfg))
        faults = sess.load(build([FAULTS_C], cfg, cflags=["-O1"]))
        yield request.param, cfg, sess, vadd, faults
    finally:
        sess.close()


#: The program killed on each device (Spike's OpenOCD is killed in a test of its own).
SIMULATOR = {"spike-rv32": "spike", "qemu-cortex-m3": "qemu"}


class TestKilled:
    # Fault injected from outside: a simulator killed (the OOM killer, a user's kill -9).
    def test_simulator_killed_while_idle(self, simulated):
        name, cfg, sess, vadd, faults = simulated
        victim = process(sess, SIMULATOR[name])
        pid = victim.pid
        t = sess.tensor(np.arange(8, dtype=np.int32))
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        with pytest.raises(ConnectionLost) as e:
            vadd_works(vadd, N)
        assert str(e.value) == (
            f"the device's {SIMULATOR[name]} (pid {pid}) was killed by SIGKILL while copying the arguments of "
            "vadd(); the device could not be reached, so it was started again and its 2 libraries reloaded (tensor "
            "contents were lost with its memory)")
        assert process(sess, SIMULATOR[name]).pid != pid
        vadd_works(vadd, N)
        with pytest.raises(DeviceError):   # the old device's bytes are gone: never handed back
            t.numpy()

    def test_simulator_killed_during_a_call(self, simulated):
        name, cfg, sess, vadd, faults = simulated
        pid = process(sess, SIMULATOR[name]).pid
        timer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        timer.start()
        try:
            with pytest.raises(ConnectionLost) as e:
                faults["spin"](0, timeout=20)
        finally:
            timer.cancel()
        assert str(e.value) == (
            f"the device's {SIMULATOR[name]} (pid {pid}) was killed by SIGKILL while calling kernel 'spin'; the "
            "device could not be reached, so it was started again and its 2 libraries reloaded (tensor contents "
            "were lost with its memory)")
        vadd_works(vadd, N)

    def test_spike_killed_during_a_transfer(self):
        cfg = device_cfg("spike-rv32")
        with Session(cfg) as sess:
            data = np.arange(16 * 1024, dtype=np.int32)   # 64 KiB: about a second through JTAG
            t = sess.tensor(data)
            pid = process(sess, "spike").pid
            timer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
            timer.start()
            try:
                with pytest.raises(ConnectionLost) as e:
                    t.numpy()
            finally:
                timer.join()
            assert str(e.value) == (
                f"the device's spike (pid {pid}) was killed by SIGKILL while read int32[16384]; the device could "
                "not be reached, so it was started again and the runtime reloaded (tensor contents were lost with "
                "its memory)")
            with pytest.raises(DeviceError):   # never the restarted device's bytes
                t.numpy()
            t.copyfrom(data)
            np.testing.assert_array_equal(t.numpy(), data)

    def test_openocd_killed(self):
        cfg = device_cfg("spike-rv32")
        with Session(cfg) as sess:
            vadd = sess.load(build([EXAMPLES / "vadd.c"], cfg))
            pid = process(sess, "openocd").pid
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            with pytest.raises(ConnectionLost):
                vadd_works(vadd, N)
            vadd_works(vadd, N)
            assert process(sess, "openocd").pid != pid

    def test_reset_after_the_simulator_died(self, simulated):
        name, cfg, sess, vadd, faults = simulated
        os.kill(process(sess, SIMULATOR[name]).pid, signal.SIGKILL)
        time.sleep(0.2)
        sess.reset()
        vadd_works(vadd, N)
        sess.reset()   # and again: a restarted Spike's port is read from its own log lines
        vadd_works(vadd, N)


class TestKernelKillsSpike:
    def test_kernel_writing_tohost_ends_spike_and_the_session_recovers(self):
        cfg = device_cfg("spike-rv32")
        with Session(cfg, timeout=5) as sess:
            vadd = sess.load(build([EXAMPLES / "vadd.c"], cfg))
            bad = sess.load(build([KERNELS / "clobber_tohost.c"], cfg))
            spike = process(sess, "spike")
            with pytest.raises(ConnectionLost) as e:
                bad["clobber_tohost"](0, 0xDEADBEEF)
            # Spike exits; OpenOCD, losing its JTAG link mid-command, may abort first
            assert re.fullmatch(r"the device's (spike|openocd) \(pid \d+\) (exited with status \d+|was killed by "
                                r"SIGABRT) while calling kernel 'clobber_tohost'; the device could not be reached, so "
                                r"it was started again and its 2 libraries reloaded \(tensor contents were lost with "
                                r"its memory\)", str(e.value)), str(e.value)
            assert "*** FAILED *** (tohost = " in spike.log_text()
            vadd_works(vadd, N)
            bad.unload()


@pytest.mark.parametrize("name", ["host", "spike-rv32", "qemu-cortex-m3"])
def test_session_opened_in_a_thread_outlives_the_thread(name):
    """PR_SET_PDEATHSIG fires when the thread that forked a child exits: the device's processes
    are forked from a thread that lives as long as Python."""
    cfg = device_cfg(name)
    box = {}

    def open_session() -> None:
        box["sess"] = Session(cfg).open()

    worker = threading.Thread(target=open_session)
    worker.start()
    worker.join()
    sess = box["sess"]
    try:
        time.sleep(0.3)   # a child killed with the thread would be gone by now
        procs = [sess.transport.cpu] if is_host(cfg) else sess._processes
        assert procs and all(p.alive for p in procs)
        vadd_works(sess.load(build([EXAMPLES / "vadd.c"], cfg)), N)
    finally:
        sess.close()
