"""Kernels as Python callables: argument checks and encoding, bound calls, background calls."""
from __future__ import annotations

import math
import numbers
import struct
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import abi
from ..elf import CType, Signature
from ..errors import DeviceError, DeviceTimeout, UtvmError
from ..layout import Block, align_up

from .tensor import Tensor, _free_block
from .text import _plural

if TYPE_CHECKING:
    from .interface import SessionServices as Session
    from .module import Module

#: Parameter names that give the element count of the kernel's array arguments.
LENGTH_NAMES = frozenset({"n", "len", "length", "size", "count", "num", "num_elements", "nelem"})

#: Per thread: whether the running call was started with Function.start() (a debugger may then
#: stop it at breakpoints and the call waits; a plain call cannot wait for a person).
call_context = threading.local()


def _stage(session: Session, arrays: Sequence[Tuple[int, np.ndarray]], what: str
           ) -> Tuple[Optional[Block], Dict[int, int]]:
    """Copy the numpy arrays a call passes to one heap block (16-byte aligned each); returns the
    block (None without arrays: the caller frees it) and each array's device address by key."""
    if not arrays:
        return None, {}
    offsets: Dict[int, int] = {}
    total = 0
    for key, arr in arrays:
        total = align_up(total, 16)
        offsets[key] = total
        total += arr.nbytes
    scratch = session._alloc_heap(total, 16, f"arguments of {what}()")
    try:
        for key, arr in arrays:
            if arr.nbytes:
                session.write_bulk(scratch.start + offsets[key], arr, f"copying the arguments of {what}()")
    except BaseException:
        session.layout.free(scratch)
        raise
    return scratch, {key: scratch.start + off for key, off in offsets.items()}


class _Param:
    """How one parameter is checked and encoded (precomputed per kernel)."""

    def __init__(self, index: int, param, pointer_size: int, order: str):
        self.index = index
        self.name = param.name or f"arg{index}"
        self.ctype: CType = param.type
        self.pointer = self.ctype.kind == "pointer"
        self.fmt = struct.Struct(order + abi.struct_format(self.ctype, pointer_size))
        if self.pointer:
            self.dtype = abi.numpy_dtype(self.ctype.pointee)
            self.const = self.ctype.pointee.const
        else:
            self.kind = self.ctype.kind
            if self.kind == "bool":   # one byte, but C's _Bool holds 0 or 1 only
                self.lo, self.hi = 0, 1
            elif self.kind in ("int", "enum"):
                self.lo, self.hi = abi.int_range(self.ctype)
            elif self.kind == "float":   # finite values beyond these raise (inf and nan pass)
                self.hi = _FLOAT_MAX.get(self.ctype.size or 0, sys.float_info.max)
                self.lo = -self.hi


#: The largest finite value of a float parameter, by size in bytes.
_FLOAT_MAX = {2: 65504.0, 4: float(np.finfo(np.float32).max), 8: sys.float_info.max}


def _short(value: int) -> str:
    """An integer for an error message: in full, or as ``1.000e+400`` once it is too long."""
    text = str(abs(value))
    if len(text) <= 24:
        return str(value)
    return f"{'-' if value < 0 else ''}{text[0]}.{text[1:4]}e+{len(text) - 1}"


