"""Target data layouts: how C types of kernel signatures map to numpy dtypes and to bytes.

The calling convention itself is left to the compiler (a generated C shim per kernel reads
its arguments from an argument block, see :mod:`utvm_host.toolchain`); this module only fixes
the argument block's layout: one :data:`SLOT_SIZE`-byte slot per argument, each holding the
value in the target's byte order at the slot's start.
"""
from __future__ import annotations

import struct
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .elf import CType
# Fault decoding lives with its architecture family (utvm_host.arch); these names stay here too.
from .arch.cortexm import CFSR_BFARVALID, CFSR_CAUSES, CFSR_MMARVALID, cortex_m_cause  # noqa: F401
from .arch.riscv import RISCV_ADDRESS_CAUSES, RISCV_CAUSES, riscv_cause  # noqa: F401

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


# ---- TVM FFI structs (DLPack's DLTensor, TVM FFI's TVMFFIAny) --------------------------------
#
# One description per struct, laid out per data model by the C rules (each member at the next
# multiple of its alignment, the struct padded to its largest alignment). Checked against the
# compilers' own offsetof/sizeof for every target in tests/test_tvm.py.

#: Scalar members: struct code (no byte-order prefix). "P" is a pointer and "E" a C enum whose
#: values fit in a byte (1 byte with short enums, as arm-none-eabi-gcc lays them out, else 4).
_SCALARS = {"i8": "b", "u8": "B", "i16": "h", "u16": "H", "i32": "i", "u32": "I", "i64": "q", "u64": "Q",
            "f32": "f", "f64": "d"}

DLDEVICE = ("struct", (("device_type", "E"), ("device_id", "i32")))
DLDATATYPE = ("struct", (("code", "u8"), ("bits", "u8"), ("lanes", "u16")))
DLTENSOR = ("struct", (("data", "P"), ("device", DLDEVICE), ("ndim", "i32"), ("dtype", DLDATATYPE),
                       ("shape", "P"), ("strides", "P"), ("byte_offset", "u64")))
TVMFFIANY = ("struct", (("type_index", "i32"), ("zero_padding", "u32"),
                        ("v", ("union", (("v_int64", "i64"), ("v_float64", "f64"), ("v_ptr", "P"))))))

#: TVMFFITypeIndex values (tvm/ffi/c_api.h) for what Python passes.
FFI_NONE, FFI_INT, FFI_BOOL, FFI_FLOAT, FFI_DLTENSOR_PTR = 0, 1, 2, 3, 7
#: DLDataTypeCode (dlpack.h) by numpy dtype kind; kDLCPU.
DL_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}
DL_CPU = 1


class DataModel:
    """Sizes and alignments of C scalars on one target. ``ilp32`` (RV32, Arm AAPCS) and ``lp64``
    (RV64, x86-64, AArch64) differ in pointers; every target here aligns 64-bit integers and
    doubles to 8; bare-metal Arm (AAPCS, not Linux) uses short enums."""

    def __init__(self, pointer_size: int, little_endian: bool = True, short_enums: bool = False):
        self.pointer_size = pointer_size
        self.order = byte_order(little_endian)
        self.short_enums = short_enums

    @classmethod
    def of(cls, cfg) -> "DataModel":
        """The data model of a device configuration."""
        return cls(cfg.pointer_size, cfg.little_endian, short_enums=cfg.abi["name"] == "aapcs")

    def scalar(self, code: str) -> Tuple[str, int]:
        """(struct code, size) of a scalar member; its alignment equals its size."""
        if code == "P":
            fmt = "I" if self.pointer_size == 4 else "Q"
        elif code == "E":
            fmt = "B" if self.short_enums else "i"
        else:
            fmt = _SCALARS[code]
        return fmt, struct.calcsize("<" + fmt)

    def layout(self, desc) -> "StructLayout":
        return StructLayout(desc, self)


class StructLayout:
    """A C struct laid out for one :class:`DataModel` by the C rules (each member at the next
    multiple of its alignment, the whole padded to its largest): ``offsets`` maps dotted member
    paths (``"device.device_type"``, ``"v.v_ptr"``) to ``(offset, struct code)``; ``size`` and
    ``align`` are sizeof and alignof. ``packer(paths)`` gives one :class:`struct.Struct` that
    writes those members (given in offset order) with zero padding between them."""

    def __init__(self, desc, model: DataModel):
        self.model = model
        self.size, self.align, members = self._lay(desc)
        self.offsets: Dict[str, Tuple[int, str]] = {path: (off, code) for path, off, code in members}

    def _lay(self, desc) -> Tuple[int, int, list]:
        """(size, alignment, [(path, offset, code)]) of a member description."""
        if isinstance(desc, str):
            code, size = self.model.scalar(desc)
            return size, size, [("", 0, code)]
        kind, members = desc
        offset = size = 0
        align = 1
        out = []
        for name, member in members:
            msize, malign, inner = self._lay(member)
            at = (offset + malign - 1) // malign * malign if kind == "struct" else 0
            out += [(f"{name}.{path}" if path else name, at + off, code) for path, off, code in inner]
            align = max(align, malign)
            offset = at + msize
            size = max(size, offset)
        return (size + align - 1) // align * align, align, out

    def packer(self, paths: Sequence[str]) -> struct.Struct:
        fmt, at = self.model.order, 0
        for path in paths:
            offset, code = self.offsets[path]
            if offset < at:
                raise ValueError(f"packer() members must be in offset order and not overlap: {list(paths)}")
            fmt += f"{offset - at}x{code}" if offset > at else code
            at = offset + struct.calcsize("<" + code)
        return struct.Struct(fmt + (f"{self.size - at}x" if self.size > at else ""))


def dl_dtype(dtype: np.dtype) -> Optional[Tuple[int, int, int]]:
    """DLDataType (code, bits, lanes) of a numpy dtype, or None when DLPack has no code for it."""
    code = DL_CODES.get(dtype.kind)
    if code is None:
        return None
    return code, 8 * dtype.itemsize, 1
