"""Placing the runtime, its parts linked on demand and libraries in device memory; plans and fits."""
from __future__ import annotations

import logging
import math
import numbers
import os
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..elf import ElfFile
from ..errors import LayoutError, LinkError, UtvmError
from ..layout import MemoryMap, align_up
from ..toolchain import Library, build_runtime, build_runtime_parts, library_from_object, runtime_parts_needed
log = logging.getLogger(__name__)

from .module import Module
from .runtime_abi import CALL_STACK_OVERHEAD, STACK_GUARD_BYTES, stack_guard_regions


class LoaderMixin:
    """Session methods that place code in device memory."""

    # -- runtime -----------------------------------------------------------------------------

    def _place_runtime(self) -> None:
        """Link the runtime at its addresses and learn its symbols and struct layouts. The
        stack is placed first: the lowest address of its region, so an overflow runs below it."""
        spec = {r.name: r for r in self.cfg.resolved_layout()}
        self._sizes = {k: spec[k].size for k in ("stack", "workspace", "args")}
        self._stack_block = self.layout.place("stack", self._sizes["stack"], owner="runtime", what="stack",
                                              align=spec["stack"].align)
        lib = build_runtime(self.cfg)
        self.runtime = self.linker.place(lib, "runtime", self.link.stub_symbols())
        with ElfFile(self.runtime.elf_path) as elf:
            self._sym_sizes = {n: elf.get_symbol(n).size for n in ("utvm_stack_guard", "utvm_console_line")
                               if elf.get_symbol(n)}
            self._task_layout = elf.struct_layout("UTVMTask")
            task_size = elf.get_symbol("utvm_tasks").size
            self._max_repeat = elf.get_symbol("utvm_counts").size // 8
            self._error_sizes = {n: elf.get_symbol(n).size for n in ("utvm_last_error", "utvm_last_error_kind")}
            try:
                self._fault_layout: Optional[Dict[str, Tuple[int, int]]] = elf.struct_layout("UTVMFault")
            except KeyError:
                self._fault_layout = None
        sym = self.runtime.symbols
        ptr = self.cfg.pointer_size
        self._ptr_fmt = ("<" if self.cfg.little_endian else ">") + ("I" if ptr == 4 else "Q")
        self._order = "<" if self.cfg.little_endian else ">"
        off = {k: v[0] for k, v in self._task_layout.items()}
        end = max(o + s for o, s in self._task_layout.values())
        self._task_stride = align_up(end, ptr)   # struct size: fields plus tail padding
        self._max_tasks = task_size // self._task_stride
        self._task_off = off
        if off["error"] != off["status"] + 4:
            raise LinkError("the device runtime's UTVMTask layout is unexpected (status, error not adjacent)")
        self._status = struct.Struct(self._order + "ii")
        self._num_tasks = -1
        self._last_task: Optional[bytes] = None
        self._last_batch: Optional[tuple] = None
        self._profile_state: Optional[bool] = False   # the runtime's utvm_profile starts at 0
        self._sym = sym
        self._entry = sym.get("UTVMEntry", sym["UTVMMain"])
        self._trapped = (1 << (8 * ptr)) - 1
        ws, args = self._sizes["workspace"], self._sizes["args"]
        self._workspace_block = self.layout.place("workspace", ws, owner="runtime", what="workspace", align=16)
        self._args_block = self.layout.place("args", args, owner="runtime", what="call arguments", align=16)

    def _write_runtime(self, image: bool = True) -> None:
        if image:
            self._write_image(self.runtime)
        ptr_bits = 8 * self.cfg.pointer_size
        self.transport.write_word(self._sym["utvm_workspace_base"], self._workspace_block.start, ptr_bits)
        self.transport.write_word(self._sym["utvm_workspace_size"], self._workspace_block.size, ptr_bits)
        if "utvm_stack_limit" in self._sym:   # Cortex-M: PSPLIM or an MPU guard at the stack's bottom
            self.transport.write32(self._sym["utvm_stack_limit"], self._stack_block.start)
            self._guard_written = None
            self._write_stack_guard()

    def _write_stack_guard(self) -> None:
        """Cortex-M v7-M: write the MPU regions that guard the stack's underside as deep as the
        largest frame ``-fstack-usage`` reports for the loaded libraries (below the stack only
        over addresses outside every memory region; warns when that cannot reach deep enough).
        Written when it changes: at open, after a restart, at load and unload."""
        if "utvm_stack_guard" not in self._sym:
            return
        deepest = max((n for m in self.modules for n in m.library.stack_usage.values()), default=0)
        limit = self._stack_block.start
        floor = 0
        live = list(self.cfg["memory"]) + list(self.cfg["transport"].get("stub_memory", []))
        for m in live:   # in use below the stack: a region under it, or the rest of the stack's own
            if m["start"] < limit:
                floor = max(floor, min(m["start"] + m["size"], limit))
        slots = self._sym_sizes.get("utvm_stack_guard", 64) // 8
        regions = stack_guard_regions(limit, deepest + CALL_STACK_OVERHEAD, floor, slots)
        table = bytearray(8 * slots)
        for i, (base, size) in enumerate(regions):
            rasr = (1 << 28) | ((size.bit_length() - 2) << 1) | 1   # XN, no access, 2^(SIZE+1) bytes, on
            struct.pack_into(self._order + "II", table, 8 * i, base, rasr)
        if bytes(table) == self._guard_written:
            return
        self.transport.write(self._sym["utvm_stack_guard"], bytes(table))
        self._guard_written = bytes(table)
        depth = limit + STACK_GUARD_BYTES - min((b for b, _ in regions), default=limit)
        if depth < deepest + CALL_STACK_OVERHEAD:
            log.warning("the stack guard reaches only %d bytes below the top of its 4 KiB at 0x%x (memory in use "
                        "lies below the stack), less than the largest frame of the loaded code (%d bytes): a chain of "
                        "calls that overflows the stack may run past it; place the stack at the start of a memory "
                        "region", depth, limit, deepest)

    def _check_frame(self, module: "Module", kernel: str, symbol: str) -> None:
        """Refuse a kernel whose own stack frame (``-fstack-usage``) cannot fit in the device stack
        (less its guard): it would overflow on every call. :class:`LayoutError` says by how much
        and how to fix it."""
        frame = module.library.stack_usage.get(symbol)
        if frame is None:
            return
        stack = self._stack_block.size
        guard = STACK_GUARD_BYTES if "utvm_stack_guard" in self._sym else 0
        usable = stack - guard
        if frame + CALL_STACK_OVERHEAD <= usable:
            return
        need = (frame + CALL_STACK_OVERHEAD + guard + 4095) & ~4095
        guarded = f", {guard:,} of them its overflow guard" if guard else ""
        raise LayoutError(
            f"kernel '{kernel}' of '{module.name}' has a stack frame of {frame:,} bytes (gcc -fstack-usage), more "
            f"than fits in the device stack ({stack:,} bytes{guarded}; a call needs its frame and "
            f"{CALL_STACK_OVERHEAD} bytes more): every call would overflow it. Enlarge "
            f"cfg['mem_layout']['stack']['size'] to at least {need:,}, or move the kernel's large local arrays "
            "into a parameter or the workspace (TVMBackendAllocWorkspace)", region="stack",
            what=f"stack frame of {kernel}", owner=module.name, needed=frame + CALL_STACK_OVERHEAD,
            capacity=usable, used=CALL_STACK_OVERHEAD, free=usable, largest_free=usable, required_size=need)

    # -- libraries ---------------------------------------------------------------------------

    def _externs(self) -> Tuple[Dict[str, int], Dict[str, "Module"]]:
        symbols = dict(self.runtime.symbols)
        for image in self.runtime_parts:
            symbols.update(image.symbols)
        providers: Dict[str, Module] = {}
        for mod in self.modules:
            for name, addr in mod.exports.items():
                if name not in symbols:
                    symbols[name] = addr
                    providers[name] = mod
        return symbols, providers

    def load(self, lib: Union[Library, str, os.PathLike]) -> "Module":
        """Place ``lib`` in device memory, link it there and write it to the device.

        ``lib`` is a :class:`Library` from :func:`build` or the path of a relocatable object
        (``.o``) for this device. Raises :class:`LayoutError` when it does not fit and
        :class:`LinkError` for undefined symbols or a library built for another device.
        """
        self._require_open()
        lib = self._as_library(lib)
        parts_before = len(self.runtime_parts)
        try:
            self._place_runtime_parts(lib)
            for block in self._planned.pop(lib.path, []):   # its reservation becomes the real thing
                self.layout.free(block)
            count = self._owners.get(lib.name, 0) + 1
            owner = lib.name if count == 1 else f"{lib.name}#{count}"
            externs, providers = self._externs()
            image = self.linker.place(lib, owner, externs)
        except (LayoutError, LinkError):   # as it was: no part stays for a library that is not there
            self._drop_runtime_parts(parts_before)
            raise
        self._owners[lib.name] = count
        needed = set(lib.elf().undefined_symbols())
        self._write_image(image)
        deps = {providers[n] for n in needed if n in providers}
        mod = Module(self, lib, image, deps)
        self.modules.append(mod)
        self._write_stack_guard()   # as deep as the largest frame now loaded
        if self._debugger is not None:
            self._debugger.module_loaded(mod)
        self._publish()
        log.info("loaded %s: %s", owner, ", ".join(f"{b.what} {b.size:,} B at 0x{b.start:x}" for b in image.blocks))
        return mod

    def _runtime_parts_for(self, lib: Library, present: Dict[str, int]) -> List[Library]:
        """The parts of the runtime ``lib`` calls into (and those they call) that are not among
        ``present``, in the order to place them."""
        if self._part_libs is None:
            self._part_libs = build_runtime_parts(self.cfg)
        return runtime_parts_needed(self._part_libs, lib.elf().undefined_symbols(), present)

    def _place_runtime_parts(self, lib: Library) -> None:
        """Place and write the parts of the runtime ``lib`` calls into that are not on the device."""
        for part in self._runtime_parts_for(lib, self._externs()[0]):
            for block in self._planned.pop(part.path, []):   # plan() reserved its room
                self.layout.free(block)
            image = self.linker.place(part, part.name, self._externs()[0])
            self.runtime_parts.append(image)   # before writing: a recovery rewrites it
            self._write_image(image)
            if self._debugger is not None:
                self._debugger.add_symbols(image.owner, image)
            log.info("placed %s: %s", part.name, ", ".join(f"{b.what} {b.size:,} B at 0x{b.start:x}"
                                                           for b in image.blocks))

    def _drop_runtime_parts(self, keep: int) -> None:
        """Free the runtime parts placed after the first ``keep``."""
        for image in self.runtime_parts[keep:]:
            for block in image.blocks:
                self.layout.free(block)
            if self._debugger is not None:
                self._debugger.remove_symbols(image.owner)
            image.discard()
        del self.runtime_parts[keep:]

    def _reservations(self, libs: Sequence[Library], owner: str) -> Tuple[List[Tuple[Library, str]], Dict[str, int]]:
        """What placing ``libs`` takes: ``[(library, owner)]`` with the runtime parts they need
        first, and the symbols to measure them with (the parts' at a stand-in address: only
        their sizes matter before placing)."""
        externs = self._externs()[0]
        stand_in = self.layout.regions_for("text")[0].start
        out: List[Tuple[Library, str]] = []
        for lib in libs:
            for part in self._runtime_parts_for(lib, externs):
                out.append((part, f"{owner} {part.name}"))
                externs.update(dict.fromkeys(part.elf().defined_symbols(), stand_in))
            out.append((lib, f"{owner} {lib.name}"))
        return out, externs

    def _as_library(self, lib: Union[Library, str, os.PathLike]) -> Library:
        if isinstance(lib, (str, os.PathLike)):
            if not str(lib).endswith(".o"):
                raise TypeError(f"load() takes a Library from build() or an object file (.o), got {str(lib)!r}")
            return library_from_object(lib, self.cfg)
        if not isinstance(lib, Library):
            raise TypeError(f"load() takes a Library from build() or an object file (.o), got {type(lib).__name__}")
        return lib

    def fits(self, lib: Union[Library, str, os.PathLike]) -> bool:
        """Whether ``lib`` would fit in the free memory now (nothing is allocated or sent)."""
        self._require_open()
        trial = self.layout.copy()
        reservations, externs = self._reservations([self._as_library(lib)], "fits?")
        try:
            for item, owner in reservations:
                self.linker.reserve(item, owner, externs, layout=trial)
        except LayoutError:
            return False
        return True

    def plan(self, libs: Sequence[Union[Library, str, os.PathLike]] = (),
             tensors: Sequence[Tuple[Any, Any]] = ()) -> MemoryMap:
        """Reserve room for ``libs`` and tensors ``(shape, dtype)`` before anything is sent: all
        fit together, or :class:`LayoutError` says what does not (and nothing is reserved).
        Later ``load(lib)`` and ``empty``/``tensor`` of those sizes use the reservations.
        Returns the memory map with the reservations."""
        self._require_open()
        libs = [self._as_library(lib) for lib in libs]
        trial = self.layout.copy()
        reservations, externs = self._reservations(libs, "planned")
        for item, owner in reservations:   # all in a copy first: an error leaves the real layout untouched
            self.linker.reserve(item, owner, externs, layout=trial)
        sizes = []
        for shape, dtype in tensors:
            shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
            dt = np.dtype(dtype)
            sizes.append((max(math.prod(shape) * dt.itemsize, 1), f"tensor {dt.name}{list(shape)}"))
            trial.place("heap", sizes[-1][0], owner="", what=sizes[-1][1], align=max(dt.alignment, 16))
        for item, owner in reservations:
            self._planned.setdefault(item.path, []).extend(self.linker.reserve(item, owner, externs))
        for size, what in sizes:
            self._planned_tensors.append(self.layout.place("heap", size, owner="planned", what=what, align=16))
        return self.memory_map()

    def _unload(self, mod: "Module") -> None:
        users = [m.name for m in self.modules if mod in m.deps and m is not mod]
        if users:
            raise UtvmError(f"cannot unload '{mod.name}': {', '.join(repr(u) for u in users)} "
                            f"call{'s' if len(users) == 1 else ''} into it; unload "
                            f"{'it' if len(users) == 1 else 'them'} first")
        if self._debugger is not None:
            self._debugger.module_unloaded(mod)
        for block in mod.image.blocks:
            self.layout.free(block)
        self.modules.remove(mod)
        mod.image.discard()   # its linked ELF too: the session folder must not grow per load
        self._write_stack_guard()
        self._publish()

