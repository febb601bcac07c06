"""The utvm-host command, run as a user runs it: a subprocess, its exit code and its output."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utvm_host import Session, build, devices

from helpers import EXAMPLES, KERNELS, require_spike, require_tool

CLI = [sys.executable, "-m", "utvm_host.cli"]


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    """Sessions announce themselves in a folder of this test's own (and so does the CLI)."""
    folder = tmp_path / "sessions"
    monkeypatch.setenv("UTVM_HOST_RUNTIME_DIR", str(folder))
    return folder


def cli(*args, cwd=None, timeout=120):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=dict(os.environ))


def test_help_lists_every_command_and_the_exit_codes():
    out = cli("--help")
    assert out.returncode == 0
    for command in ("doctor", "info", "run", "bench", "debug"):
        assert command in out.stdout
    assert out.stdout.endswith("exit codes:\n  0  success\n  1  a check failed, or the device reported an error "
                               "(kernel error, fault, timeout)\n  2  bad usage (arguments, unknown kernel or device)\n"
                               "  3  a build failed\n  4  a program the device needs is missing (see utvm-host doctor)\n")
    for command in ("doctor", "info", "run", "bench", "debug"):
        assert cli(command, "--help").returncode == 0
    bad = cli("frobnicate")
    assert bad.returncode == 2 and "invalid choice: 'frobnicate'" in bad.stderr


def test_doctor_reports_every_tool_with_its_version_and_package():
    out = cli("doctor", "--json")
    report = json.loads(out.stdout)
    tools = {r["tool"]: r for r in report["tools"]}
    assert {"gcc", "riscv64-unknown-elf-gcc", "arm-none-eabi-gcc", "openocd", "dtc", "qemu-system-arm",
            "gdb-multiarch", "spike", "python:numpy"} <= set(tools)
    assert tools["openocd"]["package"] == "openocd" and tools["dtc"]["package"] == "device-tree-compiler"
    missing = [t for t, r in tools.items() if r["required"] and not r["found"]]
    assert out.returncode == (1 if missing else 0) and report["ok"] == (not missing)
    if tools["gcc"]["found"]:
        assert tools["gcc"]["version"].startswith("gcc")
    text = cli("doctor")
    assert text.returncode == out.returncode
    assert ("all tools found" in text.stdout) == (not missing)


