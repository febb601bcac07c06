"""A private network namespace for Spike and OpenOCD: their ports exist only inside it."""
from __future__ import annotations

import ctypes
import logging
import socket
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Optional

from ..endpoint import Endpoint, UnixEndpoint
from ..errors import ConnectionLost, TransportError

log = logging.getLogger(__name__)

from .process import _Process, _die_with_parent, _kill, _live, _live_lock, spawn

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000



class PrivateNetworkUnavailable(TransportError):
    """The kernel would not give this process a network namespace of its own."""


class PrivateNetwork(_Process):
    """A network namespace only this session's processes live in (see ``netns_keeper.py``).

    Programs started with ``ManagedProcess(..., network=net)`` join it; their TCP ports are
    reachable only from inside. :meth:`connect` hands Python a socket connected to such a port
    (the keeper connects inside and passes the descriptor: no relay, no cost per byte);
    :meth:`relay` exposes a port as a Unix socket in the 0700 session folder, for gdb-multiarch.
    Raises :class:`PrivateNetworkUnavailable` where namespaces are refused.
    """

    KEEPER = Path(__file__).with_name("netns_keeper.py")
    name = "private-network"

    def __init__(self, log_dir: Path, timeout: float = 10.0):
        self.log_path = Path(log_dir) / "netns.log"
        self.proc = None
        self._lock = threading.Lock()
        self._relays: list = []
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(self.log_path, "ab") as logf:
                # preexec_fn: PR_SET_PDEATHSIG, so the keeper never outlives Python (fixed code of ours)
                self.proc = spawn([sys.executable, "-I", "-S", str(self.KEEPER), str(theirs.fileno())],
                                  stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                  pass_fds=(theirs.fileno(),), preexec_fn=_die_with_parent, start_new_session=True)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._control = mine
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self.namespace_fds: tuple = ()
        try:
            mine.settimeout(timeout)
            try:
                reply = mine.recv(4096).decode(errors="replace")
            except OSError as exc:
                reply = f"error no answer ({exc})"
            if reply != "ready":
                why = reply[6:] if reply.startswith("error ") else reply or "the keeper exited"
                tail = self.log_tail()
                raise PrivateNetworkUnavailable(f"no private network namespace: {why}" + (f"; {tail}" if tail else ""))
            names = ["net"] if os.geteuid() == 0 else ["user", "net"]
            self.namespace_fds = tuple(os.open(f"/proc/{self.proc.pid}/ns/{n}", os.O_RDONLY | os.O_CLOEXEC)
                                       for n in names)
        except BaseException:
            self.stop()
            raise

    def preexec(self):
        """The function a child runs between fork and exec to join the namespace (the user
        namespace first when not root: joining its network namespace needs its capabilities)."""
        fds = self.namespace_fds
        flags = [_CLONE_NEWNET] if len(fds) == 1 else [_CLONE_NEWUSER, _CLONE_NEWNET]

        def join() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            for fd, flag in zip(fds, flags):
                if libc.setns(fd, flag) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into the session's private network: {os.strerror(err)}")
            libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL

        return join

    def _request(self, text: str, timeout: float) -> tuple:
        with self._lock:
            if self.proc is None:
                raise ConnectionLost("the session's private network is gone (its keeper was stopped); "
                                     "call sess.reset()")
            self._control.settimeout(timeout)
            try:
                self._control.send(text.encode())
                message, fds, _, _ = socket.recv_fds(self._control, 4096, 1)
            except OSError as exc:
                raise ConnectionLost(f"the session's private network keeper did not answer {text!r}: {exc}; "
                                     "call sess.reset()") from None
        if not message:
            raise ConnectionLost("the session's private network keeper exited; call sess.reset()")
        reply = message.decode(errors="replace")
        if reply != "ok":
            for fd in fds:
                os.close(fd)
            raise OSError(reply[6:] if reply.startswith("error ") else reply)
        return fds

    def connect(self, port: int, timeout: float = 10.0) -> socket.socket:
        """A stream socket connected to 127.0.0.1:``port`` inside the namespace."""
        fds = self._request(f"connect {int(port)}", timeout)
        sock = socket.socket(fileno=fds[0])
        sock.settimeout(timeout)
        return sock

    def relay(self, path: Path, port: int) -> UnixEndpoint:
        """A Unix socket at ``path`` (mode 0600) whose connections reach ``port`` inside."""
        path = Path(path)
        if path not in self._relays:
            if path.exists() or path.is_symlink():
                path.unlink()
            self._request(f"relay {path} {int(port)}", 10.0)
            self._relays.append(path)
        return UnixEndpoint(path)

    def endpoint(self, port: int) -> "PrivateEndpoint":
        return PrivateEndpoint(self, port)

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        self._control.close()   # the keeper exits when its control socket closes

    def stop(self, grace: float = 2.0) -> None:
        if self.inherited:   # a forked child: the parent's keeper and relay sockets stay
            super().stop(grace)
            return
        super().stop(grace)
        self._control.close()
        for path in self._relays:
            try:
                path.unlink()
            except OSError:
                pass
        self._relays = []
        for fd in self.namespace_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.namespace_fds = ()


class PrivateEndpoint(Endpoint):
    """A TCP port inside a :class:`PrivateNetwork`."""

    def __init__(self, network: PrivateNetwork, port: int):
        self.network, self.port = network, port

    def connect(self, timeout: float) -> socket.socket:
        return self.network.connect(self.port, timeout)

    def gdb_target(self) -> str:
        raise ConnectionError("a port inside a private network is reached through PrivateNetwork.relay()")

    def __str__(self) -> str:
        return f"port {self.port} in the session's private network"


def private_network(log_dir: Path) -> Optional[PrivateNetwork]:
    """The session's private network, or None (with a warning, once) where the kernel refuses
    namespaces or ``UTVM_HOST_PRIVATE_NET=0`` asks for plain loopback ports."""
    global _warned_no_netns
    if os.environ.get("UTVM_HOST_PRIVATE_NET", "1") == "0":
        reason = "UTVM_HOST_PRIVATE_NET=0"
    else:
        try:
            return PrivateNetwork(log_dir)
        except PrivateNetworkUnavailable as exc:
            reason = str(exc)
    if not _warned_no_netns:
        _warned_no_netns = True
        log.warning("%s: OpenOCD's Tcl and gdb ports listen on 127.0.0.1, where every local user can connect "
                    "(its commands that run programs or write files are removed), and Spike's remote-bitbang "
                    "port listens on all addresses; see the README, 'What a session guarantees'", reason)
    return None


_warned_no_netns = False

