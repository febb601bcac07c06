"""Target data layouts: how C types of kernel signatures map to numpy dtypes and to bytes.

The calling convention itself is left to the compiler (a generated C shim per kernel reads
its arguments from an argument block, see :mod:`utvm_host.toolchain`); this module only fixes
the argument block's layout: one :data:`SLOT_SIZE`-byte slot per argument, each holding the
value in the target's byte order at the slot's start.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .elf import CType

#: Bytes per argument slot in the argument block (fits every scalar and pointer we pass).
SLOT_SIZE = 8

_INT_FORMATS = {(1, True): "b", (1, False): "B", (2, True): "h", (2, False): "H",
                (4, True): "i", (4, False): "I", (8, True): "q", (8, False): "Q"}
_FLOAT_FORMATS = {4: "f", 8: "d"}


def is_supported_scalar(ctype: CType) -> bool:
    """True for the scalar kinds a kernel can take or return by value."""
    if ctype.kind in ("int", "enum", "bool"):
        return (ctype.size or 0) in (1, 2, 4, 8)
    if ctype.kind == "float":
        return ctype.size in (4, 8)
    return False


def is_data_pointer(ctype: CType) -> bool:
    """True for pointers to scalars, void, structs, unions or arrays: what numpy arrays and
    tensors can be passed as (only scalar pointees have a dtype that is checked)."""
    if ctype.kind != "pointer" or ctype.pointee is None:
        return False
    return ctype.pointee.kind in ("void", "struct", "union", "array") or is_supported_scalar(ctype.pointee)


def struct_format(ctype: CType, pointer_size: int) -> str:
    """The :mod:`struct` code for a scalar or pointer (without byte-order prefix)."""
    if ctype.kind == "pointer":
        return "I" if pointer_size == 4 else "Q"
    if ctype.kind == "float":
        return _FLOAT_FORMATS[ctype.size]
    if ctype.kind == "bool":
        return "?" if ctype.size == 1 else _INT_FORMATS[(ctype.size, False)]
    return _INT_FORMATS[(ctype.size, bool(ctype.signed))]


def c_type_name(ctype: CType) -> str:
    """A C spelling with the same size and calling convention, for generated shims."""
    if ctype.kind == "void":
        return "void"
    if ctype.kind == "pointer":
        return "void *"
    if ctype.kind == "float":
        return "float" if ctype.size == 4 else "double"
    if ctype.kind == "bool":
        return "_Bool" if ctype.size == 1 else f"uint{8 * ctype.size}_t"
    return f"{'' if ctype.signed else 'u'}int{8 * ctype.size}_t"


def numpy_dtype(ctype: CType) -> Optional[np.dtype]:
    """The numpy dtype of a scalar C type; None for void, structs, unions and arrays (any
    dtype goes: the bytes are passed as they are)."""
    if not is_supported_scalar(ctype):
        return None
    if ctype.kind == "float":
        return np.dtype(np.float32 if ctype.size == 4 else np.float64)
    if ctype.kind == "bool" and ctype.size == 1:
        return np.dtype(np.bool_)
    signed = bool(ctype.signed) and ctype.kind != "bool"
    return np.dtype(f"{'i' if signed else 'u'}{ctype.size}")


def int_range(ctype: CType) -> Tuple[int, int]:
    """The inclusive value range of an integer C type."""
    bits = 8 * ctype.size
    if ctype.signed and ctype.kind != "bool":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def byte_order(little_endian: bool) -> str:
    return "<" if little_endian else ">"


def unsupported_reason(sig) -> Optional[str]:
    """Why a kernel with this signature cannot be called from Python, or None when it can.

    ``sig`` is an :class:`utvm_host.elf.Signature`.
    """
    if sig.variadic:
        return "it is variadic (takes '...')"
    ret = sig.return_type
    if ret.kind != "void" and not is_supported_scalar(ret):
        return f"it returns {ret.spelling}; kernels may return void, an integer, float or double"
    for i, p in enumerate(sig.params):
        if not (is_supported_scalar(p.type) or is_data_pointer(p.type)):
            return (f"parameter {i + 1} ({p.name or '?'}) has type {p.type.spelling}; kernels take pointers to "
                    "scalars, or integers, floats and doubles by value (pass a struct through a pointer)")
    return None


#: RISC-V mcause exception codes (privileged spec, table "Machine cause register values").
RISCV_CAUSES = {
    0: "instruction address misaligned", 1: "instruction access fault", 2: "illegal instruction",
    3: "breakpoint", 4: "load address misaligned", 5: "load access fault", 6: "store/AMO address misaligned",
    7: "store/AMO access fault", 8: "environment call from U-mode", 9: "environment call from S-mode",
    11: "environment call from M-mode", 12: "instruction page fault", 13: "load page fault",
    15: "store/AMO page fault",
}
#: Causes whose mtval is the faulting data or instruction address.
RISCV_ADDRESS_CAUSES = frozenset({0, 1, 4, 5, 6, 7, 12, 13, 15})


def riscv_cause(mcause: int, xlen: int) -> str:
    """``"illegal instruction (mcause 2)"``; interrupts say so."""
    interrupt = mcause >> (xlen - 1) & 1
    code = mcause & ((1 << (xlen - 1)) - 1)
    if interrupt:
        return f"unexpected interrupt {code} (mcause 0x{mcause:x})"
    return f"{RISCV_CAUSES.get(code, 'exception')} (mcause {code})"


#: Cortex-M CFSR bits (Armv7-M ARM B3.2.15; Armv8-M adds STKOF), first match names the cause.
CFSR_CAUSES = (
    (16, "undefined instruction"), (17, "invalid state (a jump to an address without the Thumb bit?)"),
    (18, "invalid exception return"), (19, "no coprocessor (is the FPU enabled?)"),
    (20, "stack overflow (stack limit)"), (24, "unaligned access"), (25, "integer divide by zero"),
    (0, "instruction access violation"), (1, "data access violation"), (4, "MemManage fault on exception entry"),
    (8, "instruction bus error"), (9, "precise data bus error"), (10, "imprecise data bus error"),
    (12, "bus fault on exception entry (stack overflow?)"), (11, "bus fault on exception return"),
)
CFSR_MMARVALID = 1 << 7
CFSR_BFARVALID = 1 << 15


def cortex_m_cause(cfsr: int, hfsr: int) -> str:
    """``"precise data bus error (HardFault)"`` from the fault status registers."""
    for bit, text in CFSR_CAUSES:
        if cfsr >> bit & 1:
            return f"{text} (HardFault)" if hfsr >> 30 & 1 else text
    if hfsr >> 1 & 1:
        return "vector table read fault (HardFault)"
    if hfsr >> 30 & 1:   # forced with no configurable fault: a BKPT no debugger took
        return "breakpoint instruction (BKPT) (HardFault)"
    return f"HardFault (HFSR=0x{hfsr:08x})"
