"""Ctrl-C during a transfer, without desynchronising the link.

A KeyboardInterrupt raised at an arbitrary bytecode inside a request/reply exchange can leave a
reply unread (every later request then reads the previous one's reply), drop bytes that were
received but not yet buffered, or leave half a packet on the wire. Transports therefore run each
exchange inside :class:`DeferredInterrupt`: in the main thread a first SIGINT is only recorded;
the transport stops sending new requests, reads the replies still in flight, and raises
KeyboardInterrupt once the link is in step again (:meth:`DeferredInterrupt.check`). A second
SIGINT raises at once (``forced``): the link's state is then unknown and the transport must
treat it as lost (close it; the session reconnects or restarts the device).

Other threads never receive KeyboardInterrupt, so there the guard does nothing.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

try:   # the C functions under signal.signal/getsignal: 10x cheaper (no enum conversions), and
    import _signal as _sig   # every exchange on a link installs and removes the handler
except ImportError:   # pragma: no cover - other Pythons
    _sig = signal

log = logging.getLogger(__name__)

_active: Optional["DeferredInterrupt"] = None   # the outermost guard installed in the main thread


def interrupt_pending() -> bool:
    """Whether a Ctrl-C is waiting for the current exchange to reach a safe point."""
    guard = _active
    return guard is not None and guard.pending


class DeferredInterrupt:
    """``with DeferredInterrupt() as guard:`` defers SIGINT to the points where the code calls
    ``guard.check()`` (and to the end of the block). Nested guards share the outermost one.

    Contract: inside the block a first Ctrl-C sets ``guard.pending`` and nothing else; a second
    one raises KeyboardInterrupt immediately and sets ``guard.forced`` (the caller must then
    consider its link out of step). Leaving the block normally with an interrupt pending raises
    KeyboardInterrupt. Installed only in the main thread and only over Python's default SIGINT
    handler (a program with its own handler keeps it).
    """

    def __init__(self) -> None:
        self.pending = False
        self.forced = False
        self._installed = False
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        global _active
        if _active is not None:
            return _active
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = _sig.getsignal(signal.SIGINT)
            if previous is not signal.default_int_handler:
                return self
            _sig.signal(signal.SIGINT, self._handler)
        except (ValueError, OSError):   # e.g. an interpreter shutting down
            return self
        self._previous = previous
        self._installed = True
        _active = self
        return self

    def _handler(self, signum, frame) -> None:
        if self.pending:   # Ctrl-C again: the user does not want to wait for the link
            self.forced = True
            self.pending = False
            log.warning("second Ctrl-C: the transfer stops mid-exchange; the link will be reopened")
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Raise the deferred KeyboardInterrupt now (call where no reply is outstanding)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, typ, exc, tb) -> bool:
        global _active
        if not self._installed:
            return False
        self._installed = False
        _active = None
        _sig.signal(signal.SIGINT, self._previous)
        if self.pending and typ is None:
            self.pending = False
            raise KeyboardInterrupt
        return False
