"""The exception tree of utvm-host: everything the library raises on purpose derives from
:class:`UtvmError`, except argument mismatches, which are plain :class:`TypeError`.

Exceptions carry their context as attributes (so a program can react) and print it (so a
person can read what went wrong, where, and how to fix it).
"""
from __future__ import annotations

from typing import Optional, Sequence


class UtvmError(Exception):
    """Root of every error utvm-host raises on purpose."""


class ConfigError(UtvmError, ValueError):
    """A device configuration is invalid (overlapping, empty, unaligned or unknown entries)."""


class ToolNotFoundError(UtvmError):
    """A program the device needs (a compiler, a simulator) is not installed.

    Attributes: ``tool`` (the program name) and ``hint`` (how to install it).
    """

    def __init__(self, tool: str, hint: str):
        self.tool = tool
        self.hint = hint
        super().__init__(f"{tool} not found: {hint}")


class BuildError(UtvmError):
    """Compiling or linking failed. ``diagnostics`` holds the tool's own messages."""

    def __init__(self, message: str, diagnostics: str = "", command: Optional[Sequence[str]] = None):
        self.diagnostics = diagnostics
        self.command = list(command) if command else None
        text = message
        if diagnostics:
            text += "\n" + diagnostics.rstrip()
        super().__init__(text)


class LinkError(BuildError):
    """A library cannot be linked, e.g. it references symbols nobody defines (``undefined``)."""

    def __init__(self, message: str, undefined: Sequence[str] = (), diagnostics: str = "",
                 command: Optional[Sequence[str]] = None):
        self.undefined = list(undefined)
        super().__init__(message, diagnostics, command)


class LayoutError(UtvmError):
    """Something does not fit in device memory.

    Attributes: ``region``, ``what`` (e.g. ``.text``), ``owner`` (e.g. the library), ``needed``,
    ``capacity``, ``used``, ``free``, ``largest_free`` and ``required_size`` (the smallest region
    size that would hold it), all in bytes.
    """

    def __init__(self, message: str, *, region: str = "", what: str = "", owner: Optional[str] = None,
                 needed: int = 0, capacity: int = 0, used: int = 0, free: int = 0,
                 largest_free: int = 0, required_size: int = 0):
        self.region = region
        self.what = what
        self.owner = owner
        self.needed = needed
        self.capacity = capacity
        self.used = used
        self.free = free
        self.largest_free = largest_free
        self.required_size = required_size
        super().__init__(message)


class TransportError(UtvmError):
    """Moving bytes or control to the device failed."""


class ConnectionLost(TransportError):
    """The link to the device (a socket, a pipe, a child process) went away."""


class TransportTimeout(TransportError):
    """The link did not answer within its deadline."""


class DeviceError(UtvmError):
    """The device reported a problem while running code."""


class DeviceFault(DeviceError):
    """Device code crashed: ``cause`` (e.g. "SIGSEGV: invalid memory reference"), ``pc``,
    ``location`` (``function+offset (file:line)`` when known) and ``fault_address``."""

    def __init__(self, message: str, *, cause: str = "", pc: Optional[int] = None,
                 location: Optional[str] = None, fault_address: Optional[int] = None):
        self.cause = cause
        self.pc = pc
        self.location = location
        self.fault_address = fault_address
        super().__init__(message)


class DeviceTimeout(DeviceError):
    """Device code did not finish in time; ``pc`` and ``location`` say where it was, if known."""

    def __init__(self, message: str, *, timeout: float = 0.0, pc: Optional[int] = None,
                 location: Optional[str] = None):
        self.timeout = timeout
        self.pc = pc
        self.location = location
        super().__init__(message)


class KernelError(DeviceError):
    """A kernel reported an error with ``TVMAPISetLastError`` (or TVM FFI's
    ``TVMFFIErrorSetRaisedFromCStr*``, which also name a ``kind`` such as ``"ValueError"``) and
    returned ``status`` != 0."""

    def __init__(self, message: str, *, kernel: str = "", status: int = 0, text: str = "", kind: str = ""):
        self.kernel = kernel
        self.status = status
        self.text = text
        self.kind = kind
        super().__init__(message)

    def __str__(self) -> str:   # KeyError's base would quote the message
        return str(self.args[0]) if self.args else ""


#: TVM error kinds that are Python built-in exceptions of the same name.
_BUILTIN_KINDS = {cls.__name__: cls for cls in (TypeError, ValueError, IndexError, KeyError, AttributeError,
                                                RuntimeError, NotImplementedError, AssertionError)}
_KIND_CLASSES: dict = {}


def kernel_error_class(kind: str) -> type:
    """The exception class for a kernel error of TVM kind ``kind``: a :class:`KernelError` that
    is also the Python built-in of that name (``except ValueError`` catches a TVM
    ``ValueError`` as it would from TVM on the host); plain :class:`KernelError` otherwise."""
    base = _BUILTIN_KINDS.get(kind)
    if base is None:
        return KernelError
    cls = _KIND_CLASSES.get(kind)
    if cls is None:
        cls = _KIND_CLASSES[kind] = type(f"Kernel{kind}", (KernelError, base),
                                         {"__doc__": f"A kernel raised TVM's {kind}.", "__module__": __name__})
    return cls
