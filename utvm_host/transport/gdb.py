"""Any GDB server as a transport (QEMU's gdbstub, OpenOCD's gdb port, J-Link, pyOCD), over
the remote serial protocol client in :mod:`utvm_host.transport.rsp`.

A run sets pc and sp (``G``, or ``P`` where ``G`` is refused), keeps a software breakpoint
(``Z0``) at the done symbol, continues (``c``) and waits for the stop reply; on a timeout it
interrupts (``\\x03``) and reports where the core was. At the stop it reads pc and the result
registers with one ``g``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

from ..endpoint import Endpoint
from .base import StopInfo, Transport, Writes
from .interrupt import DeferredInterrupt
from .rsp import RspClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisterMap:
    """gdb register numbers of one architecture (as its target description numbers them)."""
    pc: int
    sp: int
    results: Sequence[int]
    size: int


#: RISC-V: x0-x31 are 0-31 (sp = x2, a0-a2 = x10-x12), pc is 32. Arm M-profile: r0-r15, sp = r13, pc = r15.
RISCV32 = RegisterMap(pc=32, sp=2, results=(10, 11, 12), size=4)
RISCV64 = RegisterMap(pc=32, sp=2, results=(10, 11, 12), size=8)
ARM_M = RegisterMap(pc=15, sp=13, results=(0, 1, 2), size=4)


class GdbTransport(Transport):
    """A connection to a GDB server controlling one halted target."""

    restart_verb = "halted"

    def __init__(self, host: Union[str, Endpoint], port: Optional[int], registers: RegisterMap, *,
                 little_endian: bool = True,
                 bp_kind: int = 4, timeout: float = 10.0):
        self.little_endian = little_endian
        self.regs = registers
        self.bp_kind = bp_kind
        self.rsp = RspClient(host, port, timeout=timeout)
        self._breakpoints: Dict[int, int] = {}
        self._regs_blob: Optional[bytes] = None   # the last 'g' reply, edited for the next run
        self._use_G: Optional[bool] = None     # whether the server takes G (learnt on the first run)
        self.target_xml = self.rsp.target_xml()
        reply = self.rsp.packet(b"?")          # where the target is (QEMU -S: halted at reset)
        log.debug("gdb server %s stop status %r, features %s", self.rsp.host, reply, self.rsp.features)

    def read(self, addr: int, n: int) -> bytes:
        return self.rsp.read_memory(addr, n) if n else b""

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        if view.nbytes:
            self.rsp.write_memory(addr, view)

    def _reg(self, number: int) -> int:
        return self.rsp.read_register(number, self.regs.size, self.little_endian)

    def _field(self, blob: bytes, number: int) -> int:
        size = self.regs.size
        raw = bytes.fromhex(blob[2 * size * number:2 * size * (number + 1)].decode())
        return int.from_bytes(raw, "little" if self.little_endian else "big")

    def _with_field(self, blob: bytes, number: int, value: int) -> bytes:
        size = self.regs.size
        raw = value.to_bytes(size, "little" if self.little_endian else "big").hex().encode()
        return blob[:2 * size * number] + raw + blob[2 * size * (number + 1):]

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """Two round trips: ``G`` (all registers, pc and sp changed) with ``c`` in the same write,
        then the stop reply, then ``g`` (pc and the results in one read)."""
        if stop_at is not None and stop_at not in self._breakpoints:
            self.rsp.set_breakpoint(stop_at & ~1, self.bp_kind)
            self._breakpoints[stop_at] = self.bp_kind
        pc_value = entry & ~1 if self.bp_kind == 2 else entry
        sp_value = (stack_base + stack_size) & ~0xF
        if self._regs_blob is None:
            self._regs_blob = self.rsp.packet(b"g")
        blob = self._with_field(self._with_field(self._regs_blob, self.regs.sp, sp_value), self.regs.pc, pc_value)
        self._regs_blob = None
        if self._use_G is True:                # known to work: the writes, G and c in one write
            self.rsp.write_registers_and_resume(blob, before)
        else:
            for addr, data in before:
                self.write(addr, data)
            if self._use_G is None:           # first run: find out whether the server takes G
                self._use_G = self.rsp.packet(b"G" + blob) == b"OK"
            if not self._use_G:
                size, le = self.regs.size, self.little_endian
                self.rsp.write_register(self.regs.sp, sp_value, size, le)
                self.rsp.write_register(self.regs.pc, pc_value, size, le)
            self.rsp.resume()
        reply = self._wait_stop(timeout)
        if reply is None:
            self.rsp.interrupt()
            return StopInfo("timeout", pc=self._reg(self.regs.pc))
        if reply[:1] in (b"W", b"X"):
            return StopInfo("lost", detail=f"the target exited (stop reply {reply.decode(errors='replace')!r})")
        self._regs_blob = blob = self.rsp.packet(b"g")
        pc = self._field(blob, self.regs.pc)
        if stop_at is not None and pc != stop_at & ~1:
            return StopInfo("fault", pc=pc, detail="the core halted there instead of at the done symbol: an "
                                                   "ebreak/bkpt instruction (e.g. __builtin_trap()) or a "
                                                   "debugger breakpoint")
        wanted = self.regs.results[:len(self.regs.results) if results is None else results]
        values = tuple(self._field(blob, r) for r in wanted) + (0,) * (len(self.regs.results) - len(wanted))
        return StopInfo("done", pc=pc, result=values)

    def _wait_stop(self, timeout: Optional[float]) -> Optional[bytes]:
        """The stop reply, or None after ``timeout`` s. Ctrl-C stops the target (``\x03``), reads
        its stop reply and then raises KeyboardInterrupt: the link stays in step."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with DeferredInterrupt() as guard:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                reply = self.rsp.wait_stop(0.1 if left is None else min(0.1, left))
                if reply is not None:
                    return reply
                if guard.pending:
                    self.rsp.interrupt()
                    guard.check()

    @property
    def alive(self) -> bool:
        """Whether the connection is open and in step."""
        return self.rsp is not None and self.rsp.usable

    def restart(self) -> bool:
        """After a fault or timeout the target is already stopped; forget breakpoints (set again
        on the next run, after the runtime's code has been rewritten). A connection closed out of
        step (a second Ctrl-C mid-packet) is opened again.

        Returns
        -------
        bool
            False: the target and its memory are kept.
        """
        self._regs_blob = None
        if self.rsp is not None and not self.rsp.usable:
            endpoint = self.rsp.endpoint
            log.info("reconnecting to the GDB server at %s (the last connection was closed out of step)", endpoint)
            self.rsp = RspClient(endpoint)
            self.target_xml = self.rsp.target_xml()
            self.rsp.packet(b"?")
            self._breakpoints.clear()   # QEMU keeps them; set again on the next run (Z0 is idempotent)
            self._use_G = None
        for addr, kind in list(self._breakpoints.items()):
            self.rsp.clear_breakpoint(addr & ~1, kind)
        self._breakpoints.clear()
        return False

    def close(self) -> None:
        if self.rsp is not None:
            self.rsp.close()
            self.rsp = None
