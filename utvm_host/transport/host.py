"""The host device's transport: device memory is a shared-memory file that Python maps, so
``read``/``write`` are memcpy; ``run`` asks the CPU child process to call an entry point."""
from __future__ import annotations

import logging
import mmap
import os
import signal
from pathlib import Path
from typing import Optional

from ..errors import TransportError
from ..launch import HostCpu
from .base import StopInfo, Transport, Writes

log = logging.getLogger(__name__)


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """fallocate(PUNCH_HOLE | KEEP_SIZE) through libc (Python's os module has no fallocate);
    False when the kernel or libc refuses (the caller then writes zeros)."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        return libc.fallocate(fd, 0x02 | 0x01, offset, length) == 0
    except (OSError, AttributeError):
        return False


class HostTransport(Transport):
    """Memory ``[base, base + size)`` shared between Python and a :class:`HostCpu` child."""

    restart_verb = "restarted"

    def __init__(self, base: int, size: int, log_dir: Optional[Path] = None):
        self.base = base
        self.size = size
        self.little_endian = True
        self.fd = os.memfd_create("utvm-host-device", 0)
        try:
            os.ftruncate(self.fd, size)
            self.memory = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise
        self.view = memoryview(self.memory)
        self.cpu = HostCpu(self.fd, base, size, log_dir)
        self.cpu.start()

    def _offset(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or n < 0 or off + n > self.size:
            raise TransportError(f"address range 0x{addr:x}-0x{addr + n:x} ({n:,} bytes) lies outside the "
                                 f"device memory 0x{self.base:x}-0x{self.base + self.size:x}")
        return off

    def read(self, addr: int, n: int) -> bytes:
        off = self._offset(addr, n)
        return self.memory[off:off + n]

    def readinto(self, addr: int, out) -> None:
        view = memoryview(out).cast("B")
        off = self._offset(addr, view.nbytes)
        view[:] = self.view[off:off + view.nbytes]

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        off = self._offset(addr, view.nbytes)
        self.view[off:off + view.nbytes] = view

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        off = self._offset(addr, size)
        if value == 0 and size >= 1 << 16:
            # Drop the pages instead of writing zeros: the file reads back as zeros.
            page = mmap.PAGESIZE
            first = (off + page - 1) // page * page
            last = (off + size) // page * page
            if last > first and _punch_hole(self.fd, first, last - first):
                self.view[off:first] = bytes(first - off)
                self.view[last:off + size] = bytes(off + size - last)
                return
        self.view[off:off + size] = bytes([value]) * size

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int] = None,
            timeout: Optional[float] = None, results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """Call ``entry`` (a ``void(void)`` function) on the device stack. ``stop_at`` is not
        needed here: the call returns. A fault or a timeout ends the CPU process; call
        :meth:`restart` before the next run."""
        for addr, data in before:
            self.write(addr, data)
        self.cpu.run(entry, stack_base, stack_size)
        try:
            reply = self.cpu.wait(timeout)
        except BaseException:  # Ctrl-C while the kernel runs: the CPU is mid-call and cannot
            self.cpu.stop(grace=0)   # answer a quit request: kill it at once
            raise
        if reply is None:
            probe = self.cpu.probe_and_stop()
            return StopInfo("timeout", pc=probe.pc if probe else None, sp=probe.sp if probe else None)
        if reply.op == "done":
            return StopInfo("done")
        if reply.op == "fault":
            self.cpu.stop()
            return StopInfo("fault", pc=reply.pc, sp=reply.sp, signo=reply.signo, code=reply.code,
                            fault_address=reply.addr)
        self.cpu.stop()
        if reply.op == "exited":
            how = (f"killed by {signal.Signals(reply.signo).name}" if reply.signo
                   else f"exited with status {reply.code}")
            return StopInfo("lost", detail=f"the host device process {how} without a report")
        return StopInfo("lost", detail=f"unexpected reply {reply.op!r} from the host device process")

    @property
    def alive(self) -> bool:
        """Whether the CPU process runs (a fault or a timeout ends it)."""
        return self.cpu.alive

    def restart(self) -> bool:
        """Start a new CPU process on the same memory.

        Returns
        -------
        bool
            False: the memory's contents are kept.
        """
        self.cpu.stop()
        self.cpu.start()
        return False

    def close(self) -> None:
        if self.cpu is not None:
            self.cpu.stop()
        if self.memory is not None:
            self.view.release()
            self.memory.close()
            self.memory = None
            os.close(self.fd)
