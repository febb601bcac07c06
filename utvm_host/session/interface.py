"""What tensors, functions and modules need of their session: a small interface, so that they do
not depend on the whole :class:`~utvm_host.session.core.Session` (which implements it)."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol, Tuple

if TYPE_CHECKING:
    from ..config import DeviceConfig
    from ..console import Console
    from ..errors import KernelError
    from ..layout import Block, MemoryLayout
    from ..transport import Transport


class SessionServices(Protocol):
    """The session as its tensors, functions and modules use it (package-internal names)."""

    cfg: "DeviceConfig"
    console: "Console"
    layout: "MemoryLayout"
    transport: "Transport"
    timeout: float
    is_open: bool
    _call_lock: threading.RLock
    _epoch: int                      # the device's generation: a restart that lost memory adds one
    _lost_why: str
    _order: str                      # struct byte order of the device
    _ptr_fmt: str                    # struct format of a device pointer
    _args_block: "Block"             # where call arguments go
    _sym: Dict[str, int]             # the runtime's symbols
    _debugger: Any                   # the attached debugger (utvm_host.debug), or None

    def _require_open(self) -> None: ...
    def _alloc_heap(self, nbytes: int, align: int, what: str) -> "Block": ...
    def write_bulk(self, addr: int, data: Any, what: str = "write") -> None: ...
    def read_bulk(self, addr: int, out: Any, what: str = "read") -> None: ...
    def _task_record(self, shim: int, nargs: int, base: Optional[int] = None) -> Tuple[bytes, int, int]: ...
    def _run_task(self, fn: Any, args_blob: bytes, timeout: Optional[float],
                  timing: Optional[Tuple[int, int]] = None, doing: Optional[str] = None) -> Tuple[int, int, bytes,
                                                                                                 Tuple[int, ...]]: ...
    def _failed_by_runtime(self) -> bool: ...
    def _kernel_error(self, kernel: str, value: Optional[int], tvm: bool = False,
                      what: Optional[str] = None) -> "KernelError": ...
    def _check_frame(self, module: Any, kernel: str, symbol: str) -> None: ...
    def _unload(self, mod: Any) -> None: ...
