"""A transport wrapper that logs every transfer and run, with hex dumps of the bytes.

Enable it with ``Session(cfg, trace=True)`` or ``UTVM_HOST_TRACE=1``; records go to the
``utvm_host.transport.tracing`` logger at DEBUG level. It adds behaviour without touching the
backend it wraps (the pattern of tvm.micro's debug transport); every member of the
:class:`~utvm_host.transport.base.Transport` contract is forwarded by name.
"""
from __future__ import annotations

import logging
from typing import Mapping, Optional

from .base import StopInfo, Transport, Writes

log = logging.getLogger(__name__)

#: Bytes shown per transfer; the rest is summarised.
DUMP_LIMIT = 256


def hexdump(addr: int, data: bytes, limit: int = DUMP_LIMIT) -> str:
    """``addr: 16 bytes in hex  |ascii|`` lines for the first ``limit`` bytes of ``data``."""
    lines = []
    shown = bytes(data[:limit])
    for off in range(0, len(shown), 16):
        chunk = shown[off:off + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"  {addr + off:08x}: {chunk.hex(' '):<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"  ... {len(data) - limit:,} more bytes")
    return "\n".join(lines)


def _dump_view(addr: int, view: memoryview) -> str:
    text = hexdump(addr, view[:DUMP_LIMIT].tobytes())
    if view.nbytes > DUMP_LIMIT:
        text += f"\n  ... {view.nbytes - DUMP_LIMIT:,} more bytes"
    return text


class _Wrapper(Transport):
    """Forwards every member of the :class:`Transport` contract to ``inner``, by name (no
    ``__getattr__``: a backend's extras are reached through :attr:`inner`). The word helpers
    are not forwarded: they are built on :meth:`read` and :meth:`write`, so a wrapper sees them."""

    def __init__(self, inner: Transport):
        self.inner = inner
        self.little_endian = inner.little_endian

    @property
    def alive(self) -> bool:
        return self.inner.alive

    @property
    def restart_verb(self) -> str:
        return self.inner.restart_verb

    @property
    def info(self) -> Mapping[str, int]:
        return self.inner.info

    def read(self, addr: int, n: int) -> bytes:
        return self.inner.read(addr, n)

    def readinto(self, addr: int, out) -> None:
        self.inner.readinto(addr, out)

    def write(self, addr: int, data) -> None:
        self.inner.write(addr, data)

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        self.inner.fill(addr, size, value)

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        return self.inner.run(entry, stack_base=stack_base, stack_size=stack_size, stop_at=stop_at, timeout=timeout,
                              results=results, before=before)

    def restart(self) -> bool:
        return self.inner.restart()

    def lend_debug_port(self) -> Optional[Transport]:
        return self.inner.lend_debug_port()

    def reclaim_debug_port(self) -> None:
        self.inner.reclaim_debug_port()

    def close(self) -> None:
        self.inner.close()


class TracingTransport(_Wrapper):
    """Wraps another transport; every call is logged, then forwarded unchanged
    (:meth:`Transport.with_tracing` makes one)."""

    def with_tracing(self) -> Transport:
        return self   # traced already

    def read(self, addr: int, n: int) -> bytes:
        data = self.inner.read(addr, n)
        log.debug("read  0x%x, %d bytes\n%s", addr, n, hexdump(addr, data))
        return data

    def readinto(self, addr: int, out) -> None:
        self.inner.readinto(addr, out)
        view = memoryview(out).cast("B")
        log.debug("read  0x%x, %d bytes\n%s", addr, view.nbytes, _dump_view(addr, view))

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        log.debug("write 0x%x, %d bytes\n%s", addr, view.nbytes, _dump_view(addr, view))
        self.inner.write(addr, data)

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        log.debug("fill  0x%x, %d bytes with 0x%02x", addr, size, value)
        self.inner.fill(addr, size, value)

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        for addr, data in before:
            view = memoryview(data).cast("B")
            log.debug("write 0x%x, %d bytes (with the run)\n%s", addr, view.nbytes, _dump_view(addr, view))
        log.debug("run   entry 0x%x, stack 0x%x+%d, stop at %s, timeout %s s", entry, stack_base, stack_size,
                  f"0x{stop_at:x}" if stop_at is not None else "-", timeout)
        stop = self.inner.run(entry, stack_base=stack_base, stack_size=stack_size, stop_at=stop_at, timeout=timeout,
                              results=results, before=before)
        log.debug("stop  %s", stop)
        return stop

    def restart(self) -> bool:
        log.debug("restart")
        return self.inner.restart()

    def lend_debug_port(self) -> Optional[Transport]:
        log.debug("lend the debug port")
        return self.inner.lend_debug_port()

    def reclaim_debug_port(self) -> None:
        log.debug("reclaim the debug port")
        self.inner.reclaim_debug_port()

    def close(self) -> None:
        log.debug("close")
        self.inner.close()


class CountingTransport(_Wrapper):
    """Wraps another transport and counts what crosses the link: ``bytes_written``,
    ``bytes_read``, ``runs`` (for benchmarks and tests of traffic; ``reset()`` zeroes them)."""

    def __init__(self, inner: Transport):
        super().__init__(inner)
        self.reset()

    def reset(self) -> None:
        self.bytes_written = self.bytes_read = self.runs = 0

    def read(self, addr: int, n: int) -> bytes:
        self.bytes_read += n
        return self.inner.read(addr, n)

    def readinto(self, addr: int, out) -> None:
        self.bytes_read += memoryview(out).nbytes
        self.inner.readinto(addr, out)

    def write(self, addr: int, data) -> None:
        self.bytes_written += memoryview(data).nbytes
        self.inner.write(addr, data)

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        self.runs += 1
        self.bytes_written += sum(len(data) for _, data in before)
        return self.inner.run(entry, stack_base=stack_base, stack_size=stack_size, stop_at=stop_at, timeout=timeout,
                              results=results, before=before)