def test_doctor_exit_code_when_a_tool_is_missing(tmp_path):
    """Fault injection: a PATH without the cross compilers (they are installed here)."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    out = subprocess.run(CLI + ["doctor"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "MISSING riscv64-unknown-elf-gcc" in out.stdout and "missing: run `make setup`, or install: " in out.stdout


def test_run_calls_a_kernel_and_saves_written_arrays(tmp_path):
    a = np.arange(16, dtype=np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "c.npy", np.zeros(16, np.float32))
    out = cli("run", str(EXAMPLES / "vadd.c"), "-k", "vadd", "-a", "a.npy", "-a", "a.npy", "-a", "c.npy", "-a", "16",
              "--out-dir", "out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("vadd on host: returned None in ") and "wrote out/c.npy" in out.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "c.npy"), 2 * a)
    assert not (tmp_path / "out" / "a.npy").exists()   # const inputs are not written back
    ret = cli("run", str(EXAMPLES / "dot.c"), "-k", "dot_i8", "-a", "x.npy", "-a", "x.npy", "-a", "4", cwd=tmp_path)
    assert ret.returncode == 2 and "No such file or directory" in ret.stderr


def test_run_exit_codes_for_usage_build_and_kernel_errors(tmp_path):
    out = cli("run", str(EXAMPLES / "vadd.c"), "-k", "vadd", "-a", "1")
    assert out.returncode == 2 and out.stderr.strip() == "utvm-host run: vadd() takes 4 arguments (a, b, c, n), got 1"
    out = cli("run", str(EXAMPLES / "vadd.c"), "-k", "nope")
    assert out.returncode == 2 and out.stderr.strip() == (f"utvm-host run: no kernel 'nope' in {EXAMPLES / 'vadd.c'}; "
                                                          "it has: vadd")
    out = cli("run", str(KERNELS / "broken.c"), "-k", "x")
    assert out.returncode == 3 and "utvm-host run: compiling broken.c for x86_64 failed" in out.stderr.replace(
        "aarch64", "x86_64")
    src = tmp_path / "fails.c"
    src.write_text('#include "utvm_runtime.h"\nint fails(int n) { TVMAPISetLastError("n is bad"); return -n; }\n')
    out = cli("run", str(src), "-k", "fails", "-a", "3")
    assert out.returncode == 1 and out.stderr.strip() == "utvm-host run: kernel 'fails' failed (returned -3): n is bad"
    out = cli("run", str(src), "-k", "fails", "-d", "qemu-pdp11")
    assert out.returncode == 2 and "unknown QEMU machine 'pdp11'" in out.stderr


def test_bench_prints_throughput_and_round_trip():
    out = cli("bench", "-d", "host", "--size", "1048576", "--calls", "20")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("host: session open ")
    assert lines[1].startswith("  write 1,048,576 bytes: ") and lines[1].endswith("MB/s (best of 3)")
    assert lines[3].startswith("  empty call: median ") and lines[3].endswith("us of 20")


def test_info_and_debug_find_a_session_of_another_process(runtime_dir):
    require_spike()
    require_tool("gdb-multiarch")
    assert cli("info").stdout.startswith("no utvm-host session is running")
    none = cli("debug")
    assert none.returncode == 1 and none.stderr.startswith("no matching utvm-host session is running")
    cfg = devices.spike(isa="rv32imac")
    with Session(cfg) as sess:
        mod = sess.load(build([KERNELS / "dbg_accumulate.c"], cfg, cflags=["-O0", "-g"]))
        info = cli("info", "--json")
        records = json.loads(info.stdout)
        assert info.returncode == 0 and len(records) == 1
        rec = records[0]
        # gdb reaches the OpenOCD in the session's private network through a socket in its 0700 folder
        assert (rec["pid"], rec["device"], rec["gdb"]["socket"]) == (os.getpid(), "spike-rv32imac", sess.gdb_target)
        assert sess.gdb_target == str(sess.workdir / "openocd-gdb.sock")
        assert rec["modules"][0]["kernels"] == ["accumulate"]
        assert "session " + rec["id"] + ": spike-rv32imac (rv32imac, openocd)" in cli("info").stdout
        out = cli("debug")
        assert out.returncode == 0 and out.stderr == ""
        argv = shlex.split(out.stdout)
        text = mod.image.blocks[0].start
        assert argv[:2] == ["gdb-multiarch", "-nx"] and f"target remote {sess.gdb_target}" in argv
        assert f"add-symbol-file {mod.image.elf_path} 0x{text:x}" in " ".join(argv)
        # the printed command attaches while this session holds the device
        gdb = subprocess.run(argv + ["-batch", "-ex", "info line accumulate", "-ex", "disconnect"],
                             capture_output=True, text=True, timeout=60)
        assert 'Line 4 of "' in gdb.stdout and "dbg_accumulate.c\" starts at address" in gdb.stdout
        assert mod["accumulate"](np.arange(5, dtype=np.int32), 5) == 20   # and the session goes on
    assert cli("info", "--json").stdout.strip() == "[]"


def test_firmware_writes_the_serial_stub_for_a_device_or_a_board(tmp_path):
    require_tool("arm-none-eabi-gcc")
    out = cli("firmware", "-d", "qemu-cortex-m3-serial", "-o", str(tmp_path / "stub.elf"), "--bin")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"wrote {tmp_path / 'stub.elf'} for qemu-cortex-m3-serial: flash it once, then use devices.serial(...) with "
        "the same memory and UART", f"wrote {tmp_path / 'stub.bin'}"]
    from utvm_host.elf import ElfFile
    with ElfFile(tmp_path / "stub.elf") as elf:
        assert elf.machine == "EM_ARM" and elf.get_symbol("UTVMDoneHook") is not None
        assert elf.get_symbol("utvm_fw_vectors").value == 0   # the reset vectors at the start of code
    assert 1000 < (tmp_path / "stub.bin").stat().st_size < 16 * 1024
    board = cli("firmware", "--arch", "cortex-m4", "--memory", "0x20000000:0x20000", "--uart", "cmsdk-uart@0x40004000",
                "-o", str(tmp_path / "board.elf"))
    assert board.returncode == 0 and "for serial-cortex-m4" in board.stdout
    bad = cli("firmware")
    assert bad.returncode == 2 and bad.stderr.startswith("utvm-host firmware: give --device qemu-<machine>-serial")
