"""The :class:`Linker`: allocate a library's sections in the layout and link it there (see
:mod:`utvm_host.link` for the steps and why the first link is usually the only one)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from ..config import DeviceConfig
from ..elf import ElfFile
from ..errors import BuildError, LayoutError, LinkError
from ..layout import Block, MemoryLayout
from ..toolchain import LINKER_DIR, Library, Toolchain, check_target
from .estimate import SizeEstimator
from .image import LinkedImage

log = logging.getLogger("utvm_host.link")

#: Output section -> layout region that holds it.
SECTION_REGIONS = {".text": "text", ".rodata": "rodata", ".data": "data", ".bss": "bss"}
_PLACEHOLDERS = {".text": "@TEXT@", ".rodata": "@RODATA@", ".data": "@DATA@", ".bss": "@BSS@"}
#: Links of one placement before giving up (a link whose sections outgrow their blocks is
#: redone at a new place sized by what it produced: Arm veneers depend on distances).
_PLACE_ATTEMPTS = 3


class Linker:
    """Links libraries for one session: ``place(lib, owner, externs)`` -> :class:`LinkedImage`."""

    def __init__(self, cfg: DeviceConfig, layout: MemoryLayout, workdir: Path):
        self.cfg = cfg
        self.toolchain = Toolchain(cfg)
        self.layout = layout
        self.workdir = Path(workdir)
        self.template = (LINKER_DIR / "library.ld.in").read_text()
        self._count = 0
        #: Real (size, align) per output section, by (library path, external names): from a
        #: measuring link or a placed one.
        self._measured: Dict[tuple, Dict[str, Tuple[int, int]]] = {}
        self.estimator = SizeEstimator(self.toolchain, self.template)

    def _script(self, addresses: Mapping[str, int], path: Path) -> Path:
        text = self.template
        for section, placeholder in _PLACEHOLDERS.items():
            text = text.replace(placeholder, f"0x{addresses[section]:x}")
        path.write_text(text)
        return path

    def _link(self, lib: Library, script: Path, out: Path, defsyms: Mapping[str, int], measure: bool) -> None:
        flags = ["-Wl,-e,0", "-Wl,--build-id=none", "-Wl,--no-gc-sections"]
        if measure:  # keep unresolved symbols in the output's symbol table so we can name them;
            # sections sit at their regions' starts and may overlap while only measuring
            flags += ["-Wl,-q", "-Wl,--warn-unresolved-symbols", "-Wl,--no-check-sections"]
        symbols = script.with_name(script.name[:-len(".ld")] + ".syms.ld")
        try:
            symbols.write_text(_symbol_script(defsyms))
            # the symbols: an implicit linker script of assignments only
            cmd = self.toolchain.link_command([lib.path, symbols], out, script=script, flags=flags)
            self.toolchain.run(cmd, f"linking '{lib.name}' for {self.cfg['arch']}")
        finally:   # inputs of this link only: the session folder must not grow with every load
            for path in (script, symbols):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def measure(self, lib: Library, externs: Mapping[str, int]) -> Dict[str, Tuple[int, int]]:
        """Link ``lib`` once where it would go to learn the real size of each output section.

        Parameters
        ----------
        lib : Library
            The library to measure.
        externs : mapping of str to int
            Symbols defined elsewhere on the device and their addresses.

        Returns
        -------
        dict
            ``{section: (size, align)}`` (helpers from libgcc included), cached per library
            and set of external names.

        Raises
        ------
        LinkError
            For undefined symbols or sections utvm-host cannot place.
        """
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
            sizes = _placeable_sizes(lib, elf)
        if missing:
            raise _undefined_error(lib, missing)
        self._measured[key] = sizes
        return sizes

    def reserve(self, lib: Library, owner: str, externs: Mapping[str, int],
                layout: Optional[MemoryLayout] = None) -> List[Block]:
        """Allocate blocks for ``lib``'s sections (in ``layout``, default the session's) without
        linking: the fit check behind plan() and fits(). Nothing stays allocated on error."""
        layout = layout or self.layout
        return self._allocate(layout, self.measure(lib, externs), owner)

    def place(self, lib: Library, owner: str, externs: Mapping[str, int]) -> LinkedImage:
        """Allocate room for ``lib`` in the layout and link it there.

        A library whose sizes are not known yet is placed by its estimate and linked once (see
        :mod:`utvm_host.link`); anything unusual takes the exact path (measure, then link).

        Parameters
        ----------
        lib : Library
            The library to place.
        owner : str
            Owner of its blocks in the layout (and the stem of its linked ELF's name).
        externs : mapping of str to int
            Symbols defined elsewhere on the device (runtime, loaded libraries) and their
            addresses.

        Returns
        -------
        LinkedImage

        Raises
        ------
        LinkError
            For undefined symbols or sections that have no region.
        ~utvm_host.errors.LayoutError
            When it does not fit. Nothing stays allocated when it raises.
        """
        check_target(lib, self.cfg)
        own = set(lib.elf().defined_symbols())
        defsyms = {n: a for n, a in externs.items() if n not in own}
        key = (lib.path, frozenset(defsyms))
        if key not in self._measured:
            image = self._place_by_estimate(lib, owner, defsyms, key)
            if image is not None:
                return image
        blocks = self.reserve(lib, owner, externs)   # the exact path: measure (cached), allocate
        image = self._link_placed(lib, owner, defsyms, blocks, self._measured[key], key, optimistic=False)
        assert image is not None
        return image

    def _place_by_estimate(self, lib: Library, owner: str, defsyms: Mapping[str, int],
                           key: tuple) -> Optional[LinkedImage]:
        """Allocate ``lib``'s estimated sizes and link once there; None (nothing allocated)
        when there is no estimate, it does not fit or the optimistic link did not pass."""
        sizes = self.estimator.estimate(lib, defsyms)
        if sizes is None:
            return None
        try:
            blocks = self._allocate(self.layout, sizes, owner)
        except LayoutError:   # the bound does not fit; the real sizes may: measure them
            return None
        return self._link_placed(lib, owner, defsyms, blocks, sizes, key, optimistic=True)

    def _allocate(self, layout: MemoryLayout, sizes: Mapping[str, Tuple[int, int]], owner: str) -> List[Block]:
        """A block per non-empty section of ``sizes``; nothing stays allocated on error."""
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

    def _link_placed(self, lib: Library, owner: str, defsyms: Mapping[str, int], blocks: List[Block],
                     sizes: Mapping[str, Tuple[int, int]], key: tuple, optimistic: bool) -> Optional[LinkedImage]:
        """Link ``lib`` at ``blocks`` (allocated for ``sizes``), shrink them to what came out and
        return the image. A link whose sections outgrow their blocks is redone at a new place
        sized by what it produced (up to :data:`_PLACE_ATTEMPTS` links in all). ``optimistic``
        (blocks from the estimate): a failed link, an undefined symbol or a section the script
        does not place returns None with nothing allocated (the exact path then says why).
        Otherwise errors raise, with nothing allocated."""
        sizes = dict(sizes)
        for attempt in range(1, _PLACE_ATTEMPTS + 1):
            self._count += 1
            stem = self.workdir / f"{self._count:03d}_{_safe(owner)}"
            try:
                return self._link_at(lib, owner, defsyms, blocks, sizes, key, stem, optimistic,
                                     last=attempt == _PLACE_ATTEMPTS)
            except _Retry as retry:
                self._discard(blocks, Path(f"{stem}.elf"))
                if retry.sizes is None:
                    return None
                log.debug("'%s' outgrew its blocks at link %d; linking again at a new place", lib.name, attempt)
                sizes = retry.sizes
                blocks = self._allocate(self.layout, sizes, owner)   # raises with nothing allocated
            except BaseException:
                self._discard(blocks, Path(f"{stem}.elf"))
                raise
        raise AssertionError("unreachable")

    def _link_at(self, lib: Library, owner: str, defsyms: Mapping[str, int], blocks: List[Block],
                 sizes: Mapping[str, Tuple[int, int]], key: tuple, stem: Path, optimistic: bool,
                 last: bool) -> LinkedImage:
        """One link of ``lib`` at ``blocks`` into ``stem.elf``: the image, with ``blocks`` shrunk
        in place to what came out. Raises :class:`_Retry` for a link to redo (new sizes, or
        the exact path when ``optimistic``) and the link's error otherwise; the caller frees."""
        addresses = {s: self.layout.regions_for(k)[0].start for s, k in SECTION_REGIONS.items()}
        addresses.update({b.what: b.start for b in blocks})
        final = Path(f"{stem}.elf")
        try:
            self._link(lib, self._script(addresses, Path(f"{stem}.ld")), final, defsyms, measure=False)
        except BuildError:
            if optimistic:
                raise _Retry(None) from None
            raise
        with ElfFile(final) as elf:
            real, fits, placeable = self._check(elf, blocks, optimistic)
            if fits:
                blocks[:] = self._shrink(blocks, real)
                image = self._image(lib, owner, final, list(blocks), elf)
                self._measured[key] = real
                return image
            if not placeable or last:
                self._image(lib, owner, final, blocks, elf)   # raises: a section outside its block
                raise AssertionError("unreachable: _image raises for a section outside its block")
        raise _Retry({s: (max(real.get(s, (0, 1))[0], sizes.get(s, (0, 1))[0]),
                          max(real.get(s, (0, 1))[1], sizes.get(s, (0, 1))[1]))
                      for s in SECTION_REGIONS})

    def _discard(self, blocks: List[Block], elf: Path) -> None:
        """Free ``blocks`` and delete a placed link's ELF (a link to redo or one that failed)."""
        for block in blocks:
            self.layout.free(block)
        if elf.exists():
            elf.unlink()

    def _check(self, elf: ElfFile, blocks: List[Block],
               optimistic: bool) -> Tuple[Dict[str, Tuple[int, int]], bool, bool]:
        """The linked ``(size, align)`` of each output section; whether every non-empty one lies
        at its block's start and within it; whether every allocatable section is one utvm-host
        places. With ``optimistic``, raises :class:`_Retry` (exact path) for what the measuring
        link reports as errors: an undefined GLOBAL symbol or a section the script does not place."""
        by_section = {b.what: b for b in blocks}
        real: Dict[str, Tuple[int, int]] = {}
        fits = placeable = True
        for sec in elf.sections:
            if not sec.alloc:
                continue
            if sec.name not in SECTION_REGIONS:
                if optimistic:
                    raise _Retry(None)
                fits = placeable = False   # _image names it
                continue
            real[sec.name] = (sec.size, sec.align)
            if sec.size == 0:
                continue
            block = by_section.get(sec.name)
            if block is None or sec.addr != block.start or sec.size > block.size:
                fits = False
        if optimistic and any((sym := elf.get_symbol(n)) is not None and sym.bind == "GLOBAL"
                              for n in elf.undefined_symbols()):
            raise _Retry(None)
        return real, fits, placeable

    def _shrink(self, blocks: List[Block], real: Mapping[str, Tuple[int, int]]) -> List[Block]:
        """Each block cut to its section's linked size (the tail goes back to the free space);
        a block whose section came out empty is freed."""
        kept: List[Block] = []
        for block in blocks:
            size = real.get(block.what, (0, 1))[0]
            if size:
                kept.append(self.layout.shrink(block, size))
            else:
                self.layout.free(block)
        return kept

    def _image(self, lib: Library, owner: str, path: Path, blocks: List[Block], elf: ElfFile) -> LinkedImage:
        segments: List[Tuple[int, bytes]] = []
        zero: List[Tuple[int, int]] = []
        by_section = {b.what: b for b in blocks}
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


class _Retry(Exception):
    """A placed link to redo: at a new place sized ``sizes``, or (None) by the exact path."""

    def __init__(self, sizes: Optional[Dict[str, Tuple[int, int]]]):
        super().__init__("retry")
        self.sizes = sizes


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


def _placeable_sizes(lib: Library, elf: ElfFile) -> Dict[str, Tuple[int, int]]:
    """``(size, align)`` of each allocatable output section of a linked ``elf``; a section
    utvm-host does not place raises :class:`LinkError`."""
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
    return sizes


def _undefined_error(lib: Library, missing: List[str]) -> LinkError:
    """The error for symbols nobody defines, naming them."""
    return LinkError(
        f"cannot load '{lib.name}': undefined symbol{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)} (defined neither by the library, the device runtime, the C "
        "library nor any loaded library); add the source that defines "
        f"{'them' if len(missing) > 1 else 'it'} to build(), or load the library that "
        "exports it first", undefined=missing)
