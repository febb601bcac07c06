"""Sessions: one device, its runtime, loaded modules, tensors and calls (see :mod:`.core`)."""
from .core import Session, current_session, load, register_debugger
from .ffi import PackedFunction
from .function import LENGTH_NAMES, BoundCall, CallHandle, Function, call_context
from .module import Module
from .runtime_abi import CALL_STACK_OVERHEAD, STACK_GUARD_BYTES, runtime_error_text, stack_guard_regions
from .tensor import Tensor

__all__ = ["Session", "current_session", "load", "PackedFunction", "BoundCall", "CallHandle", "Function",
           "Module", "Tensor", "call_context", "register_debugger", "runtime_error_text", "stack_guard_regions",
           "LENGTH_NAMES", "CALL_STACK_OVERHEAD", "STACK_GUARD_BYTES"]
