"""The transport contract every backend (host, OpenOCD, GDB RSP, serial) implements."""
from __future__ import annotations

import abc
import logging
import struct
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

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

    ``read`` returns exactly ``n`` bytes or raises; ``write`` writes all of ``data`` or raises.
    Addresses are device addresses. Errors are :class:`~utvm_host.errors.TransportError`s.
    """

    little_endian: bool = True

    @abc.abstractmethod
    def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes at device address ``addr``."""

    @abc.abstractmethod
    def write(self, addr: int, data) -> None:
        """Write ``data`` (bytes-like, e.g. bytes, memoryview, a contiguous numpy array)."""

    def readinto(self, addr: int, out) -> None:
        """Fill the writable buffer ``out`` from device memory at ``addr``."""
        view = memoryview(out).cast("B")
        view[:] = self.read(addr, view.nbytes)

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        """Set ``size`` bytes at ``addr`` to ``value``."""
        self.write(addr, bytes([value]) * size)

    @abc.abstractmethod
    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """Start the device at ``entry`` and wait until it reaches ``stop_at``, faults, or
        ``timeout`` seconds pass. ``results``: how many result registers the caller needs
        (transports that read registers at the stop may read fewer). ``before``: small
        ``(address, bytes)`` writes to make first, in the same round trip as the start where
        the link allows (the runtime's run record: no extra round trip per call)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; safe to call twice."""

    def _word(self, bits: int, signed: bool = False) -> struct.Struct:
        code = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
        return struct.Struct(("<" if self.little_endian else ">") + (code if signed else code.upper()))

    def read32(self, addr: int) -> int:
        """Shorthand to read a 32-bit word in the device's byte order."""
        return self._word(32).unpack(self.read(addr, 4))[0]

    def write32(self, addr: int, value: int) -> None:
        """Shorthand to write a 32-bit word in the device's byte order."""
        self.write(addr, self._word(32).pack(value))

    def read64(self, addr: int) -> int:
        return self._word(64).unpack(self.read(addr, 8))[0]

    def write64(self, addr: int, value: int) -> None:
        self.write(addr, self._word(64).pack(value))
