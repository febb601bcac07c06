"""The device console: what kernels print (``printf``, ``puts``), as a readable stream.

The runtime sends text through the device's own channel (a UART under QEMU, Spike's HTIF, a
file descriptor of the host device's process); the launch layer points that channel at a file
in the session's folder, and this reader picks up what was added after every call::

    mod["noisy"](x)
    sess.console.read()          # "sum=42\\n": everything not read yet

Each line is also logged on the ``utvm_host.console`` logger (INFO) and, in a notebook, printed
as it arrives. When a call fails, what the device printed during it is attached to the
exception (``exc.console``) and quoted in its message. That includes a last partial line the
call never sent (it faulted or timed out before the runtime's flush): the session reads it from
the runtime's line buffer (``utvm_console_line``) in device memory and adds it here.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

from .errors import UtvmError

log = logging.getLogger("utvm_host.console")

#: Text kept for read() at most (older text is dropped, and the drop is said in the text).
KEEP = 1 << 20


class Console:
    """A readable stream of the device's console output (see the module docstring)."""

    def __init__(self, echo: Optional[bool] = None):
        self._path: Optional[Path] = None
        self._file = None               # kept open: fstat per call is cheaper than stat
        self._offset = 0
        self._unread = ""
        self._line = ""
        self._total = 0                 # characters received so far (for per-call capture)
        self.echo = ("ipykernel" in sys.modules) if echo is None else bool(echo)

    @property
    def total(self) -> int:
        """Characters received so far: where a call's capture starts (:meth:`attach_to`)."""
        return self._total

    def attach(self, path: Optional[Path], from_start: bool = False) -> None:
        """Follow ``path`` (None: the device has no console), from its current end unless
        ``from_start``."""
        self.close()
        self._path = Path(path) if path is not None else None
        self._offset = 0
        if self._path is not None:
            self._path.touch()   # the device side appends to it (QEMU truncates it when it starts)
            self._file = open(self._path, "rb")
            if not from_start:
                self._offset = os.fstat(self._file.fileno()).st_size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def attached(self) -> bool:
        return self._path is not None

    def poll(self) -> str:
        """Pick up what the device printed since the last poll; returns it."""
        if self._file is None:
            return ""
        size = os.fstat(self._file.fileno()).st_size
        if size == self._offset:
            return ""
        if size < self._offset:   # the file was started anew (the device was relaunched)
            self._offset = 0
        data = os.pread(self._file.fileno(), size - self._offset, self._offset)
        self._offset += len(data)
        text = data.decode("utf-8", "replace")
        self._received(text)
        return text

    def _received(self, text: str) -> None:
        self._total += len(text)
        self._unread += text
        if len(self._unread) > KEEP:
            dropped = len(self._unread) - KEEP
            self._unread = f"[utvm-host: {dropped:,} older characters dropped]\n" + self._unread[-KEEP:]
        self._line += text
        *lines, self._line = self._line.split("\n")
        for line in lines:
            log.info("%s", line)
        if self.echo:
            sys.stdout.write(text)
            sys.stdout.flush()

    def add_unsent(self, text: str) -> None:
        """Text the device printed that never went through its channel: the partial line a call
        that faulted or timed out left in the runtime's line buffer (the session reads it from
        device memory). It follows what the channel delivered, as it did on the device."""
        self.poll()
        if text:
            self._received(text)

    def read(self) -> str:
        """Everything printed and not read yet (and forget it)."""
        self.poll()
        text, self._unread = self._unread, ""
        return text

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Around one call: poll afterwards, and attach what the call printed to an error."""
        start = self._total
        try:
            yield
        except UtvmError as exc:
            self.attach_to(exc, start)
            raise
        self.poll()

    def attach_to(self, exc: UtvmError, start: int) -> None:
        """Add what was printed since ``start`` (a ``_total``) to ``exc``: ``exc.console`` and its message."""
        self.poll()
        printed = self._recent(self._total - start)
        if printed:
            exc.console = printed
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (f"{exc.args[0]}\nthe device printed:\n{printed.rstrip()}",) + exc.args[1:]

    def _recent(self, n: int) -> str:
        return self._unread[-n:] if n > 0 else ""

    def __repr__(self) -> str:
        return f"<Console {self._path or 'none'}: {len(self._unread):,} characters unread>"
