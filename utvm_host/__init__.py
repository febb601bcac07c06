"""utvm-host: compile C kernels for a small device, load them into its memory and call them
from Python with numpy arrays.

    from utvm_host import Session, build, load, devices
    cfg = devices.host()
    with Session(cfg) as sess:
        mod = load(build(["vadd.c"], cfg))
        mod["vadd"](a, b, c, 64)
"""
import logging

from . import devices
from .config import DeviceConfig
from .errors import (BuildError, ConfigError, ConnectionLost, DeviceError, DeviceFault, DeviceTimeout,
                     KernelError, LayoutError, LinkError, ToolNotFoundError, TransportError, TransportTimeout,
                     UtvmError)
from .session import Function, Module, PackedFunction, Session, Tensor, current_session, load
from . import debug as _debug  # noqa: F401  (registers the debugger with Session.debugger())
from .toolchain import Library, build
from .tvmgen import build_tvm, tvm_target

__version__ = "0.1.0"

# Quiet by default: the library logs (INFO: sessions, loads; DEBUG: every command and transfer)
# and shows nothing unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Session", "Module", "Function", "PackedFunction", "Tensor", "Library", "DeviceConfig", "build", "build_tvm",
    "tvm_target", "load", "devices",
    "current_session", "UtvmError", "ConfigError", "BuildError", "LinkError", "LayoutError", "TransportError",
    "ConnectionLost", "TransportTimeout", "DeviceError", "DeviceFault", "DeviceTimeout", "KernelError",
    "ToolNotFoundError",
]
