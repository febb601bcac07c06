"""Device configuration: what the device is (arch, ABI, memory, toolchain) and how to reach it.

A :class:`DeviceConfig` is a plain ``dict`` so the seed's idiom keeps working::

    cfg = devices.host()
    cfg["mem_layout"]["text"]["size"] = 64 * 1024

It is validated when a factory in :mod:`utvm_host.devices` makes it and again when a session
opens (the user may have edited it in between). Errors are :class:`ConfigError` and name the
key, the value and the fix.

``mem_layout`` maps each section kind to ``{"size": N}`` and optionally ``"start"`` and
``"align"``. Sections without a start are packed one after another, in the dict's order, from
the start of the first memory region (or right after the previous section).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .errors import ConfigError
from .layout import MemoryLayout, align_up

#: Section kinds every layout has. ``args`` holds call arguments, ``heap`` tensors,
#: ``workspace`` the kernels' TVMBackendAllocWorkspace memory, ``stack`` the device stack.
SECTION_KINDS = ("text", "rodata", "data", "bss", "args", "heap", "workspace", "stack")

TOP_LEVEL_KEYS = {
    "name": "a short name for messages, e.g. 'host' or 'spike-rv32imac'",
    "arch": "the CPU, e.g. 'x86_64', 'rv32imac', 'cortex-m3'",
    "abi": "data layout: name, pointer_size, endian, elf_machine, elf_class, stack_align",
    "toolchain": "compiler prefix and flags",
    "memory": "the device's memory regions: list of {name, start, size, attrs}",
    "mem_layout": "section kind -> {size, start, align}",
    "layout": "'auto' (default: placed in the device's memory as needed) or 'manual' (mem_layout's regions)",
    "transport": "how to reach the device: {kind: host | openocd | gdb, ...}",
    "timeout": "seconds a call may run before DeviceTimeout",
    "clock_hz": "the device clock in Hz (None when unknown)",
    "counter": "what the device's timing counter counts: {name, per_second} (per_second None: unknown)",
    "console": "where printf goes: {kind: ns16550 | cmsdk-uart (with base: the UART's address) | htif | fd | none}",
    "console_float": "True: printf formats %f %e %g (about 1.6 KB more console code); default False: they "
                     "print <float>",
    "runtime": "the device runtime's table sizes: {tasks, repeats, error_text} (see RUNTIME_TABLES)",
}
#: cfg["runtime"] entries: (the runtime's build define, default, smallest, largest). ``tasks``: calls
#: per round trip (run_batch); ``repeats``: measurements per time_evaluator run; ``error_text``:
#: bytes of a kernel's error message kept on the device.
RUNTIME_TABLES = {"tasks": ("UTVM_MAX_TASKS", 64, 1, 126), "repeats": ("UTVM_MAX_REPEAT", 64, 1, 4096),
                  "error_text": ("UTVM_ERROR_LEN", 512, 16, 65536)}
#: Console kinds and the runtime's build define for each (see device_stubs/runtime/utvm_console.c).
CONSOLE_KINDS = {"ns16550": "UTVM_CONSOLE_NS16550", "cmsdk-uart": "UTVM_CONSOLE_CMSDK", "htif": "UTVM_CONSOLE_HTIF",
                 "fd": "UTVM_CONSOLE_FD", "none": None}
ABI_KEYS = ("name", "pointer_size", "endian", "elf_machine", "elf_class", "stack_align", "thumb")
TOOLCHAIN_KEYS = ("prefix", "cc", "cflags", "runtime_cflags", "ldflags", "libs", "package")
MEMORY_KEYS = ("name", "start", "size", "attrs", "reserve")
SECTION_KEYS = ("size", "start", "align")


@dataclass(frozen=True)
class RegionSpec:
    """One resolved section region: where a section kind lives in device memory."""
    name: str
    start: int
    size: int
    align: int

    @property
    def end(self) -> int:
        return self.start + self.size


def _is_pow2(value: int) -> bool:
    return value >= 1 and (value & (value - 1)) == 0




def _check_int(where: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where} must be >= {minimum:,}, got {value:,}")
    return value


def _check_keys(where: str, given: Iterable[str], known: Iterable[str]) -> None:
    known = list(known)
    for key in given:
        if key not in known:
            raise ConfigError(f"unknown key {key!r} in {where}; known keys: {', '.join(known)}")


class DeviceConfig(dict):
    """A device configuration (a ``dict``). Use :mod:`utvm_host.devices` to make one."""

    _defaults: Optional[Dict[str, Any]] = None   # mem_layout as the factory made it

    def copy(self) -> "DeviceConfig":  # deep, so editing a copy never edits the original
        twin = DeviceConfig(copy.deepcopy(dict(self)))
        twin._defaults = copy.deepcopy(self._defaults)
        return twin

    def mark_defaults(self) -> "DeviceConfig":
        """Remember ``mem_layout`` as made by a factory: editing it later (the seed's idiom
        ``cfg["mem_layout"]["text"]["size"] = N``) switches the session to that hand layout."""
        self._defaults = copy.deepcopy(self["mem_layout"])
        return self

    def layout_mode(self) -> str:
        """'auto' or 'manual': manual when asked for, or when ``mem_layout`` was edited."""
        mode = self.get("layout", "manual")
        if mode not in ("auto", "manual"):
            raise ConfigError(f"cfg['layout'] must be 'auto' or 'manual', got {mode!r}")
        if mode == "auto" and self._defaults is not None and self["mem_layout"] != self._defaults:
            return "manual"
        return mode

    def auto_kinds(self) -> Dict[str, List[str]]:
        """For the automatic layout: which memory regions may hold each kind, best first.
        Code goes to executable regions (read-only ones first: flash), everything else to
        writable ones (non-executable first)."""
        regions = [(m.get("name") or f"memory{i}", m.get("attrs", "rwx")) for i, m in enumerate(self["memory"])]

        def having(attr: str, other: str) -> List[str]:   # regions with attr, those without other first
            return sorted((n for n, a in regions if attr in a), key=lambda n: other in dict(regions)[n])

        code, data = having("x", "w"), having("w", "x")
        if not code or not data:
            raise ConfigError("cfg['memory'] needs an executable region (attrs with 'x') and a writable one "
                              "(attrs with 'w') for the automatic layout")
        kinds = {k: code for k in ("text", "rodata")}
        kinds.update({k: data for k in ("data", "bss", "args", "heap", "workspace", "stack")})
        return kinds

    def memory_layout(self):
        """The session's :class:`~utvm_host.layout.MemoryLayout` for the current mode."""
        if self.layout_mode() == "auto":
            regions = [(m.get("name") or f"memory{i}", m["start"], m["size"], 16) for i, m in enumerate(self["memory"])]
            layout = MemoryLayout(regions, kinds=self.auto_kinds())
            for (name, *_), m in zip(regions, self["memory"]):
                if m.get("reserve"):   # e.g. where a Cortex-M core reads its reset vectors
                    layout[name].alloc(m["reserve"], owner="device", what="reserved")
            return layout
        return MemoryLayout([(r.name, r.start, r.size, r.align) for r in self.resolved_layout()])

    @property
    def name(self) -> str:
        return self["name"]

    def runtime_defines(self) -> Dict[str, Any]:
        """The device runtime's build defines: the console (cfg["console"], cfg["console_float"])
        and the table sizes (cfg["runtime"])."""
        console = self.get("console", {"kind": "none"})
        name = CONSOLE_KINDS[console["kind"]]
        defines: Dict[str, Any] = {}
        if console["kind"] == "fd":
            defines[name] = console.get("fd", 63)
        elif name is not None:
            defines[name] = f"0x{console['base']:x}" if "base" in console else None
        if self.get("console_float", False):
            defines["UTVM_CONSOLE_FLOAT"] = None
        tables = self.get("runtime", {})
        for key, (define, default, _, _) in RUNTIME_TABLES.items():
            defines[define] = tables.get(key, default)
        return defines

    @property
    def abi(self) -> Dict[str, Any]:
        return self["abi"]

    @property
    def pointer_size(self) -> int:
        return self["abi"]["pointer_size"]

    @property
    def little_endian(self) -> bool:
        return self["abi"]["endian"] == "little"

    @property
    def transport_kind(self) -> str:
        return self["transport"]["kind"]

    def validate(self) -> "DeviceConfig":
        """Check every entry; raise :class:`ConfigError` naming the first problem. Returns self."""
        _check_keys("the device config", self.keys(), TOP_LEVEL_KEYS)
        for key in ("name", "arch", "abi", "toolchain", "memory", "mem_layout", "transport"):
            if key not in self:
                raise ConfigError(f"the device config lacks {key!r} ({TOP_LEVEL_KEYS[key]}); "
                                  "make configs with utvm_host.devices")
        self._check_console()
        self._check_runtime_tables()
        _check_keys("cfg['abi']", self["abi"].keys(), ABI_KEYS)
        _check_keys("cfg['toolchain']", self["toolchain"].keys(), TOOLCHAIN_KEYS)
        if self["abi"].get("endian") not in ("little", "big"):
            raise ConfigError(f"cfg['abi']['endian'] must be 'little' or 'big', got {self['abi'].get('endian')!r}")
        if self["abi"].get("pointer_size") not in (4, 8):
            raise ConfigError(f"cfg['abi']['pointer_size'] must be 4 or 8, got {self['abi'].get('pointer_size')!r}")
        timeout = self.get("timeout", 10.0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"cfg['timeout'] must be a positive number of seconds, got {timeout!r}")
        self._check_memory()
        self.resolved_layout()
        return self

    def _check_console(self) -> None:
        console = self.get("console", {"kind": "none"})
        if not isinstance(console, dict) or console.get("kind") not in CONSOLE_KINDS:
            raise ConfigError(f"cfg['console'] must be {{'kind': one of {', '.join(CONSOLE_KINDS)}}}, got {console!r}")
        if console["kind"] in ("ns16550", "cmsdk-uart") and not isinstance(console.get("base"), int):
            raise ConfigError(f"cfg['console'] of kind {console['kind']!r} needs 'base', the UART's address")
        if not isinstance(self.get("console_float", False), bool):
            raise ConfigError(f"cfg['console_float'] must be True or False, got {self['console_float']!r}")

    def _check_runtime_tables(self) -> None:
        tables = self.get("runtime", {})
        if not isinstance(tables, dict):
            raise ConfigError(f"cfg['runtime'] must be a dict like {{'tasks': 64}}, got {tables!r}")
        _check_keys("cfg['runtime']", tables.keys(), tuple(RUNTIME_TABLES))
        for key, (_, _, low, high) in RUNTIME_TABLES.items():
            if key in tables:
                value = _check_int(f"cfg['runtime'][{key!r}]", tables[key], minimum=low)
                if value > high:
                    raise ConfigError(f"cfg['runtime'][{key!r}] = {value} is more than {high}, the largest the "
                                      "runtime supports")

    def _check_memory(self) -> None:
        memory = self["memory"]
        if not isinstance(memory, list) or not memory:
            raise ConfigError("cfg['memory'] must be a non-empty list of {name, start, size, attrs}")
        spans = []
        for i, region in enumerate(memory):
            where = f"cfg['memory'][{i}]"
            if not isinstance(region, dict):
                raise ConfigError(f"{where} must be a dict with keys {', '.join(MEMORY_KEYS)}")
            _check_keys(where, region.keys(), MEMORY_KEYS)
            start = _check_int(f"{where}['start']", region.get("start"))
            size = _check_int(f"{where}['size']", region.get("size"), minimum=1)
            spans.append((start, start + size, region.get("name", f"memory{i}")))
        spans.sort()
        for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
            if s1 < e0:
                raise ConfigError(f"memory regions {n0!r} (0x{s0:x}-0x{e0:x}) and {n1!r} (0x{s1:x}-0x{e1:x}) overlap")

    def resolved_layout(self) -> List[RegionSpec]:
        """The section regions with their starts filled in, in layout order.

        Raises :class:`ConfigError` for an unknown section, a missing one, a size <= 0, an
        unaligned start, a section outside the device's memory, or two sections that overlap.
        """
        layout = self["mem_layout"]
        if not isinstance(layout, dict):
            raise ConfigError("cfg['mem_layout'] must be a dict: section kind -> {'size': bytes}")
        for name in layout:
            if name not in SECTION_KINDS:
                raise ConfigError(f"unknown section {name!r} in cfg['mem_layout']; known sections: "
                                  + ", ".join(SECTION_KINDS))
        for name in SECTION_KINDS:
            if name not in layout:
                raise ConfigError(f"cfg['mem_layout'] lacks section {name!r}; "
                                  f"add cfg['mem_layout'][{name!r}] = {{'size': BYTES}}")
        memory = sorted((m["start"], m["start"] + m["size"], m.get("name", "")) for m in self["memory"])
        cursor = memory[0][0]
        specs: List[RegionSpec] = []
        for name, entry in layout.items():
            specs.append(_section_spec(name, entry, cursor, memory))
            cursor = specs[-1].end
        ordered = sorted(specs, key=lambda r: r.start)
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end:
                raise ConfigError(f"sections {a.name!r} (0x{a.start:x}-0x{a.end:x}) and {b.name!r} "
                                  f"(0x{b.start:x}-0x{b.end:x}) overlap; change their 'start' or 'size'")
        return specs


