"""Device processes are always stopped: normal exit, exceptions, failed starts, garbage collection."""
from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from utvm_host import Session, TransportError, devices


class TestTeardown:
    def test_with_block_stops_the_process(self, host_cfg, host_cpu_children):
        before = set(host_cpu_children())
        with Session(host_cfg) as sess:
            pid = sess.transport.cpu.pid
            assert pid in host_cpu_children()
        assert set(host_cpu_children()) == before
        assert not Path(f"/proc/{pid}").exists() or b"utvm_host_cpu" not in Path(f"/proc/{pid}/cmdline").read_bytes()

    def test_exception_in_block_stops_the_process(self, host_cfg, host_cpu_children):
        before = set(host_cpu_children())
        with pytest.raises(RuntimeError):
            with Session(host_cfg):
                raise RuntimeError("user code failed")
        assert set(host_cpu_children()) == before

    def test_garbage_collected_session_stops_the_process(self, host_cfg, host_cpu_children):
        before = set(host_cpu_children())
        sess = Session(host_cfg).open()
        assert len(set(host_cpu_children()) - before) == 1
        del sess
        gc.collect()
        assert set(host_cpu_children()) == before

    def test_failed_start_leaves_nothing_running(self, host_cpu_children, monkeypatch):
        # Fault injected: the CPU program is replaced by one that exits at once (a broken
        # install; the real program cannot be made to fail to start otherwise).
        from utvm_host import launch
        monkeypatch.setattr(launch.hostcpu, "build_host_program", lambda source: "/bin/false")
        before = set(host_cpu_children())
        with pytest.raises(TransportError) as e:
            Session(devices.host()).open()
        assert str(e.value) == "the host device process exited with status 1 before it was ready"
        assert set(host_cpu_children()) == before

    def test_memory_beyond_2_gib_is_refused_on_x86_64(self):
        import platform
        from utvm_host import ConfigError
        if platform.machine() != "x86_64":
            pytest.skip("the 2 GiB limit comes from x86_64's small code model; other hosts have no such limit")
        with pytest.raises(ConfigError) as e:
            devices.host(base_addr=0x7FF00000)
        assert str(e.value) == ("the host device's memory (0x7ff00000-0x87f00000) must end below 2 GiB on x86_64: "
                                "kernels are compiled for the small code model; lower base_addr or memory_size")

    def test_python_killed_takes_the_device_with_it(self, tmp_path):
        # The child dies with its parent (PR_SET_PDEATHSIG): run a Python that opens a session
        # and is then killed with SIGKILL (no cleanup code can run).
        script = tmp_path / "victim.py"
        script.write_text(
            "import os, signal, sys\n"
            "from utvm_host import Session, devices\n"
            "s = Session(devices.host()).open()\n"
            "print(s.transport.cpu.pid, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).parent.parent)
        child = int(proc.stdout.split()[0])
        import time
        for _ in range(100):
            try:
                stat = Path(f"/proc/{child}/stat").read_text()
            except OSError:
                break
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"host CPU process {child} outlived its Python")


class TestExamples:
    def test_demo_runs_and_checks_against_numpy(self):
        root = Path(__file__).parent.parent
        proc = subprocess.run([sys.executable, str(root / "examples" / "demo.py")], capture_output=True,
                              text=True, timeout=300, cwd=root)
        assert proc.returncode == 0, proc.stderr
        assert "vadd      matches numpy" in proc.stdout
        assert "a crashing kernel raised DeviceFault: kernel 'write_null' crashed: SIGSEGV" in proc.stdout
        assert proc.stdout.rstrip().endswith("demo finished: all results matched numpy")
