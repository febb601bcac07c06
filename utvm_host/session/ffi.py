"""Functions on TVM's FFI calling convention (DLTensor and TVMFFIAny arguments)."""
from __future__ import annotations

import numbers
import struct
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import abi
from ..elf import Signature

from ..layout import Block

from .function import BoundCall, Function, _stage
from .tensor import Tensor

if TYPE_CHECKING:
    from .interface import SessionServices as Session
    from .module import Module


class PackedFunction(Function):
    """A function on TVM's FFI ABI (``int32_t __tvm_ffi_NAME(self, TVMFFIAny *args, int32_t
    num_args, TVMFFIAny *result)``), called like TVM calls it: numpy arrays and device tensors
    become ``DLTensor``s (kDLCPU, compact, no strides), Python ints, floats, bools and None
    become ``TVMFFIAny`` values. The generated code checks every argument itself: a wrong shape
    or dtype raises TVM's own message as a :class:`KernelError` that is also the Python
    exception TVM names (``ValueError``, ``TypeError``).

    TVM does not say which arguments are outputs, so every writeable numpy array is copied
    back after the call; pass inputs as read-only arrays (``a.setflags(write=False)``) or as
    device tensors to save the copies.
    """

    def __init__(self, module: Module, sig: Signature, shim: int, name: str):
        super().__init__(module, sig, shim)
        self.name = name
        self.symbol = sig.name
        session = module.session
        model = abi.DataModel.of(session.cfg)
        anys = model.layout(abi.TVMFFIANY)
        self._any_size = anys.size
        self._any = {kind: anys.packer(["type_index", member]) for kind, member in
                     (("ptr", "v.v_ptr"), ("int", "v.v_int64"), ("float", "v.v_float64"))}
        self._any["none"] = anys.packer(["type_index"])
        tensor = model.layout(abi.DLTENSOR)
        self._tensor_size = tensor.size
        self._tensor = tensor.packer(["data", "device.device_type", "device.device_id", "ndim", "dtype.code",
                                      "dtype.bits", "dtype.lanes", "shape", "strides", "byte_offset"])
        self._ptr = struct.Struct(session._ptr_fmt)

    def __repr__(self) -> str:
        return f"<PackedFunction {self.name} (TVM FFI: {self.symbol})>"

    def _where_arg(self, i: int) -> str:
        return f"argument #{i} of {self.name}()"

    def _call(self, args: Sequence[Any], timeout: Optional[float] = None,
              timing: Optional[Tuple[int, int]] = None) -> Tuple[Any, Tuple[int, ...]]:
        session = self._session_for_call()
        arrays = self._check_packed_args(args, session)
        scratch: Optional[Block] = None
        try:
            scratch, addrs = _stage(session, arrays, self.name)
            blob = self._encode(session, args, addrs, session._args_block.start)
            if len(blob) > session._args_block.size:
                raise TypeError(f"{self.name}() has too many arguments for the args region ({len(blob):,} > "
                                f"{session._args_block.size:,} bytes): enlarge cfg['mem_layout']['args']")
            _, error, ret, counts = session._run_task(self, blob, session.timeout if timeout is None else timeout,
                                                      timing)
            for value in args:   # TVM does not say which are outputs: any may hold new contents
                if type(value) is Tensor:
                    value._written()
            for i, arr in arrays:
                if arr.flags.writeable and arr.nbytes:
                    session.read_bulk(addrs[i], arr, f"reading the results of {self.name}()")
        finally:
            if scratch is not None:
                session.layout.free(scratch)
        code = self._ret.unpack_from(ret)[0]   # when timing, the slot holds the count instead
        if error or (timing is None and code != 0):
            raise session._kernel_error(self.name, code if timing is None else -1, tvm=True)
        return None, counts

    def _check_packed_args(self, args: Sequence[Any], session: "Session") -> List[Tuple[int, np.ndarray]]:
        """Every argument checked for TVM's FFI: the numpy arrays to stage, by position."""
        arrays: List[Tuple[int, np.ndarray]] = []
        for i, value in enumerate(args):
            if type(value) is Tensor or isinstance(value, np.ndarray):
                if type(value) is Tensor:
                    if value.session is not session:
                        raise TypeError(f"{self._where_arg(i)} is a tensor of another session")
                    if value.freed:
                        raise TypeError(f"{self._where_arg(i)} is a freed tensor")
                elif not value.flags.c_contiguous:
                    raise TypeError(f"{self._where_arg(i)} must be C-contiguous; pass np.ascontiguousarray(...)")
                else:
                    arrays.append((i, value))
                if abi.dl_dtype(value.dtype) is None:
                    raise TypeError(f"{self._where_arg(i)} has dtype {value.dtype.name}, which DLPack cannot "
                                    "describe; TVM kernels take int, uint, float and bool arrays")
            elif not (value is None or isinstance(value, (numbers.Real, np.bool_))):
                raise TypeError(f"{self._where_arg(i)} must be a numpy array, a device tensor, a number, a bool "
                                f"or None, got {type(value).__name__}")
        return arrays

    def bind(self, *args: Any, label: Optional[str] = None) -> "BoundCall":
        """As :meth:`Function.bind`: array arguments must be device tensors."""
        session = self.module.session
        session._require_open()
        for i, value in enumerate(args):
            if isinstance(value, np.ndarray) or (type(value) is Tensor and (value.session is not session
                                                                            or value.freed)):
                raise TypeError(f"{self._where_arg(i)} must be a device tensor of this session in a bound call")
            if not (value is None or type(value) is Tensor or isinstance(value, (numbers.Real, np.bool_))):
                raise TypeError(f"{self._where_arg(i)} must be a device tensor, a number, a bool or None")
        return BoundCall(self, args, lambda base: self._encode(session, args, {}, base), 4, label)

    def _encode(self, session: Session, args: Sequence[Any], addrs: Dict[int, int], base: int) -> bytes:
        """The argument block at ``base``: the shim's four slots (self, args, num_args, result) and
        its return slot, then the result TVMFFIAny, the TVMFFIAny array, the DLTensors and their
        shapes. ``addrs`` gives the device address of each numpy array argument by position."""
        n = len(args)
        slots = abi.SLOT_SIZE * 5
        result = slots
        anys = result + self._any_size
        tensors = anys + n * self._any_size
        ntensors = sum(1 for v in args if type(v) is Tensor or isinstance(v, np.ndarray))
        shapes = tensors + ntensors * self._tensor_size
        ndims = sum(len(v.shape) for v in args if type(v) is Tensor or isinstance(v, np.ndarray))
        blob = bytearray(shapes + 8 * ndims)
        ptr, order = self._ptr, session._order
        ptr.pack_into(blob, 0, 0)                                        # self: no module context
        ptr.pack_into(blob, abi.SLOT_SIZE, base + anys)
        struct.pack_into(order + "i", blob, 2 * abi.SLOT_SIZE, n)
        ptr.pack_into(blob, 3 * abi.SLOT_SIZE, base + result)
        self._any["none"].pack_into(blob, result, abi.FFI_NONE)
        t = 0
        for i, value in enumerate(args):
            at = anys + i * self._any_size
            if type(value) is Tensor or isinstance(value, np.ndarray):
                data = value.addr if type(value) is Tensor else addrs[i]
                code, bits, lanes = abi.dl_dtype(value.dtype)
                where = tensors + t * self._tensor_size
                self._tensor.pack_into(blob, where, data, abi.DL_CPU, 0, len(value.shape), code, bits, lanes,
                                       base + shapes, 0, 0)
                struct.pack_into(f"{order}{len(value.shape)}q", blob, shapes, *value.shape)
                shapes += 8 * len(value.shape)
                self._any["ptr"].pack_into(blob, at, abi.FFI_DLTENSOR_PTR, base + where)
                t += 1
            elif value is None:
                self._any["none"].pack_into(blob, at, abi.FFI_NONE)
            elif isinstance(value, (bool, np.bool_)):
                self._any["int"].pack_into(blob, at, abi.FFI_BOOL, int(value))
            elif isinstance(value, numbers.Integral):
                if not -(1 << 63) <= int(value) < 1 << 63:
                    raise TypeError(f"{self._where_arg(i)} = {value} does not fit in int64")
                self._any["int"].pack_into(blob, at, abi.FFI_INT, int(value))
            else:
                self._any["float"].pack_into(blob, at, abi.FFI_FLOAT, float(value))
        return bytes(blob)