def _section_spec(name: str, entry: Any, cursor: int, memory: List[Tuple[int, int, str]]) -> RegionSpec:
    """One cfg['mem_layout'] section checked, placed at its start or the next aligned address
    after ``cursor``, and inside one of the device's ``memory`` spans (start, end, name)."""
    where = f"cfg['mem_layout'][{name!r}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a dict like {{'size': 4096}}, got {entry!r}")
    _check_keys(where, entry.keys(), SECTION_KEYS)
    if "size" not in entry:
        raise ConfigError(f"{where} lacks 'size'")
    size = _check_int(f"{where}['size']", entry["size"])
    if size == 0:
        raise ConfigError(f"{where}['size'] is 0; every section needs room: give it a size > 0")
    align = _check_int(f"{where}['align']", entry.get("align", 16), minimum=1)
    if not _is_pow2(align):
        raise ConfigError(f"{where}['align'] must be a power of two, got {align}")
    if "start" in entry and entry["start"] is not None:
        start = _check_int(f"{where}['start']", entry["start"])
        if start % align:
            raise ConfigError(f"{where}['start'] = 0x{start:x} is not aligned to {align} bytes; "
                              f"use 0x{align_up(start, align):x}")
    else:
        start = align_up(cursor, align)
    inside = [m for m in memory if m[0] <= start and start + size <= m[1]]
    if not inside:
        regions = ", ".join(f"{n or 'memory'} 0x{s:x}-0x{e:x}" for s, e, n in memory)
        raise ConfigError(
            f"section {name!r} (0x{start:x}-0x{start + size:x}, {size:,} bytes) lies outside the "
            f"device's memory ({regions}); shrink cfg['mem_layout'] sizes or move its start")
    return RegionSpec(name, start, size, align)
