"""Place a library at addresses chosen by the section allocator and link it there.

Linking is done by the target's own linker (through the gcc driver, so the right multilib
``libgcc``/``libm`` come along) with ``linker/library.ld.in``. It takes two passes:

1. *measure*: link at the regions' start addresses with unresolved symbols tolerated, read
   the output with pyelftools: the real size and alignment of ``.text``, ``.rodata``,
   ``.data`` and ``.bss`` (including helpers pulled from libgcc) and any symbol nobody defines;
2. *place*: allocate those sizes in the ``text``/``rodata``/``data``/``bss`` regions and link
   again at the allocated addresses. ``--no-relax`` (in the RISC-V configs) keeps sizes equal.

Symbols of the device runtime and of libraries loaded earlier reach the linker as absolute
addresses in a generated script of quoted assignments (``"add" = 0x...;``; not ``--defsym``,
which misreads names such as ``add`` or ``beef`` as hex numbers): a library can call the
runtime and other libraries. A link's scripts are deleted once it is done, and a placed
image's ELF when its module is unloaded (:meth:`LinkedImage.discard`), so a session's
folder does not grow over load/unload cycles.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from .config import DeviceConfig
from .elf import ElfFile, Location
from .errors import LinkError
from .layout import Block, MemoryLayout
from .toolchain import LINKER_DIR, Library, Toolchain, check_target

log = logging.getLogger(__name__)

#: Output section -> layout region that holds it.
SECTION_REGIONS = {".text": "text", ".rodata": "rodata", ".data": "data", ".bss": "bss"}
_PLACEHOLDERS = {".text": "@TEXT@", ".rodata": "@RODATA@", ".data": "@DATA@", ".bss": "@BSS@"}


@dataclass
class LinkedImage:
    """A library linked at its placed addresses: what to write to the device and its symbols.

    ``segments`` lists ``(address, bytes)`` to write; ``zero_fill`` lists ``(address, size)``
    of ``.bss``; ``symbols`` maps every defined global symbol to its address.
    """
    owner: str
    elf_path: str
    blocks: List[Block]
    segments: List[Tuple[int, bytes]]
    zero_fill: List[Tuple[int, int]]
    symbols: Dict[str, int]
    _elf: Optional[ElfFile] = field(default=None, repr=False)

    def contains(self, addr: int) -> bool:
        return any(b.start <= addr < b.end for b in self.blocks)

    def symbolize(self, addr: int) -> Optional[Location]:
        """``function+offset (file:line)`` for an address in this image, or None."""
        if self._elf is None:
            self._elf = ElfFile(self.elf_path)
        return self._elf.symbolize(addr)

    def close(self) -> None:
        if self._elf is not None:
            self._elf.close()
            self._elf = None

    def discard(self) -> None:
        """Close the image and delete its linked ELF (the module was unloaded: nothing will
        symbolize or debug it again). Safe to call twice."""
        self.close()
        try:
            os.unlink(self.elf_path)
        except OSError:
            pass

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blocks)


class Linker:
    """Links libraries for one session: ``place(lib, owner, externs)`` -> :class:`LinkedImage`."""

    def __init__(self, cfg: DeviceConfig, layout: MemoryLayout, workdir: Path):
        self.cfg = cfg
        self.toolchain = Toolchain(cfg)
        self.layout = layout
        self.workdir = Path(workdir)
        self.template = (LINKER_DIR / "library.ld.in").read_text()
        self._count = 0
        self._measured: Dict[tuple, Dict[str, Tuple[int, int]]] = {}

    def _script(self, addresses: Mapping[str, int], path: Path) -> Path:
        text = self.template
        for section, placeholder in _PLACEHOLDERS.items():
            text = text.replace(placeholder, f"0x{addresses[section]:x}")
        path.write_text(text)
        return path

    def _link(self, lib: Library, script: Path, out: Path, defsyms: Mapping[str, int], measure: bool) -> None:
        tc = self.toolchain
        cmd = [tc.cc, "-nostdlib", "-nostartfiles", "-static"] + tc.ldflags
        cmd += ["-T", str(script), "-Wl,-e,0", "-Wl,--build-id=none", "-Wl,--no-gc-sections"]
        if measure:  # keep unresolved symbols in the output's symbol table so we can name them;
            # sections sit at their regions' starts and may overlap while only measuring
            cmd += ["-Wl,-q", "-Wl,--warn-unresolved-symbols", "-Wl,--no-check-sections"]
        symbols = script.with_name(script.name[:-len(".ld")] + ".syms.ld")
        symbols.write_text(_symbol_script(defsyms))
        cmd += [lib.path, str(symbols)]   # an implicit linker script: only symbol assignments
        cmd += tc.libs + ["-o", str(out)]
        try:
            tc.run(cmd, f"linking '{lib.name}' for {self.cfg['arch']}")
        finally:   # inputs of this link only: the session folder must not grow with every load
            for path in (script, symbols):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def measure(self, lib: Library, externs: Mapping[str, int]) -> Dict[str, Tuple[int, int]]:
        """Link ``lib`` once where it would go to learn the real ``(size, align)`` of each output
        section (helpers from libgcc included). Cached per library and set of external names.
        Raises :class:`LinkError` for undefined symbols or sections utvm-host cannot place."""
        check_target(lib, self.cfg)
        own = set(lib.elf().defined_symbols())
        defsyms = {n: a for n, a in externs.items() if n not in own}
        key = (lib.path, frozenset(defsyms))
        cached = self._measured.get(key)
        if cached is not None:
            return cached
        self._count += 1
        stem = self.workdir / f"{self._count:03d}_{_safe(lib.name)}"
        starts = {s: self.layout.regions_for(k)[0].start for s, k in SECTION_REGIONS.items()}
        measured = Path(f"{stem}.measure.elf")
        try:
            self._link(lib, self._script(starts, Path(f"{stem}.measure.ld")), measured, defsyms, measure=True)
            elf = ElfFile(measured)
        finally:
            if measured.exists():
                os.unlink(measured)
        with elf:
            missing = [n for n in elf.undefined_symbols()
                       if (s := elf.get_symbol(n)) is not None and s.bind == "GLOBAL"]
            sizes: Dict[str, Tuple[int, int]] = {}
            for sec in elf.sections:
                if not sec.alloc:
                    continue
                if sec.name not in SECTION_REGIONS:
                    raise LinkError(f"cannot load '{lib.name}': it has an allocatable section {sec.name!r} "
                                    f"({sec.size:,} bytes) that utvm-host does not place; only .text, "
                                    ".rodata, .data and .bss are supported (no thread-local storage or "
                                    "constructors)")
                sizes[sec.name] = (sec.size, sec.align)
        if missing:
            raise LinkError(
                f"cannot load '{lib.name}': undefined symbol{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (defined neither by the library, the device runtime, the C "
                "library nor any loaded library); add the source that defines "
                f"{'them' if len(missing) > 1 else 'it'} to build(), or load the library that "
                "exports it first", undefined=missing)
        self._measured[key] = sizes
        return sizes

    def reserve(self, lib: Library, owner: str, externs: Mapping[str, int],
                layout: Optional[MemoryLayout] = None) -> List[Block]:
        """Allocate blocks for ``lib``'s sections (in ``layout``, default the session's) without
        linking: the fit check behind plan() and fits(). Nothing stays allocated on error."""
        layout = layout or self.layout
        sizes = self.measure(lib, externs)
        blocks: List[Block] = []
        try:
            for section, kind in SECTION_REGIONS.items():
                size, align = sizes.get(section, (0, 1))
                if size:
                    blocks.append(layout.place(kind, size, owner=owner, what=section, align=max(align, 1),
                                               hint="or unload a library (sess.memory_map() shows what is loaded)"))
        except BaseException:
            for block in blocks:
                layout.free(block)
            raise
        return blocks

    def place(self, lib: Library, owner: str, externs: Mapping[str, int],
              provider: Optional[Mapping[str, str]] = None) -> LinkedImage:
        """Allocate room for ``lib`` in the layout and link it there.

        ``externs`` maps symbols defined elsewhere on the device (runtime, loaded libraries) to
        addresses. Raises :class:`LinkError` for undefined symbols or sections that have no
        region, :class:`~utvm_host.errors.LayoutError` when it does not fit. Nothing stays
        allocated when it raises.
        """
        own = set(lib.elf().defined_symbols())
        defsyms = {n: a for n, a in externs.items() if n not in own}
        blocks = self.reserve(lib, owner, externs)
        final: Optional[Path] = None
        try:
            addresses = {s: self.layout.regions_for(k)[0].start for s, k in SECTION_REGIONS.items()}
            addresses.update({b.what: b.start for b in blocks})
            self._count += 1
            stem = self.workdir / f"{self._count:03d}_{_safe(owner)}"
            final = Path(f"{stem}.elf")
            self._link(lib, self._script(addresses, Path(f"{stem}.ld")), final, defsyms, measure=False)
            image = self._image(lib, owner, final, blocks)
        except BaseException:
            for block in blocks:
                self.layout.free(block)
            if final is not None and final.exists():
                final.unlink()
            raise
        return image

    def _image(self, lib: Library, owner: str, path: Path, blocks: List[Block]) -> LinkedImage:
        segments: List[Tuple[int, bytes]] = []
        zero: List[Tuple[int, int]] = []
        by_section = {b.what: b for b in blocks}
        with ElfFile(path) as elf:
            for sec in elf.sections:
                if not sec.alloc or sec.size == 0:
                    continue
                block = by_section.get(sec.name)
                if block is None or sec.addr != block.start or sec.size > block.size:
                    raise LinkError(f"internal error linking '{lib.name}': section {sec.name} came out at "
                                    f"0x{sec.addr:x} ({sec.size:,} bytes), not in its allocated block "
                                    f"{block}; please report this with the library")
                if sec.type == "SHT_NOBITS":
                    zero.append((sec.addr, sec.size))
                else:
                    segments.append((sec.addr, sec.data()))
            symbols = {name: sym.value for name, sym in elf.defined_symbols().items()
                       if sym.section_index not in ("SHN_ABS", "SHN_UNDEF")}
        return LinkedImage(owner, str(path), blocks, segments, zero, symbols)


def _symbol_script(defsyms: Mapping[str, int]) -> str:
    """Linker-script assignments defining each symbol at its absolute address.

    Names are quoted, so any C identifier works (``add`` or ``beef`` look like hex numbers to
    ``--defsym``, whose expression parser then reports a syntax error). A name the script
    syntax cannot quote (one holding a double quote or a line break: never a C identifier)
    is left out with a debug message; a library that needs it gets an undefined-symbol error.
    """
    lines = ["/* generated by utvm-host: symbols defined elsewhere on the device */"]
    for name, addr in sorted(defsyms.items()):
        if not name or any(c in name for c in '"\\\n\r\0'):
            log.debug("symbol %r cannot be named in a linker script; not offered to the linker", name)
            continue
        lines.append(f'"{name}" = 0x{addr:x};')
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
