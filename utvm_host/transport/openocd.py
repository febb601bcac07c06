"""OpenOCD's Tcl RPC as a transport: memory in 32-bit words, registers, breakpoints, run.

Protocol (OpenOCD manual, "Tcl RPC server"): send a Tcl script terminated by ``\\x1a``, read
the reply up to ``\\x1a``. Replies carry no error status, so every script is wrapped in
``catch`` and a failure comes back as ``UTVM_ERROR <message>``: an OpenOCD error becomes a
:class:`TransportError` naming the command, never a silently wrong value.

Bulk data moves as ``write_memory ADDR 32 {w0 w1 ...}`` / ``read_memory ADDR 32 N``, chunked;
bytes before the first and after the last aligned word go as 8-bit accesses.
"""
from __future__ import annotations

import logging
import socket
import struct
import time
from typing import Dict, Iterable, List, Optional, Sequence, Union

from ..endpoint import Endpoint, TcpEndpoint, as_endpoint
from ..errors import ConnectionLost, TransportError, TransportTimeout
from .base import StopInfo, Transport, Writes
from .interrupt import DeferredInterrupt
from .rsp import RspClient

log = logging.getLogger(__name__)

#: Words per write_memory/read_memory command (a script of ~11 KB).
CHUNK_WORDS = 1024
#: How long the first wait for a halt lasts (same round trip as the start), then each later one.
FIRST_WAIT_MS = 20
WAIT_SLICE_MS = 100
#: Writes at least this long use the gdb port (when the transport has one).
RSP_MIN_BYTES = 512
_TERM = b"\x1a"


