"""The host device's CPU process (device_stubs/programs/host/utvm_host_cpu.c) and its records."""
from __future__ import annotations

import logging
import os
import re
import select
import signal
import struct
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from ..errors import ConnectionLost, TransportError
from ..toolchain import DEVICE_PROGRAMS, build_host_program

log = logging.getLogger(__name__)

from .process import _Process, _kill, _live, _live_lock, spawn

# Records exchanged with utvm_host_cpu.c (see the comment at its top).
REQUEST = struct.Struct("<IIQQQ")
REPLY = struct.Struct("<IiiIQQQ")
HOST_CPU_SOURCE = DEVICE_PROGRAMS / "host" / "utvm_host_cpu.c"


def _opcodes() -> Dict[str, int]:
    """The request and reply codes as utvm_host_cpu.c defines them, once (its ``enum { OP_... }``)."""
    return {name: int(value) for name, value in re.findall(r"\b(OP_[A-Z]+) = (\d+)", HOST_CPU_SOURCE.read_text())}


OP_RUN, OP_QUIT, OP_READY, OP_DONE, OP_FAULT, OP_STOPPED, OP_ERROR = (
    _opcodes()[name] for name in ("OP_RUN", "OP_QUIT", "OP_READY", "OP_DONE", "OP_FAULT", "OP_STOPPED", "OP_ERROR"))


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
        exe = build_host_program(HOST_CPU_SOURCE)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            self.proc = spawn([exe, str(self.memory_fd), f"{self.base:x}", f"{self.size:x}", str(self.console_path)],
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
        answered = reply is not None and reply.op == "stopped"
        # Having answered, it is exiting on its own (let it flush its console); otherwise it
        # cannot answer a quit request either: kill it at once.
        self.stop(grace=grace if answered else 0)
        return reply if answered else None

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        os.write(proc.stdin.fileno(), REQUEST.pack(OP_QUIT, 0, 0, 0, 0))


