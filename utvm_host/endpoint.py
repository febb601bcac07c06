"""Where a transport connects: a TCP address, a Unix socket, or a port inside a session's private
network (:class:`utvm_host.launch.PrivateNetwork`).

Transports take an :class:`Endpoint` and call :meth:`Endpoint.connect` whenever they need a
stream (OpenOCD's Tcl port, a gdb port, a serial link served by QEMU), so the same transport
code runs over loopback TCP to a server the user started and over channels no other user can
reach. ``str(endpoint)`` names it in error messages; :meth:`Endpoint.gdb_target` is what gdb's
``target remote`` takes.
"""
from __future__ import annotations

import abc
import socket
import time
from pathlib import Path
from typing import Union


class Endpoint(abc.ABC):
    """Something a stream socket can be opened to."""

    @abc.abstractmethod
    def connect(self, timeout: float) -> socket.socket:
        """A connected stream socket (blocking, with ``timeout`` as its timeout), or ``OSError``."""

    def connect_retrying(self, timeout: float, wait: float) -> socket.socket:
        """As :meth:`connect`, retrying for ``wait`` seconds while the server is not listening yet."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.connect(timeout)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @abc.abstractmethod
    def gdb_target(self) -> str:
        """The argument of gdb's ``target remote`` that reaches this endpoint."""


class TcpEndpoint(Endpoint):
    """``host:port`` over TCP (Nagle off: the protocols here are request/reply)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, int(port)

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def gdb_target(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class UnixEndpoint(Endpoint):
    """A Unix domain socket: only users who may enter its folder can connect (the session
    folder is 0700)."""

    def __init__(self, path: Union[str, Path]):
        self.path = str(path)

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        return sock

    def gdb_target(self) -> str:
        return self.path   # gdb opens a Unix socket given as a path

    def __str__(self) -> str:
        return self.path


def as_endpoint(host_or_endpoint: Union[str, Endpoint, None], port: Union[int, None] = None) -> Endpoint:
    """An :class:`Endpoint` from the ``(host, port)`` pair older call sites pass, or the endpoint itself."""
    if isinstance(host_or_endpoint, Endpoint):
        return host_or_endpoint
    if port is None:
        raise TypeError("a transport needs an Endpoint or a host and a port")
    return TcpEndpoint(host_or_endpoint or "127.0.0.1", port)
