"""The host device comes back from everything (issue 14, items 10 and 11): a fault in a call
started with ``Function.start()`` (which runs in a thread) leaves the next call working; Ctrl-C on
a hung kernel returns at once (the CPU process is mid-call and cannot answer a quit request, so it
is killed, not asked) and the next call works; a forked child that exits normally leaves its
parent's session (folder, registry record, device process) alone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, line_of, session_for, vadd_works
from utvm_host import DeviceFault, build, devices

FAULTS_C = KERNELS / "faults.c"


@pytest.fixture(scope="module")
def sess():
    yield from session_for(devices.host())


@pytest.fixture(scope="module")
def mods(sess):
    faults = sess.load(build([FAULTS_C], sess.cfg, cflags=["-O1"]))
    vadd = sess.load(build([EXAMPLES / "vadd.c"], sess.cfg))
    return faults, vadd


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class TestStartedCalls:
    def test_a_fault_inside_start_leaves_the_next_call_working(self, sess, mods):
        faults, vadd = mods
        handle = faults["segv"].start(0)
        with pytest.raises(DeviceFault) as e:
            handle.result(timeout=30)
        err = e.value
        assert err.location.startswith("segv+0x") and err.location.endswith(f"(faults.c:{line_of('p[offset] = 1')})")
        assert str(err) == (f"kernel 'segv' crashed: SIGSEGV (address not mapped) accessing address 0x0 at "
                            f"{err.location}; the device was restarted and its 2 libraries reloaded")
        handle._thread.join(5)
        assert not handle._thread.is_alive()
        # The CPU process restarted by the call's thread outlives that thread (PR_SET_PDEATHSIG
        # follows the thread that forks a child, not the process).
        time.sleep(0.2)
        assert sess.transport.cpu.alive
        vadd_works(vadd)
        vadd_works(vadd)
        a = np.arange(8, dtype=np.float32)
        c = np.zeros(8, np.float32)
        assert vadd["vadd"].start(a, a, c, 8).result(timeout=30) is None
        np.testing.assert_array_equal(c, 2 * a)

    def test_a_fault_inside_start_twice_in_a_row(self, sess, mods):
        faults, vadd = mods
        for _ in range(2):
            with pytest.raises(DeviceFault):
                faults["segv"].start(0).result(timeout=30)
        vadd_works(vadd)


class TestCtrlC:
    def test_ctrl_c_on_a_hung_host_kernel_returns_at_once_and_the_next_call_works(self, sess, mods):
        faults, vadd = mods
        old_cpu = sess.transport.cpu.pid
        sent = []

        def interrupt() -> None:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        timer = threading.Timer(0.3, interrupt)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                faults["spin"](0, timeout=30)
            took = time.monotonic() - sent[0]
        finally:
            timer.cancel()
        assert took < 0.5, f"Ctrl-C took {took:.2f} s to return"
        assert gone(old_cpu)   # killed and reaped, not left running
        assert sess.transport.cpu.alive and sess.transport.cpu.pid != old_cpu
        vadd_works(vadd)

    def test_a_timeout_does_not_wait_for_a_quit_request_either(self, sess, mods):
        faults, vadd = mods
        t0 = time.monotonic()
        with pytest.raises(Exception) as e:
            faults["spin"](0, timeout=0.3)
        took = time.monotonic() - t0
        assert type(e.value).__name__ == "DeviceTimeout"
        assert took < 1.5, f"a 0.3 s timeout took {took:.2f} s"
        vadd_works(vadd)


FORK_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    from utvm_host import Session, build, devices, registry

    cfg = devices.host()
    other = Session(cfg).open()   # not in a `with`: the child meets it through finalizers and atexit
    with Session(cfg) as sess:
        mod = sess.load(build([sys.argv[1]], cfg))
        cpu = sess.transport.cpu.pid
        pid = os.fork()
        if pid == 0:
            sys.exit(0)   # a normal interpreter exit: __exit__, atexit hooks, weakref finalizers
        _, status = os.waitpid(pid, 0)
        a = np.arange(16, dtype=np.float32)
        c = np.zeros(16, np.float32)
        mod["vadd"](a, a, c, 16)
        print(json.dumps({
            "status": status, "folders": [sess.workdir.is_dir(), other.workdir.is_dir()],
            "records": [sess._registry_path.exists(), other._registry_path.exists()],
            "running": sorted(r["id"] for r in registry.running()) == sorted([sess._registry_id, other._registry_id]),
            "same_cpu": sess.transport.cpu.pid == cpu and sess.transport.cpu.alive,
            "other_cpu": other.transport.cpu.alive, "vadd": c.tolist() == (2 * a).tolist()}))
        folder = sess.workdir
    other.close()
    print(json.dumps({"closed": not folder.exists() and registry.running() == []}))
''')


def test_a_forked_child_that_exits_normally_leaves_the_parent_session_alone(tmp_path):
    script = tmp_path / "fork_in_session.py"
    script.write_text(FORK_SCRIPT)
    env = dict(os.environ, UTVM_HOST_RUNTIME_DIR=str(tmp_path / "sessions"))
    out = subprocess.run([sys.executable, str(script), str(EXAMPLES / "vadd.c")], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    during, after = [json.loads(line) for line in out.stdout.splitlines()]
    assert during == {"status": 0, "folders": [True, True], "records": [True, True], "running": True,
                      "same_cpu": True, "other_cpu": True, "vadd": True}
    assert after == {"closed": True}   # and the parent still cleans up after itself
