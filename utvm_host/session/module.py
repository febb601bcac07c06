"""A library loaded on the device: its kernels as Functions."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Dict, List

from .. import abi
from ..errors import LinkError, UtvmError
from ..link import LinkedImage
from ..toolchain import SHIM_PREFIX, TVM_FFI_PREFIX, Library

from .ffi import PackedFunction
from .function import Function

if TYPE_CHECKING:
    from .interface import SessionServices as Session


class Module:
    """A library loaded on the device. ``mod["name"]`` gives a callable :class:`Function`."""

    def __init__(self, session: Session, library: Library, image: LinkedImage, deps: set):
        self.session = session
        self.library = library
        self.image = image
        self.deps = deps
        self.name = image.owner
        # What other libraries may link against: the library's own globals, not the helpers
        # the linker pulled into it from libgcc or the C library (each library keeps its own).
        own = library.elf().defined_symbols()
        self.exports = {n: a for n, a in image.symbols.items() if n in own}
        self._loaded = True
        self._functions: Dict[str, Function] = {}
        self.signatures = library.signatures()
        #: TVM FFI functions by TVM's name ("vadd" -> "__tvm_ffi_vadd"): called with DLTensors.
        self.tvm_functions = library.tvm_functions()

    @property
    def loaded(self) -> bool:
        return self._loaded

    def __contains__(self, name: str) -> bool:
        return name in self.signatures or name in self.tvm_functions

    def kernels(self) -> List[str]:
        """Names of the functions this module exports (sorted). TVM functions appear under
        TVM's name; the ``main`` alias TVM's C code generator adds is callable but not listed."""
        plain = [n for n in self.signatures if not n.startswith(TVM_FFI_PREFIX)]
        tvm = [n for n in self.tvm_functions if n != "main" or len(self.tvm_functions) == 1]
        return sorted(plain + tvm)

    def __getitem__(self, name: str) -> "Function":
        if not self._loaded:
            raise UtvmError(f"module '{self.name}' was unloaded; load its library again")
        fn = self._functions.get(name)
        if fn is not None:
            return fn
        sig = self.signatures.get(name)
        if sig is None and name in self.tvm_functions:
            symbol = self.tvm_functions[name]
            shim = self.image.symbols.get(SHIM_PREFIX + symbol)
            if shim is None:
                raise LinkError(f"TVM function '{name}' of '{self.name}' has no call shim; load the object "
                                "with load() or build_tvm() again")
            self.session._check_frame(self, name, symbol)
            fn = self._functions[name] = PackedFunction(self, self.signatures[symbol], shim, name)
            return fn
        if sig is None:
            raise KeyError(f"no kernel {name!r} in library '{self.name}'; it has: {', '.join(self.kernels()) or 'none'}")
        reason = abi.unsupported_reason(sig)
        if reason is not None:
            raise TypeError(f"kernel '{name}' cannot be called from Python: {reason}")
        shim = self.image.symbols.get(SHIM_PREFIX + name)
        if shim is None:
            raise LinkError(f"kernel '{name}' of '{self.name}' has no call shim; rebuild the library with build()")
        self.session._check_frame(self, name, name)
        fn = self._functions[name] = Function(self, sig, shim)
        return fn

    def time_evaluator(self, name: str, number: int = 10, repeat: int = 1, min_repeat_ms: float = 0):
        """Time kernel ``name`` on the device, TVM style: ``mod.time_evaluator("k", number=100,
        repeat=3)(*args)`` returns a :class:`~utvm_host.timing.TimingResult` (seconds)."""
        return self[name].time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)

    def unload(self) -> None:
        """Free the module's sections for the next library. Its Functions stop working."""
        if self._loaded:
            self.session._unload(self)
            self._loaded = False

    def _repr_html_(self) -> str:
        rows = []
        for name in self.kernels():
            fn = self[name] if self._loaded else None
            rows.append(f"<tr><td><code>{html.escape(repr(fn) if fn is not None else name)}</code></td></tr>")
        blocks = ", ".join(f"{b.what} {b.size:,} B at 0x{b.start:x}" for b in self.image.blocks)
        state = "" if self._loaded else " (unloaded)"
        return (f"<div><b>module {html.escape(self.name)}</b>{state}: {html.escape(blocks)}"
                f"<table>{''.join(rows)}</table></div>")

    def __repr__(self) -> str:
        size = sum(b.size for b in self.image.blocks)
        state = "" if self._loaded else " unloaded"
        return f"<Module {self.name} ({size:,} bytes, kernels: {', '.join(self.kernels())}){state}>"


