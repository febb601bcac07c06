"""Shared fixtures. Tools that are missing skip their tests on a developer machine, but fail
them under CI=true: a broken install step must never turn the suite green by skipping."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from utvm_host import Session, build, devices

KERNELS = Path(__file__).parent / "kernels"
EXAMPLES = Path(__file__).parent.parent / "examples" / "kernels"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run `make setup`)"
        if IN_CI:
            pytest.fail(f"CI: {message}")
        pytest.skip(message)
    return path


CROSS = {
    "rv32imac": ("riscv64-unknown-elf-gcc", lambda: devices.spike(isa="rv32imac")),
    "rv64imac": ("riscv64-unknown-elf-gcc", lambda: devices.spike(isa="rv64imac")),
    "cortex-m3": ("arm-none-eabi-gcc", lambda: devices.qemu("cortex-m3")),
    "cortex-m33": ("arm-none-eabi-gcc", lambda: devices.qemu("cortex-m33")),
}


@pytest.fixture(params=list(CROSS))
def cross_cfg(request):
    """A device config per cross target (its compiler must be installed)."""
    tool, make = CROSS[request.param]
    require_tool(tool)
    return make()


@pytest.fixture(scope="session")
def host_cfg():
    return devices.host()


@pytest.fixture(scope="module")
def sess(host_cfg):
    """One host session per test module (opening one costs a process start). Opened without
    `with`, so it is not the current session that a bare load() would use."""
    s = Session(host_cfg).open()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def kernels(sess, host_cfg):
    """The example kernels (vadd, dot_i8, matmul, matmul_i8) loaded once per module."""
    lib = build([EXAMPLES / "vadd.c", EXAMPLES / "dot.c", EXAMPLES / "matmul.c"], host_cfg, cflags=["-O2"])
    return sess.load(lib)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _host_cpu_children() -> list:
    """PIDs of utvm_host_cpu processes whose parent is this Python process."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"utvm_host_cpu" in cmd:
            found.append(int(entry))
    return found


@pytest.fixture(scope="session")
def host_cpu_children():
    return _host_cpu_children


def pytest_sessionfinish(session, exitstatus):
    """After every test: no device process may be left running."""
    import gc
    gc.collect()
    left = _host_cpu_children()
    if left:
        print(f"\nERROR: {len(left)} utvm_host_cpu process(es) left running after the tests: {left}")
        session.exitstatus = 1
