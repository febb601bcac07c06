"""QEMU specifics: lifecycle, attach mode against a QEMU the test starts, the GDB transport's
timeouts and registers."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

from helpers import KERNELS, load_and_check_vadd, require_tool
from utvm_host import DeviceTimeout, Session, ToolNotFoundError, TransportError, build, devices, launch
from utvm_host.layout import MemoryLayout
from utvm_host.link import Linker
from utvm_host.toolchain import build_runtime

MACHINES = ["riscv32", "cortex-m3"]


def _need(machine: str) -> None:
    if machine.startswith("riscv"):
        require_tool("riscv64-unknown-elf-gcc")
        require_tool(f"qemu-system-{machine}")
    else:
        require_tool("arm-none-eabi-gcc")
        require_tool("qemu-system-arm")


@pytest.mark.parametrize("machine", MACHINES)
class TestLifecycle:
    def test_with_exception_and_gc_stop_qemu(self, machine, host_cpu_children):
        _need(machine)
        before = set(host_cpu_children())
        with Session(devices.qemu(machine)) as sess:
            assert [p.name for p in sess._processes] == ["qemu"]
            assert len(set(host_cpu_children()) - before) == 1
        assert set(host_cpu_children()) == before
        with pytest.raises(RuntimeError):
            with Session(devices.qemu(machine)):
                raise RuntimeError("user code failed")
        assert set(host_cpu_children()) == before
        sess = Session(devices.qemu(machine)).open()
        del sess
        gc.collect()
        assert set(host_cpu_children()) == before

    def test_failed_start_raises_with_the_log(self, machine, host_cpu_children):
        _need(machine)
        before = set(host_cpu_children())
        cfg = devices.qemu(machine)
        cfg["transport"]["machine"] = "no-such-board"
        with pytest.raises(TransportError) as e:
            Session(cfg).open()
        head, log_lines = str(e.value).split("\n", 1)
        assert head == "qemu exited (status 1) before it was ready; the last lines of its log:"
        assert log_lines == (f"{cfg['transport']['qemu']}: unsupported machine type\n"
                             "Use -machine help to list supported machines")
        assert set(host_cpu_children()) == before

    def test_attach_to_a_qemu_the_test_started(self, machine, tmp_path, host_cpu_children):
        _need(machine)
        cfg = devices.qemu(machine)
        layout = MemoryLayout([(r.name, r.start, r.size, r.align) for r in cfg.resolved_layout()])
        boot = Linker(cfg, layout, tmp_path).place(build_runtime(cfg), "boot", {})
        extra = ["-bios", "none"] if machine.startswith("riscv") else []
        qemu, endpoint = launch.start_qemu(cfg["transport"]["qemu"], cfg["transport"]["machine"], Path(boot.elf_path),
                                       tmp_path, extra=extra)
        try:
            memory = [(m["start"], m["size"]) for m in cfg["memory"]]
            attach = devices.gdb_remote(endpoint.path, arch=cfg["arch"], memory=memory)
            with Session(attach) as sess:
                assert sess._processes == []
                load_and_check_vadd(sess, attach)
            assert qemu.alive                                   # not ours to stop
        finally:
            qemu.stop()

    def test_timeout_interrupts_and_the_next_call_works(self, machine):
        _need(machine)
        cfg = devices.qemu(machine)
        with Session(cfg, timeout=0.3) as sess:
            faults = sess.load(build([KERNELS / "faults.c"], cfg, cflags=["-O1"]))
            with pytest.raises(DeviceTimeout) as e:
                faults["spin"](3)
            assert e.value.location.startswith("spin+0x")
            load_and_check_vadd(sess, cfg)


def test_missing_qemu_names_the_package(monkeypatch):
    # Fault injected: qemu-system-arm is hidden from the PATH lookup (it is installed here).
    real_which = launch.tools.shutil.which
    monkeypatch.setattr(launch.tools.shutil, "which", lambda name, *a, **k: None if name.startswith("qemu-system")
                        else real_which(name, *a, **k))
    require_tool("arm-none-eabi-gcc")
    with pytest.raises(ToolNotFoundError) as e:
        Session(devices.qemu("cortex-m3")).open()
    assert str(e.value) == ("qemu-system-arm not found: install the Debian package qemu-system-arm "
                            "(apt-get install -y qemu-system-arm)")


@pytest.mark.parametrize("machine", MACHINES)
def test_icount_makes_timing_repeatable(machine):
    _need(machine)
    cfg = devices.qemu(machine, icount=True)
    with Session(cfg) as sess:
        mod = sess.load(build([KERNELS / "mixed.c"], cfg, cflags=["-O1"]))
        te = mod.time_evaluator("count_loop", number=3, repeat=3)
        first, second = te(2000), te(2000)
        if machine.startswith("riscv"):   # mcycle follows the instruction count exactly
            assert first.values == second.values and len(set(first.values)) == 1 and first.values[0] > 2000
        else:   # SysTick at 25 MHz ticks every 40 instructions under icount: equal within one tick
            values = first.values + second.values
            assert max(values) - min(values) <= 1 / 3 + 1e-9 and min(values) > 2000 / 40
