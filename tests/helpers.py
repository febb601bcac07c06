"""Helpers the tests share (functions and constants; fixtures and hooks stay in conftest.py).

Import them with ``from helpers import ...``: ``tests/`` has no ``__init__.py``, so pytest puts
this folder on ``sys.path`` when it loads ``tests/conftest.py`` (rootdir-relative "prepend"
import mode), whether pytest runs from the repository root or from within ``tests/``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from utvm_host import Session, ToolNotFoundError, build, devices
from utvm_host import launch

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


def is_host(cfg) -> bool:
    return cfg.transport_kind == "host"


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


DEVICE_PROGRAMS = (b"utvm_host_cpu", b"spike", b"openocd", b"qemu-system")


def device_children(programs=DEVICE_PROGRAMS) -> list:
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


def session_folders() -> set:
    """Names of the session folders (utvm-session-*) in this run's temporary folder."""
    root = Path(tempfile.gettempdir())
    return {p.name for p in root.glob("utvm-session-*")}


# -- the device heap of a shared session ------------------------------------------------------

#: The shared sessions conftest's heap check (heap_back_to_baseline) watches for a test, in the
#: test item's stash: its own tests read it to see that it finds them.
HEAP_WATCHED = pytest.StashKey[list]()


def heap_blocks(sess) -> frozenset:
    """The heap blocks of an open session: what Session._alloc_heap placed (tensors, the staged
    arrays of a call, bound calls' argument blocks: owner '') and the tensor reservations of
    plan() (owner 'planned'). Libraries, the runtime and the device's reserved ranges have
    owners of their own, even where the automatic layout puts them in the heap's regions.
    Empty for a closed session (its memory is gone)."""
    if sess.layout is None or not sess.is_open:
        return frozenset()
    return frozenset(b for region in sess.layout.regions_for("heap") for b in region.blocks()
                     if b.owner in ("", "planned"))


def heap_leaks(sess, baseline: frozenset) -> list:
    """The heap blocks of ``sess`` allocated since ``baseline`` (from :func:`heap_blocks`) and
    still allocated, by address. Blocks of the baseline freed since are not counted: an earlier
    test that failed keeps its tensors alive in its traceback until pytest drops it while the
    next test runs, and frees them then."""
    return sorted(heap_blocks(sess) - baseline, key=lambda b: (b.region, b.start))


def check_heap(sess, baseline: frozenset, who: str = "the test") -> None:
    """Assert that the heap of ``sess`` is back to ``baseline``: nothing allocated since is left
    (garbage is collected first: a tensor that nothing references any more is freed by its
    finalizer). The message names the leaked blocks."""
    import gc
    gc.collect()
    leaked = heap_leaks(sess, baseline)
    assert not leaked, (f"the device heap of {sess!r} is not back to its baseline after {who}: {len(leaked)} "
                        f"block(s), {sum(b.size for b in leaked):,} bytes, left allocated: "
                        + "; ".join(b.describe() for b in leaked))
