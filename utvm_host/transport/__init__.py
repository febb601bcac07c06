"""Transports move bytes and control between Python and a device.

Every transport offers the same primitives (see :class:`Transport`): ``read(addr, n)``,
``write(addr, data)`` and ``run(entry, ...)``; words, structs and tensors are built on them.
"""
from .base import StopInfo, Transport
from .host import HostTransport
from .openocd import OpenOcdTransport
from .tracing import CountingTransport, TracingTransport, hexdump

__all__ = ["StopInfo", "Transport", "HostTransport", "OpenOcdTransport", "TracingTransport", "CountingTransport",
           "hexdump"]
