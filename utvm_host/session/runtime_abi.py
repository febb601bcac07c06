"""The device runtime's interface as the host sees it: its own error texts, the stack guard's
regions, and the runtime's own shims called like kernels."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Tuple

from ..toolchain import RUNTIME_INCLUDE

if TYPE_CHECKING:
    from .interface import SessionServices as Session

def _runtime_errors() -> Dict[str, str]:
    """The runtime's own error texts by code, as utvm_runtime_errors.h defines them once
    (``#define UTVM_RUNTIME_ERROR_<code> "text"``): the device stores only ESC and the code."""
    text = (RUNTIME_INCLUDE / "utvm_runtime_errors.h").read_text()
    return dict(re.findall(r'^#define UTVM_RUNTIME_ERROR_(\w+) "([^"\\]*)"$', text, re.M))


_RUNTIME_ERRORS = _runtime_errors()


def runtime_error_text(text: str, bad_header: Callable[[], str] = lambda: "") -> str:
    """An error text as the runtime stored it, with the runtime's own code (ESC and a digit)
    written out: for code 4 (a workspace header written over) followed by ``bad_header()``, the
    header's address in hex (the runtime keeps it in ``utvm_ws_bad``). A kernel's text is
    returned as it is."""
    code = text[1:2]
    if text.startswith("\033") and code in _RUNTIME_ERRORS:
        return _RUNTIME_ERRORS[code] + (bad_header() if code == "4" else "") + text[2:]
    return text


#: Bytes of the stack region's bottom that the Cortex-M v7-M MPU guard always covers
#: (utvm_cortexm.c; the stack region is 4 KiB-aligned on those devices).
STACK_GUARD_BYTES = 4096
#: Stack a call takes beyond the kernel's own frame: the runtime's entry and the call shim.
CALL_STACK_OVERHEAD = 256


def stack_guard_regions(limit: int, depth: int, floor: int, slots: int = 8) -> List[Tuple[int, int]]:
    """The no-access regions ``(base, size)`` of a v7-M MPU stack guard: sizes are powers of
    two, each aligned to its size, at most ``slots`` of them. Together they cover
    ``[limit + 4096 - depth, limit + 4096)`` (at least the stack's lowest 4 KiB at ``limit``),
    never reaching below ``floor`` (memory in use): there the guard is shallower. A region may
    reach deeper than asked when that saves regions (never below ``floor``)."""
    hi = limit + STACK_GUARD_BYTES
    lo = max(hi - max(depth, STACK_GUARD_BYTES), (floor + 31) & ~31, 0)
    regions: List[Tuple[int, int]] = []
    cur = hi
    while cur > lo and len(regions) < slots:
        align = cur & -cur
        need = cur - lo
        up = 1 << (need - 1).bit_length()      # one region for the rest, if aligned and above floor
        if up <= align and cur - up >= floor:
            regions.append((cur - up, up))
            break
        size = min(align, 1 << (need.bit_length() - 1))
        regions.append((cur - size, size))
        cur -= size
    return regions



class _EmptyKernel:
    """The runtime's UTVMEmptyShim, called like a kernel to measure the timing loop itself."""

    name = "(empty kernel)"
    _result_regs = 1
    shim_symbol = "UTVMEmptyShim"
    nargs = 0

    def __init__(self, session: Session):
        self._task = session._task_record(session._sym[self.shim_symbol], self.nargs)


class _CrcKernel(_EmptyKernel):
    """The runtime's UTVMCrcShim: CRC-32 of device memory (Session(verify=True))."""

    name = "(device CRC-32)"
    shim_symbol = "UTVMCrcShim"
    nargs = 2
    _result_regs = 2


class _FillKernel(_EmptyKernel):
    """The runtime's UTVMFillShim: memset on the device."""

    name = "(device fill)"
    shim_symbol = "UTVMFillShim"
    nargs = 3




@dataclass(frozen=True)
class Completion:
    """The runtime's completion summary of a run, as UTVMMain passes it to UTVMDone (and keeps
    in ``utvm_summary``): ``done | error << 16 | seen << 17 | (run & 0xFF) << 24``
    (device_stubs/runtime/utvm_runtime.c). A trap handler passes all ones instead."""

    done: int      #: tasks finished
    error: bool    #: the last task run reported an error (or the runtime found one)
    seen: int      #: the task count the runtime found in its run record (127: more than 126)
    run: int       #: the low 8 bits of the run id it counted

    @classmethod
    def decode(cls, summary: int) -> "Completion":
        return cls(summary & 0xFFFF, bool((summary >> 16) & 1), (summary >> 17) & 0x7F, (summary >> 24) & 0xFF)

    def echoes(self, run_id: int, n: int) -> bool:
        """Whether this is the summary of run ``run_id`` of ``n`` tasks that either all ran or
        stopped at one that reported an error."""
        return self.run == run_id & 0xFF and self.seen == n and (self.done == n or (self.error and 1 <= self.done <= n))