class Function:
    """A kernel of a loaded module; call it with numpy arrays, device tensors and scalars."""

    def __init__(self, module: Module, sig: Signature, shim: int):
        self.module = module
        self.signature = sig
        self.name = sig.name
        self.shim = shim
        session = module.session
        ptr = session.cfg.pointer_size
        order = "<" if session.cfg.little_endian else ">"
        self._params = [_Param(i, p, ptr, order) for i, p in enumerate(sig.params)]
        self._length_params = [p for p in self._params if not p.pointer and p.name in LENGTH_NAMES]
        ret = sig.return_type
        self._ret = None if ret.kind == "void" else struct.Struct(order + abi.struct_format(ret, ptr))
        self._ret_kind = ret.kind
        self._task = session._task_record(shim, len(self._params))
        # Registers the stop must report: the summary, then one 32-bit word per 4 return bytes.
        self._result_regs = 1 + (0 if self._ret is None else (self._ret.size + 3) // 4)

    def __repr__(self) -> str:
        params = ", ".join(f"{p.type.spelling} {p.name}".replace("* ", "*") for p in self.signature.params)
        return f"<Function {self.signature.return_type.spelling} {self.name}({params})>"

    def _where(self, p: _Param) -> str:
        return f"argument {p.index + 1} '{p.name}' of {self.name}() ({p.ctype.spelling})"

    def __call__(self, *args: Any, timeout: Optional[float] = None) -> Any:
        """Call the kernel. (Details: :meth:`_call`.)"""
        session = self.module.session
        console = session.console
        start = console.total
        with session._call_lock:
            try:
                value = self._call(args, timeout)[0]
            except UtvmError as exc:   # what the device printed during the call goes with the error
                console.attach_to(exc, start)
                raise
        console.poll()
        return value

    def start(self, *args: Any, timeout: Optional[float] = None) -> "CallHandle":
        """Start the call in the background and return at once; ``.result()`` waits for it.
        With a debugger attached, its breakpoints stop the call (see :mod:`utvm_host.debug`).
        Use the debugger, not the session, until the call completes."""
        return CallHandle(self, args, timeout)

    def time_evaluator(self, number: int = 10, repeat: int = 1, min_repeat_ms: float = 0):
        """A callable that times this kernel on the device: see :mod:`utvm_host.timing`."""
        from ..timing import TimeEvaluator
        return TimeEvaluator(self, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)

    def _call(self, args: Sequence[Any], timeout: Optional[float] = None,
              timing: Optional[Tuple[int, int]] = None) -> Tuple[Any, Tuple[int, ...]]:
        """Call the kernel. ``const T*`` arrays are copied in, ``T*`` arrays in and out, tensors
        are used in place, scalars go by value; returns the kernel's return value (or None).

        Raises :class:`TypeError` (before touching the device) for a wrong number of arguments,
        a wrong dtype, a non-contiguous or read-only array, or an out-of-range scalar;
        :class:`KernelError` when the kernel reports an error; :class:`DeviceFault` /
        :class:`DeviceTimeout` when it crashes or hangs (the session recovers).
        """
        session = self._session_for_call()
        slots, arrays = self._check_args(args, session)
        scratch: Optional[Block] = None
        try:
            scratch, addrs = _stage(session, [(p.index, arr) for p, arr in arrays], self.name)
            _, error, ret, counts = session._run_task(self, self._pack(slots, addrs),
                                                      session.timeout if timeout is None else timeout, timing)
            self._copy_back(session, slots, arrays, addrs)
        finally:
            if scratch is not None:
                session.layout.free(scratch)
        value = None if self._ret is None else self._ret.unpack_from(ret)[0]
        if error and (value is None or value != 0 or session._failed_by_runtime()):
            raise session._kernel_error(self.name, value)
        if self._ret_kind == "bool" and value is not None:
            return bool(value), counts
        return value, counts

    def _copy_back(self, session: "Session", slots: List[Tuple[_Param, Any]],
                   arrays: List[Tuple[_Param, np.ndarray]], addrs: Dict[int, int]) -> None:
        """After the call: tensors the kernel may have written hold valid contents again, and
        the numpy arrays it may have written are read back."""
        for p, value in slots:
            if type(value) is Tensor and not p.const:
                value._written()
        for p, arr in arrays:
            if not p.const and arr.nbytes:
                session.read_bulk(addrs[p.index], arr, f"reading the results of {self.name}()")

    def _session_for_call(self) -> "Session":
        """The session of a loaded module, open and usable; raises otherwise."""
        if not self.module.loaded:
            raise UtvmError(f"module '{self.module.name}' was unloaded; load its library again")
        session = self.module.session
        session._require_open()
        return session

    def _check_args(self, args: Sequence[Any], session: "Session"
                    ) -> Tuple[List[Tuple[_Param, Any]], List[Tuple[_Param, np.ndarray]]]:
        """Every argument checked against its parameter: ``(slots, arrays)``, each parameter with
        its value (a scalar converted, an array, a tensor or None), and the numpy arrays to stage."""
        params = self._params
        if len(args) != len(params):
            names = ", ".join(p.name for p in params)
            raise TypeError(f"{self.name}() takes {_plural(len(params), 'argument')} ({names}), got {len(args)}")
        arrays: List[Tuple[_Param, np.ndarray]] = []
        slots: List[Tuple[_Param, Any]] = []
        for p, value in zip(params, args):
            if not p.pointer:
                value = self._scalar(p, value)
            elif type(value) is Tensor:
                self._check_tensor(p, value, session)
            elif isinstance(value, np.ndarray):
                self._check_array(p, value)
                arrays.append((p, value))
            elif value is not None:
                raise TypeError(f"{self._where(p)} must be a numpy array or a device tensor, "
                                f"got {type(value).__name__}")
            slots.append((p, value))
        self._check_lengths(slots)
        return slots, arrays

    def _check_tensor(self, p: _Param, value: Tensor, session: "Session") -> None:
        if value.session is not session:
            raise TypeError(f"{self._where(p)} is a tensor of another session")
        if value.freed:
            raise TypeError(f"{self._where(p)} is a freed tensor")
        if p.const and value.lost:
            raise DeviceError(f"{self._where(p)} is {value!r}, which lost its contents when the device "
                              f"was started again ({session._lost_why}): write it again "
                              "(t.copyfrom(array)) before passing it")
        self._check_dtype(p, value.dtype)

    def _pack(self, slots: List[Tuple[_Param, Any]], addrs: Dict[int, int]) -> bytes:
        """The argument block: each value in its slot, arrays at their staged addresses."""
        blob = bytearray(abi.SLOT_SIZE * len(self._params))
        for p, value in slots:
            if not p.pointer:
                p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, value)
            elif type(value) is Tensor:
                p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, value.block.start)
            else:
                p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, 0 if value is None else addrs[p.index])
        return bytes(blob)

    def bind(self, *args: Any, label: Optional[str] = None) -> "BoundCall":
        """This call with these arguments, prepared on the device for :meth:`Session.run_batch`:
        pointer arguments must be device tensors (nothing is copied when the batch runs),
        scalars are fixed. The argument block lives in the heap until ``free()``."""
        session = self.module.session
        session._require_open()
        params = self._params
        if len(args) != len(params):
            raise TypeError(f"{self.name}() takes {_plural(len(params), 'argument')}, got {len(args)}")
        slots: List[Tuple[_Param, Any]] = []
        for p, value in zip(params, args):
            if p.pointer:
                if type(value) is Tensor:
                    if value.session is not session or value.freed:
                        raise TypeError(f"{self._where(p)} is a tensor of another session or freed")
                    self._check_dtype(p, value.dtype)
                elif value is not None:
                    raise TypeError(f"{self._where(p)} must be a device tensor in a bound call (a numpy array "
                                    "would be copied at every run): pass sess.tensor(array)")
                slots.append((p, value))
            else:
                slots.append((p, self._scalar(p, value)))
        self._check_lengths(slots)
        blob = bytearray(abi.SLOT_SIZE * (len(params) + 1))   # the arguments, then the return slot
        for p, value in slots:
            p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index,
                            value.addr if type(value) is Tensor else 0 if value is None else value)
        return BoundCall(self, args, lambda base: bytes(blob), len(params), label)

    def _check_dtype(self, p: _Param, dtype: np.dtype) -> None:
        if p.dtype is not None and dtype != p.dtype:
            raise TypeError(f"{self._where(p)} needs a {p.dtype.name} array, got {dtype.name}")

    def _check_array(self, p: _Param, arr: np.ndarray) -> None:
        self._check_dtype(p, arr.dtype)
        if not arr.flags.c_contiguous:
            raise TypeError(f"{self._where(p)} must be C-contiguous; pass np.ascontiguousarray(...) instead")
        if not p.const and not arr.flags.writeable:
            raise TypeError(f"{self._where(p)} may be written by the kernel, but the array is read-only")

    def _scalar(self, p: _Param, value: Any) -> Any:
        """``value`` checked and converted for scalar parameter ``p``: an int in ``[p.lo, p.hi]``
        (``_Bool``: 0 or 1, True or False), or for a float parameter a float the C type can
        hold (finite values up to its largest, inf and nan). Anything else is a TypeError
        naming the kernel, the parameter and, for a number out of range, the allowed range."""
        kind = type(value)
        if kind is int and p.kind != "float" and p.lo <= value <= p.hi:
            return value                                          # the common cases, fast
        if kind is float and p.kind == "float" and p.lo <= value <= p.hi:
            return value
        if isinstance(value, (np.ndarray, Tensor)):
            raise TypeError(f"{self._where(p)} takes a scalar, got {type(value).__name__}")
        return self._float(p, value) if p.kind == "float" else self._integer(p, value)

    def _float(self, p: _Param, value: Any) -> float:
        if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{self._where(p)} takes a number, got {type(value).__name__}")
        try:
            number = float(value)
            if math.isfinite(number) and not p.lo <= number <= p.hi:
                p.fmt.pack(number)   # a hair above the largest value may still round to it
        except OverflowError:   # an int beyond any float (10**400), or beyond this C type (1e39)
            raise TypeError(f"{self._where(p)} = {_short(value)} is out of range "
                            f"[{p.lo!r}, {p.hi!r}]") from None
        return number

    def _integer(self, p: _Param, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)) and p.kind != "bool":
            raise TypeError(f"{self._where(p)} takes an integer, got bool")
        if not isinstance(value, (numbers.Integral, np.bool_)):
            raise TypeError(f"{self._where(p)} takes an integer, got {type(value).__name__} {value!r}")
        value = int(value)
        if not p.lo <= value <= p.hi:
            raise TypeError(f"{self._where(p)} = {_short(value)} is out of range [{p.lo}, {p.hi}]")
        return value

    def _check_lengths(self, slots: List[Tuple[_Param, Any]]) -> None:
        for lp in self._length_params:
            n = slots[lp.index][1]
            for p, value in slots:
                if p.pointer and p.dtype is not None and value is not None:
                    size = value.size
                    if size < n:
                        raise TypeError(f"{self._where(p)} has {size} elements but {lp.name} = {n}")