class OpenOcdTransport(Transport):
    """A connection to OpenOCD's Tcl port controlling one halted target.

    ``bp_length`` is the software breakpoint size (2 on RISC-V with the C extension and on
    Thumb, else 4); ``result_regs`` are read after every run (the runtime's UTVMDone passes
    its summary in them).
    """

    #: How recovery after a fault reads in messages ("the device was halted and ... reloaded").
    restart_verb = "halted"

    def __init__(self, host: Union[str, Endpoint], port: Optional[int] = None, *, little_endian: bool = True,
                 bp_length: int = 4, result_regs: Sequence[str] = ("a0", "a1", "a2"), sp_reg: str = "sp",
                 command_timeout: float = 10.0, connect_timeout: float = 5.0, gdb_port: Optional[int] = None,
                 gdb_endpoint: Optional[Endpoint] = None):
        """Connect to OpenOCD's Tcl port: ``host, port`` or an :class:`~utvm_host.endpoint.Endpoint`
        (a port in the session's private network). Bulk transfers use its gdb port when one is
        given (``gdb_endpoint``, or ``gdb_port`` on the same host)."""
        self.endpoint = as_endpoint(host, port)
        self.host, self.port = str(self.endpoint), port   # messages name the endpoint
        self.little_endian = little_endian
        self.bp_length = bp_length
        self.result_regs = list(result_regs)
        self.sp_reg = sp_reg
        self.command_timeout = command_timeout
        self._breakpoints: Dict[int, int] = {}
        self.sock: Optional[socket.socket] = None
        try:
            self.sock = self.endpoint.connect_retrying(command_timeout, connect_timeout)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to OpenOCD's Tcl port at {self.endpoint}: {exc}; "
                                 f"is OpenOCD running with `tcl_port {port or '...'}`?") from exc
        self._buf = b""
        self._pending = 0
        # Bulk transfers go through OpenOCD's gdb port when we started OpenOCD (binary X writes,
        # 8 KiB m reads: faster on Spike than Tcl write_memory/read_memory, measured side by side).
        if gdb_endpoint is None and gdb_port is not None:
            gdb_endpoint = TcpEndpoint(getattr(self.endpoint, "host", "127.0.0.1"), gdb_port)
        self.gdb_endpoint = gdb_endpoint
        self._lent: Optional[tuple] = None   # (the gdb port,) while a debugger holds it
        self._rsp: Optional[RspClient] = None
        self.halt()

    # -- Tcl RPC -------------------------------------------------------------------------

    def raw(self, script: str, timeout: Optional[float] = None) -> str:
        """Send one Tcl script, return OpenOCD's reply text (no error checking).

        If an earlier call was interrupted (Ctrl-C) after sending, its reply is read and
        dropped first, so replies never get out of step with commands.
        """
        if self.sock is None:
            raise ConnectionLost("the OpenOCD connection is closed")
        guard = DeferredInterrupt()   # Ctrl-C waits for the reply (a second one closes the link)
        try:
            with guard:
                self.sock.settimeout(timeout or self.command_timeout)
                while self._pending:
                    self._reply()
                self.sock.sendall(script.encode() + _TERM)
                self._pending += 1
                return self._reply()
        except KeyboardInterrupt:
            if guard.forced:   # bytes may have been dropped mid-reply: this stream is out of step
                self.close()
            raise
        except socket.timeout as exc:
            self.close()  # a reply may still come: this connection cannot be trusted any more
            raise TransportTimeout(f"OpenOCD did not answer {script[:60]!r} within "
                                   f"{timeout or self.command_timeout:g} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"lost the connection to OpenOCD at {self.host}: {exc}") from exc

    def _reply(self) -> str:
        while True:
            end = self._buf.find(_TERM)
            if end >= 0:
                reply, self._buf = self._buf[:end], self._buf[end + 1:]
                self._pending -= 1
                return reply.decode("utf-8", "replace")
            chunk = self.sock.recv(1 << 16)   # OSError (a reset): raw() says ConnectionLost
            if not chunk:
                raise ConnectionLost(f"OpenOCD at {self.host} closed the connection")
            self._buf += chunk

    def command(self, script: str, timeout: Optional[float] = None) -> str:
        """Run ``script``; raise :class:`TransportError` with OpenOCD's message if it fails."""
        reply = self.raw(f"if {{[catch {{{script}}} r]}} {{set r \"UTVM_ERROR $r\"}} else {{set r}}", timeout)
        if reply.startswith("UTVM_ERROR"):
            raise TransportError(f"OpenOCD failed `{script[:80]}`: {reply[11:].strip()}")
        return reply

    # -- memory --------------------------------------------------------------------------

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        n = view.nbytes
        if self.gdb_endpoint is not None and n >= RSP_MIN_BYTES:
            self._gdb().write_memory(addr, view)
            return
        head = min((-addr) % 4, n)
        if head:
            self._write_bytes(addr, view[:head])
        words = (n - head) // 4
        pos = head
        for first in range(0, words, CHUNK_WORDS):
            count = min(CHUNK_WORDS, words - first)
            chunk = view[pos:pos + 4 * count]
            values = struct.unpack(f"{'<' if self.little_endian else '>'}{count}I", chunk)
            self.command(f"write_memory 0x{addr + pos:x} 32 {{{' '.join(map(hex, values))}}}")
            pos += 4 * count
        if pos < n:
            self._write_bytes(addr + pos, view[pos:])

    def _write_bytes(self, addr: int, data: memoryview) -> None:
        self.command(f"write_memory 0x{addr:x} 8 {{{' '.join(map(hex, data.tobytes()))}}}")

    def _gdb(self) -> RspClient:
        if self._rsp is not None and not self._rsp.usable:   # closed out of step (a second Ctrl-C): reconnect
            self._rsp.close()
            self._rsp = None
        if self._rsp is None:
            self._rsp = RspClient(self.gdb_endpoint, timeout=self.command_timeout)
            # Read the registers once, as gdb does when it attaches: measured side by side, the
            # first transfers after a connect otherwise run ~6% slower (OpenOCD finishing its
            # attach work in between).
            self._rsp.packet(b"g")
        return self._rsp

    def read(self, addr: int, n: int) -> bytes:
        if self.gdb_endpoint is not None and n >= RSP_MIN_BYTES:
            return self._gdb().read_memory(addr, n)
        out = bytearray()
        head = min((-addr) % 4, n)
        if head:
            out += self._read_bytes(addr, head)
        words = (n - head) // 4
        pos = head
        for first in range(0, words, CHUNK_WORDS):
            count = min(CHUNK_WORDS, words - first)
            values = self._parse_values(self.command(f"read_memory 0x{addr + pos:x} 32 {count}"), count, addr + pos)
            out += struct.pack(f"{'<' if self.little_endian else '>'}{count}I", *values)
            pos += 4 * count
        if pos < n:
            out += self._read_bytes(addr + pos, n - pos)
        return bytes(out)

    def _read_bytes(self, addr: int, n: int) -> bytes:
        return bytes(self._parse_values(self.command(f"read_memory 0x{addr:x} 8 {n}"), n, addr))

    @staticmethod
    def _parse_values(reply: str, count: int, addr: int) -> List[int]:
        try:
            values = [int(v, 16) for v in reply.split()]
        except ValueError:
            values = []
        if len(values) != count:
            raise TransportError(f"OpenOCD returned {len(values)} values for a read of {count} at 0x{addr:x}: "
                                 f"{reply[:120]!r}")
        return values

    # -- registers and control -----------------------------------------------------------

    def get_regs(self, names: Iterable[str], force: bool = True) -> Dict[str, int]:
        """Register values; ``force`` re-reads them from the target (not OpenOCD's cache)."""
        names = list(names)
        reply = self.command(f"get_reg {'-force ' if force else ''}{{{' '.join(names)}}}")
        parts = reply.split()
        try:
            regs = {parts[i]: int(parts[i + 1], 16) for i in range(0, len(parts) - 1, 2)}
        except ValueError as exc:
            raise TransportError(f"unexpected get_reg reply {reply[:120]!r}") from exc
        return regs

    def halt(self) -> None:
        self.command("halt")

    def state(self) -> str:
        return self.command("[target current] curstate").strip()

    def keep_after_gdb(self, stop_at: int) -> None:
        """When a gdb that attached to OpenOCD's gdb port (``utvm-host debug`` in a terminal)
        goes away, OpenOCD drops every breakpoint and may leave the core running: have OpenOCD
        itself halt the core and set the done breakpoint again at that moment (no cost per call)."""
        self.command(f"[target current] configure -event gdb-detach "
                     f"{{catch {{halt}}; catch {{bp 0x{stop_at:x} {self.bp_length}}}}}")

    def set_breakpoint(self, addr: int) -> None:
        if addr not in self._breakpoints:
            # OpenOCD may hold it already (set again when a gdb detached): remove it first
            reply = self.command(f"catch {{rbp 0x{addr:x}}}; bp 0x{addr:x} {self.bp_length}")
            if "breakpoint set" not in reply:
                raise TransportError(f"OpenOCD did not set a breakpoint at 0x{addr:x}: {reply.strip()!r}")
            self._breakpoints[addr] = self.bp_length

    def clear_breakpoints(self) -> None:
        for addr in list(self._breakpoints):
            self.command(f"rbp 0x{addr:x}")
            del self._breakpoints[addr]

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """As :meth:`Transport.run`; ``results`` limits how many of ``result_regs`` are read.
        Word-aligned ``before`` writes go in the script that starts the core."""
        if stop_at is not None:
            self.set_breakpoint(stop_at)
        top = (stack_base + stack_size) & ~0xF
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        # Each register read costs a debug-module access: read only the results asked for.
        wanted = self.result_regs[:len(self.result_regs) if results is None else results]
        regs = " ".join(["pc"] + wanted)
        # OpenOCD serves one command at a time, so it waits in short slices (the first one in
        # the same round trip as the start): a timeout or Ctrl-C is noticed within a slice.
        # wait_halt fails with an empty message when the slice ends (catch it, check the state);
        # get_reg needs -force, or it returns the values set_reg left in its register cache.
        check = (f"if {{[[target current] curstate] ne \"halted\"}} {{set r UTVM_RUNNING}} "
                 f"else {{get_reg -force {{{regs}}}}}")
        writes = ""
        for addr, data in before:
            if addr % 4 or len(data) % 4:
                self.write(addr, data)
                continue
            words = struct.unpack(f"{'<' if self.little_endian else '>'}{len(data) // 4}I", data)
            writes += f"write_memory 0x{addr:x} 32 {{{' '.join(map(hex, words))}}}; "
        try:
            reply = self.command(f"{writes}set_reg {{pc 0x{entry:x} {self.sp_reg} 0x{top:x}}}; resume; "
                                 f"catch {{wait_halt {FIRST_WAIT_MS}}}; {check}")
            while reply.strip() == "UTVM_RUNNING":
                left = deadline - time.monotonic()
                if left <= 0:
                    self.halt()
                    return StopInfo("timeout", pc=self.get_regs(["pc"]).get("pc"))
                reply = self.command(f"catch {{wait_halt {max(1, min(WAIT_SLICE_MS, int(left * 1000)))}}}; {check}")
        except KeyboardInterrupt:
            self.halt()  # reads the interrupted reply first, then stops the core
            raise
        parts = reply.split()
        values = {parts[i]: int(parts[i + 1], 16) for i in range(0, len(parts) - 1, 2)}
        pc = values.get("pc")
        result = tuple(values.get(r, 0) for r in wanted) + (0,) * (len(self.result_regs) - len(wanted))
        if stop_at is not None and pc != stop_at:
            return StopInfo("fault", pc=pc, detail="the core halted there instead of at the done symbol: an "
                                                   "ebreak/bkpt instruction (e.g. __builtin_trap()) or a "
                                                   "debugger breakpoint")
        return StopInfo("done", pc=pc, result=result)

    @property
    def alive(self) -> bool:
        """Whether the Tcl connection is open."""
        return self.sock is not None

    def restart(self) -> bool:
        """After a fault or timeout: make sure the core is halted and forget breakpoints (they are
        set again on the next run, after the runtime's code has been rewritten).

        Returns
        -------
        bool
            False: the core's memory is kept.
        """
        self.halt()
        self.clear_breakpoints()
        return False

    def lend_debug_port(self) -> Optional[Transport]:
        """Give OpenOCD's gdb port to a debugger (:meth:`release_gdb_port`) and keep the Tcl port:
        bulk transfers go through Tcl until :meth:`reclaim_debug_port`; the session's breakpoints
        are removed (the debugger sets its own).

        Returns
        -------
        Transport
            This transport: the session keeps it for memory while the debugger holds the core.
        """
        self.release_gdb_port()
        if self._lent is None:
            self._lent, self.gdb_endpoint = (self.gdb_endpoint,), None   # Tcl only while gdb holds the port
        self.clear_breakpoints()
        return self

    def reclaim_debug_port(self) -> None:
        """After the debugger detached: bulk transfers use the gdb port again, and the core is
        halted if it runs (OpenOCD resumes it when gdb detaches)."""
        if self._lent is not None:
            (self.gdb_endpoint,), self._lent = self._lent, None
        if self.state() != "halted":
            self.halt()

    def release_gdb_port(self) -> None:
        """Close our connection to OpenOCD's gdb port so a debugger can use it (OpenOCD takes one
        gdb connection per target); the next bulk write reconnects. The core stays halted."""
        if self._rsp is not None:
            self._rsp.close()
            self._rsp = None
            if self.state() != "halted":   # OpenOCD may resume the target when gdb detaches
                self.halt()

    def close(self) -> None:
        if self._rsp is not None:
            self._rsp.close()
            self._rsp = None
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
