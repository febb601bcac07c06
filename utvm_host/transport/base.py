"""The transport contract every backend (host, OpenOCD, GDB RSP, serial, the debugger's) implements
and every wrapper (tracing, counting) forwards: :class:`Transport`."""
from __future__ import annotations

import abc
import functools
import logging
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence, Tuple

from ..errors import TransportError

log = logging.getLogger(__name__)


#: ``(address, bytes)`` writes a run makes before it starts.
Writes = Sequence[Tuple[int, bytes]]


@dataclass
class StopInfo:
    """How a run ended.

    ``kind`` is 'done' (reached the stop address), 'fault' (the device trapped: ``signo``/
    ``cause``, ``fault_address``, ``pc``), 'timeout' (did not finish in time; ``pc`` when the
    transport could find out) or 'lost' (the device went away: ``detail`` says how).
    """
    kind: str
    pc: Optional[int] = None
    sp: Optional[int] = None
    signo: int = 0
    code: int = 0
    fault_address: Optional[int] = None
    detail: str = ""
    #: Registers the runtime's UTVMDone(summary, ret_lo, ret_hi) received, when the transport
    #: reads them at the stop (saves memory reads on slow links); None otherwise.
    result: Optional[tuple] = None


class Transport(abc.ABC):
    """Move bytes to and from device memory and start code on the device.

    The contract every backend implements (host, OpenOCD, GDB RSP, serial, the debugger's) and
    every wrapper forwards (:class:`~utvm_host.transport.tracing.TracingTransport`,
    :class:`~utvm_host.transport.tracing.CountingTransport`), after tvm.micro's ``Transport``:

    * memory: :meth:`read`, :meth:`write` (abstract), :meth:`readinto`, :meth:`fill`, and the
      word helpers :meth:`read_word`/:meth:`write_word` (with the shorthands :meth:`read32`,
      :meth:`write32`, :meth:`read64`, :meth:`write64`): the one way to read and write a word;
    * control: :meth:`run` (abstract), :meth:`restart` after a fault or a timeout, :attr:`alive`;
    * the link: :meth:`close` (abstract; also ``with transport:``), :meth:`lend_debug_port` /
      :meth:`reclaim_debug_port` around a debugger, :meth:`with_tracing`;
    * description: :attr:`little_endian`, :attr:`restart_verb`, :attr:`info`, :attr:`inner`.

    ``read`` returns exactly ``n`` bytes or raises; ``write`` writes all of ``data`` or raises.
    Addresses are device addresses. Errors are :class:`~utvm_host.errors.TransportError` instances.
    """

    #: The device's byte order (words, the run record, results).
    little_endian: bool = True
    #: How recovery after a fault words what :meth:`restart` did, in messages such as "the
    #: device was halted and its libraries reloaded".
    restart_verb: str = "restarted"
    #: What the device reported about itself when the link opened (the serial stub: ``version``,
    #: ``pointer_size``, ``max_data``, ``done_hook``, ...); empty when the link learns nothing.
    info: Mapping[str, int] = MappingProxyType({})
    #: The transport this one wraps (tracing, counting) or keeps for memory (the debugger's);
    #: None for a backend that talks to the device itself.
    inner: Optional["Transport"] = None

    # -- the link ------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; safe to call twice."""

    def __enter__(self) -> "Transport":
        """``with transport:`` closes the link at the end of the block.

        Returns
        -------
        Transport
            This transport.
        """
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """Whether the link can still carry requests.

        Returns
        -------
        bool
            False when the link or the device behind it is known to be gone or busy (a
            process that died, a connection closed out of step, a kernel the link cannot stop):
            the session then recovers before the next request. A transport that cannot tell
            says True.
        """
        return True

    def restart(self) -> bool:
        """Bring the device back to a state where it takes requests, after a fault, a timeout or
        an interrupted run (a host device's process started again, a core halted, breakpoints
        forgotten, a link checked).

        Returns
        -------
        bool
            True when the device had restarted on its own and its memory is gone (the session
            then counts every tensor as lost); False when memory was kept.

        Raises
        ------
        TransportError
            The device cannot be brought back over this link (the session starts its
            processes again where it can).
        """
        raise TransportError(f"{type(self).__name__} cannot restart the device")

    def lend_debug_port(self) -> Optional["Transport"]:
        """Let a debugger take the device's debug port (gdb).

        The base closes the link: the debugger carries everything while it is attached.

        Returns
        -------
        Transport or None
            The link the session keeps for memory while the debugger holds the device (a
            transport with a second port, as OpenOCD's Tcl port), or None when the debugger
            must carry every access.
        """
        self.close()
        return None

    def reclaim_debug_port(self) -> None:
        """Take the debug port back after :meth:`lend_debug_port` returned this transport (the
        debugger detached): bulk transfers may use it again and the core is halted. Nothing to do
        in the base (a link that was closed is opened anew by its owner)."""

    def with_tracing(self) -> "Transport":
        """This transport wrapped so that every transfer and run is logged with a hex dump.

        Returns
        -------
        Transport
            A :class:`~utvm_host.transport.tracing.TracingTransport` around this one (records
            go to the ``utvm_host.transport.tracing`` logger at DEBUG level).
        """
        from .tracing import TracingTransport
        return TracingTransport(self)

    # -- memory --------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes at device address ``addr``.

        Returns
        -------
        bytes
            Exactly ``n`` bytes.
        """

    @abc.abstractmethod
    def write(self, addr: int, data) -> None:
        """Write ``data`` (bytes-like, e.g. bytes, memoryview, a contiguous numpy array) at
        device address ``addr``."""

    def readinto(self, addr: int, out) -> None:
        """Fill the writable buffer ``out`` from device memory at ``addr``."""
        view = memoryview(out).cast("B")
        view[:] = self.read(addr, view.nbytes)

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        """Set ``size`` bytes at ``addr`` to ``value``."""
        self.write(addr, bytes([value]) * size)

    def word_struct(self, bits: int, signed: bool = False) -> struct.Struct:
        """The :class:`struct.Struct` of one ``bits``-bit word (8, 16, 32 or 64) in the device's
        byte order."""
        return _word_struct(self.little_endian, bits, signed)

    def read_word(self, addr: int, bits: int, signed: bool = False) -> int:
        """Read one word in the device's byte order.

        Parameters
        ----------
        addr : int
            Device address of the word.
        bits : int
            Its width: 8, 16, 32 or 64 (a pointer: 8 * the device's pointer size).
        signed : bool
            Read it as two's complement.

        Returns
        -------
        int
            The word's value.
        """
        word = self.word_struct(bits, signed)
        return word.unpack(self.read(addr, word.size))[0]

    def write_word(self, addr: int, value: int, bits: int, signed: bool = False) -> None:
        """Write one word in the device's byte order.

        Parameters
        ----------
        addr : int
            Device address of the word.
        value : int
            Its value (:class:`struct.error` when it does not fit).
        bits : int
            Its width: 8, 16, 32 or 64.
        signed : bool
            Write it as two's complement.
        """
        self.write(addr, self.word_struct(bits, signed).pack(value))

    def read32(self, addr: int) -> int:
        """Shorthand to read an unsigned 32-bit word in the device's byte order."""
        return self.read_word(addr, 32)

    def write32(self, addr: int, value: int) -> None:
        """Shorthand to write an unsigned 32-bit word in the device's byte order."""
        self.write_word(addr, value, 32)

    def read64(self, addr: int) -> int:
        """Shorthand to read an unsigned 64-bit word in the device's byte order."""
        return self.read_word(addr, 64)

    def write64(self, addr: int, value: int) -> None:
        """Shorthand to write an unsigned 64-bit word in the device's byte order."""
        self.write_word(addr, value, 64)

    # -- control -------------------------------------------------------------------------

    @abc.abstractmethod
    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """Start the device at ``entry`` and wait until it reaches ``stop_at``, faults, or
        ``timeout`` seconds pass.

        Parameters
        ----------
        entry : int
            Where the core starts (a ``void(void)`` function).
        stack_base, stack_size : int
            The stack the core runs on (sp starts at its 16-byte aligned top).
        stop_at : int or None
            The address that ends the run (the runtime's done symbol); None where the call
            returns by itself (the host device).
        timeout : float or None
            Seconds to wait; None waits for ever.
        results : int or None
            How many result registers the caller needs (transports that read registers at
            the stop may read fewer); None: all.
        before : sequence of (int, bytes)
            Small writes to make first, in the same round trip as the start where the link
            allows (the runtime's run record: no extra round trip per call).

        Returns
        -------
        StopInfo
            How the run ended.
        """


@functools.lru_cache(maxsize=None)
def _word_struct(little_endian: bool, bits: int, signed: bool) -> struct.Struct:
    try:
        code = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
    except KeyError:
        raise ValueError(f"a word is 8, 16, 32 or 64 bits, not {bits}") from None
    return struct.Struct(("<" if little_endian else ">") + (code if signed else code.upper()))