class BoundCall:
    """A kernel call prepared on the device (:meth:`Function.bind`): its argument block sits in
    the heap, so :meth:`Session.run_batch` only writes the task table. ``label`` names it in
    errors (a graph node's name). Keeps its tensors alive; ``free()`` returns the block."""

    def __init__(self, function: Function, args: Sequence[Any], encode, nargs: int, label: Optional[str]):
        session = function.module.session
        self.function = function
        self.label = label or function.name
        self._args = tuple(args)   # the tensors must outlive the call
        size = len(encode(0))
        self.block = session._alloc_heap(size, 16, f"arguments of {self.label}")
        self._finalizer = weakref.finalize(self, _free_block, weakref.ref(session), self.block)
        session.transport.write(self.block.start, encode(self.block.start))
        self._task = session._task_record(function.shim, nargs, self.block.start)

    def _check(self) -> None:
        if not self._finalizer.alive:
            raise UtvmError(f"the bound call {self.label} was freed")
        if not self.function.module.loaded:
            raise UtvmError(f"the bound call {self.label} uses module '{self.function.module.name}', which was unloaded")
        for value in self._args:
            if type(value) is Tensor and value.freed:
                raise UtvmError(f"the bound call {self.label} uses {value!r}, which was freed")

    def free(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"<BoundCall {self.label}: {self.function.name} at 0x{self.block.start:x}>"


class CallHandle:
    """A call started with :meth:`Function.start`, running in a background thread."""

    def __init__(self, function: Function, args: Sequence[Any], timeout: Optional[float]):
        self.function = function
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        session = function.module.session
        if session._debugger is not None:   # its next wait_stop() is a stop of this call
            session._debugger.call_starting()

        def work() -> None:
            call_context.started = True
            try:
                with session._call_lock, session.console.capture():
                    self._value = function._call(args, timeout)[0]
            except BaseException as exc:   # handed to result()
                self._error = exc
            finally:
                self._done.set()

        self._thread = threading.Thread(target=work, name=f"utvm-call-{function.name}", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: Optional[float] = None) -> Any:
        """The kernel's return value once the call completes (raising what the call raised);
        :class:`~utvm_host.errors.DeviceTimeout` if it has not completed within ``timeout``."""
        if not self._done.wait(timeout):
            raise DeviceTimeout(f"kernel '{self.function.name}' has not completed within {timeout:g} s (it may be "
                                "stopped in the debugger: dbg.cont())", timeout=timeout or 0.0)
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        return f"<CallHandle {self.function.name} {'done' if self.done() else 'running'}>"
