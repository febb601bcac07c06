"""Moving bytes to and from device memory for a session: bulk transfers with progress, verified
writes, and recovery when the link or the device goes away."""
from __future__ import annotations

import contextlib
import logging
import struct
from typing import Any

import numpy as np

from ..errors import ConnectionLost, TransportError
from ..link import LinkedImage
log = logging.getLogger(__name__)

from .runtime_abi import _CrcKernel
from .text import _plural


class TransferMixin:
    """Session methods that move bytes and recover a device that went away."""


    #: Transfers at least this big (bytes) show a progress bar (tqdm; only on a terminal or in a
    #: notebook), per link: a second or more at its measured speed.
    PROGRESS_BYTES = {"openocd": 48 * 1024, "gdb": 16 * 1024 * 1024}

    def _progress(self, nbytes: int, what: str):
        """A tqdm bar for a transfer of ``nbytes``, or None when it is quick."""
        if nbytes < self.PROGRESS_BYTES.get(self.cfg.transport_kind, 1 << 62):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=nbytes, unit="B", unit_scale=True, desc=what, leave=False, disable=None)

    def write_bulk(self, addr: int, data: Any, what: str = "write") -> None:
        """Write ``data`` to device memory, in pieces with a progress bar when it takes a while;
        with :attr:`verify`, checked (:meth:`_verify`). A link or device that died raises
        ConnectionLost after the session restarted it (:meth:`_link`)."""
        view = memoryview(data).cast("B")
        with self._link(what):
            self._bulk(addr, view, what, lambda a, v: self.transport.write(a, v))
            self.link.check_alive()
            if self.verify and view.nbytes:
                self._verify(addr, view, what)

    def read_bulk(self, addr: int, out: Any, what: str = "read") -> None:
        """Fill ``out`` from device memory, with a progress bar when it takes a while."""
        with self._link(what):
            self._bulk(addr, memoryview(out).cast("B"), what, lambda a, v: self.transport.readinto(a, v))
            self.link.check_alive()

    def _write_checked(self, addr: int, data: Any, what: str) -> None:
        """A small write (arguments, the task table), read back with :attr:`verify`."""
        self.transport.write(addr, data)
        if self.verify:
            view = memoryview(data).cast("B")
            if view.nbytes:
                self._verify(addr, view, what, crc=False)

    #: Writes at least this long are verified with a CRC-32 the device computes (one call) instead
    #: of a read-back, on links where reading back costs more than a call (measured: see
    #: benchmarks/bench_verify.py).
    VERIFY_CRC_BYTES = {"openocd": 1024, "serial": 8192}

    def _verify(self, addr: int, view: memoryview, what: str, crc: bool = True) -> None:
        """Check that device memory at ``addr`` holds ``view``; TransportError naming the first
        differing byte otherwise. Long writes outside the runtime on slow links compare a CRC-32
        the runtime computes (``UTVMCrcShim``), the rest is read back."""
        import zlib
        n = view.nbytes
        if crc and self._opened and n >= self.VERIFY_CRC_BYTES.get(self.cfg.transport_kind, 1 << 62) \
                and "UTVMCrcShim" in self._sym and not self.runtime.contains(addr):
            blob = struct.pack(self._ptr_fmt, addr) + bytes(8 - self.cfg.pointer_size) + struct.pack(
                self._order + "Q", n)
            _, _, ret, _ = self._run_task(_CrcKernel(self), blob, self.timeout, doing=what)
            got = struct.unpack_from(self._order + "I", ret)[0]
            if got == zlib.crc32(view) & 0xFFFFFFFF:
                return
            log.warning("verify: CRC-32 of %d bytes at 0x%x differs; reading them back to find where", n, addr)
        theirs = np.empty(n, np.uint8)
        self.transport.readinto(addr, theirs)
        mine = np.frombuffer(view, np.uint8)
        if not np.array_equal(mine, theirs):
            i = int(np.flatnonzero(mine != theirs)[0])
            raise TransportError(f"verifying {what}: {n:,} bytes written at 0x{addr:x} do not read back: byte "
                                 f"0x{addr + i:x} (offset {i}) holds 0x{theirs[i]:02x} instead of 0x{mine[i]:02x}; the "
                                 "link or the device's memory corrupts data (check the connection, or the memory map: "
                                 "is that address writable RAM?)")


    @contextlib.contextmanager
    def _link(self, doing: str):
        """Run transfers on the device: when the link or a device process died, the session
        restarts the device (:meth:`_recover`) and raises ConnectionLost saying what died, while
        ``doing`` what, and that tensor contents were lost; never a raw OSError. Errors already
        recovered from (by an inner :meth:`_link` or :meth:`_execute`) pass through."""
        try:
            yield
        except (TransportError, OSError) as exc:
            if getattr(exc, "recovered", False) or self._recovering:
                raise
            dead = self.link.dead_process(0.3 if isinstance(exc, (ConnectionLost, OSError)) and self._processes else 0)
            if dead is None and not isinstance(exc, (ConnectionLost, OSError)) and self.transport is not None \
                    and self.transport.alive:
                raise   # e.g. a refused address: the link is fine
            cause = f"the device's {dead}" if dead else str(exc)
            recovered = self._recover(f"the device went away while {doing}")
            err = ConnectionLost(f"{cause} while {doing}; {recovered}")
            err.recovered = True
            raise err from None

    def _bulk(self, addr: int, view: memoryview, what: str, move) -> None:
        bar = self._progress(view.nbytes, what)
        if bar is None:
            move(addr, view)
            return
        step = max(16 * 1024, (view.nbytes // 40) & ~0xFFF)
        with bar:
            for off in range(0, view.nbytes, step):
                move(addr + off, view[off:off + step])
                bar.update(min(step, view.nbytes - off))

    def _write_image(self, image: LinkedImage) -> None:
        for addr, data in image.segments:
            self.write_bulk(addr, data, f"load {image.owner}")
        for addr, size in image.zero_fill:
            self.transport.fill(addr, size, 0)

    def _recover(self, why: str) -> str:
        """Bring the device back to a known state and rewrite the runtime and every module;
        returns a sentence for the error message. Tensors survive unless the device had to be
        started anew (a simulator that exited loses its memory: the sentence says so)."""
        relaunched = memory_lost = False
        self._recovering = True
        try:
            try:
                dead = self.link.dead_process()
                if dead is not None:   # nothing to talk to: start it again
                    raise ConnectionLost(dead)
                # True: the device had restarted on its own (a reset board behind a serial link)
                memory_lost = self.transport.restart() is True
            except (TransportError, OSError):
                if not self._processes:
                    raise
                self._relaunch()
                relaunched = True
            if relaunched or memory_lost:
                self._epoch += 1   # every tensor written before now lost its contents
                self._lost_why = why
            self._num_tasks = -1
            self._last_task = None
            self._last_batch = None
            self._profile_state = None
            self._timing_state = (-1, -1)   # the runtime's timing switch may be left on: write it again
            self._write_runtime(image=not relaunched or not self.link.preloaded)
            for image in [*self.runtime_parts, *(mod.image for mod in self.modules)]:
                self._write_image(image)
        except Exception as exc:
            self._broken = f"{why}, and restarting the device failed: {exc}"
            return f"restarting the device failed ({exc}): call sess.reset()"
        finally:
            self._recovering = False
        n = len(self.modules)
        what = f"its {_plural(n, 'library')}" if n else "the runtime"
        if relaunched:
            return (f"the device could not be reached, so it was started again and {what} reloaded "
                    "(tensor contents were lost with its memory)")
        if memory_lost:
            return f"the device had restarted, so {what} reloaded (tensor contents were lost with its memory)"
        return f"the device was {self.transport.restart_verb} and {what} reloaded"

