"""Shared fixtures. Tools that are missing skip their tests on a developer machine, but fail
them under CI=true: a broken install step must never turn the suite green by skipping."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from utvm_host import Session, ToolNotFoundError, build, devices
from utvm_host import launch

# This run's temporary files (session folders among them) in a folder of its own, so checks for
# leftovers see only this run's, even with other test runs on the machine. 0711: other users may
# pass through (tests acting as another user need to reach what they try to open) but not list it.
_RUN_TMP = tempfile.mkdtemp(prefix="utvm-host-tests-")
os.chmod(_RUN_TMP, 0o711)
os.environ["TMPDIR"] = tempfile.tempdir = _RUN_TMP

KERNELS = Path(__file__).parent / "kernels"
EXAMPLES = Path(__file__).parent.parent / "examples" / "kernels"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def line_of(marker: str, source: Path = KERNELS / "faults.c") -> int:
    """The line of ``source`` (by default the fault kernels) that contains ``marker``."""
    for number, text in enumerate(source.read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(marker)


def missing(message: str) -> None:
    """Something the test needs is not installed: skip on a developer machine, fail in CI."""
    if IN_CI:
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (run `make setup`)")
    return path


def require_tvm():
    """Apache TVM (the optional extra `tvm`), imported."""
    try:
        import tvm
    except ImportError as exc:
        missing(f"Apache TVM is not installed ({exc}); run `make setup` (pip install '.[tvm]')")
    return tvm


def session_for(cfg):
    """A session opened for a module-scoped fixture (``yield from session_for(cfg)``), closed
    after the module's tests."""
    s = Session(cfg).open()
    try:
        yield s
    finally:
        s.close()


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


def require_spike() -> None:
    """Spike, dtc, OpenOCD and the RISC-V compiler, or skip (fail under CI)."""
    require_tool("riscv64-unknown-elf-gcc")
    require_tool("openocd")
    require_tool("dtc")
    try:
        launch.find_spike()
    except ToolNotFoundError as exc:
        missing(str(exc))


def require_qemu(program: str, compiler: str):
    def check() -> None:
        require_tool(compiler)
        require_tool(program)
    return check


#: The devices every shared test runs on: one fixture, one set of tests.
DEVICES = {
    "host": (None, devices.host),
    "spike-rv32": (require_spike, lambda: devices.spike(isa="rv32imac")),
    "spike-rv64": (require_spike, lambda: devices.spike(isa="rv64imac")),
    "qemu-riscv32": (require_qemu("qemu-system-riscv32", "riscv64-unknown-elf-gcc"), lambda: devices.qemu("riscv32")),
    "qemu-riscv64": (require_qemu("qemu-system-riscv64", "riscv64-unknown-elf-gcc"), lambda: devices.qemu("riscv64")),
    "qemu-cortex-m3": (require_qemu("qemu-system-arm", "arm-none-eabi-gcc"), lambda: devices.qemu("cortex-m3")),
    "qemu-cortex-m33": (require_qemu("qemu-system-arm", "arm-none-eabi-gcc"), lambda: devices.qemu("cortex-m33")),
    # the same QEMU machines reached through their UART and the serial stub, as a board without a probe
    "qemu-riscv32-serial": (require_qemu("qemu-system-riscv32", "riscv64-unknown-elf-gcc"),
                            lambda: devices.qemu("riscv32", transport="serial")),
    "qemu-cortex-m3-serial": (require_qemu("qemu-system-arm", "arm-none-eabi-gcc"),
                              lambda: devices.qemu("cortex-m3", transport="serial")),
}


def device_cfg(name: str):
    requirement, make = DEVICES[name]
    if requirement:
        requirement()
    return make()


@pytest.fixture(scope="session")
def host_cfg():
    return devices.host()


@pytest.fixture(scope="module", params=list(DEVICES))
def cfg(request):
    """The device config of each device in DEVICES (tests using it run once per device)."""
    return device_cfg(request.param)


def is_host(cfg) -> bool:
    return cfg.transport_kind == "host"


@pytest.fixture(scope="module")
def sess(cfg):
    """One session per device and test module (opening one starts processes). Opened without
    `with`, so it is not the current session that a bare load() would use."""
    yield from session_for(cfg)


@pytest.fixture(scope="module")
def kernels(sess, cfg):
    """The example kernels (vadd, dot_i8, matmul, matmul_i8) loaded once per module and device."""
    lib = build([EXAMPLES / "vadd.c", EXAMPLES / "dot.c", EXAMPLES / "matmul.c"], cfg, cflags=["-O2"])
    return sess.load(lib)


def load_and_check_vadd(sess, cfg) -> None:
    """Load the example vadd on ``sess`` and check one call against numpy."""
    mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
    a = np.arange(16, dtype=np.float32)
    c = np.zeros(16, np.float32)
    mod["vadd"](a, a, c, 16)
    np.testing.assert_array_equal(c, 2 * a)


def vadd_works(mod, n: int = 32) -> None:
    """One call of the example vadd in ``mod``, checked against numpy (n >= 128 sends its
    arrays through the links' bulk paths)."""
    a = np.arange(n, dtype=np.float32)
    c = np.zeros_like(a)
    mod["vadd"](a, a, c, n)
    np.testing.assert_array_equal(c, 2 * a)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


DEVICE_PROGRAMS = (b"utvm_host_cpu", b"spike", b"openocd", b"qemu-system")


def _host_cpu_children(programs=DEVICE_PROGRAMS) -> list:
    """PIDs of device processes (host CPU, Spike, OpenOCD) whose parent is this Python process."""
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
        argv0 = cmd.split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
        keeper = b"netns_keeper.py" in cmd   # the keeper of a session's private network (python)
        if ppid == me and (keeper or any(argv0.startswith(p) for p in programs)):
            found.append(int(entry))
    return found


@pytest.fixture(scope="session")
def host_cpu_children():
    return _host_cpu_children


def pytest_sessionfinish(session, exitstatus):
    """After every test: no device process may be left running."""
    import gc
    gc.collect()
    shutil.rmtree(_RUN_TMP, ignore_errors=True)
    left = _host_cpu_children()
    if left:
        print(f"\nERROR: {len(left)} device process(es) left running after the tests: {left}")
        session.exitstatus = 1


def _session_folders() -> set:
    root = Path(tempfile.gettempdir())
    return {p.name for p in root.glob("utvm-session-*")}


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """In the fault suite (tests/faults/), every test leaves no more device processes and no
    more session folders than it found, however the device died."""
    if "faults" not in Path(str(request.node.fspath)).parts:
        yield
        return
    import gc
    processes, folders = len(_host_cpu_children()), _session_folders()
    yield
    gc.collect()
    left = len(_host_cpu_children())
    assert left <= processes, f"{left - processes} device process(es) left running by {request.node.name}"
    assert _session_folders() <= folders, f"session folders left by {request.node.name}: " \
                                          f"{sorted(_session_folders() - folders)}"
