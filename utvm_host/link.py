"""Place a library at addresses chosen by the section allocator and link it there.

Linking is done by the target's own linker (through the gcc driver, so the right multilib
``libgcc``/``libm`` come along) with ``linker/library.ld.in``. A first placement links once:

1. *estimate*: an upper bound of each output section's size (:class:`SizeEstimator`): the
   object's input sections that the script puts there, each with its worst alignment padding,
   plus every member of the link's archives (``libgcc``/``libc``/``libm``, found through the
   driver's ``-###``) that could define a symbol the object, or such a member, leaves
   undefined -- the archive's own symbol index, the one the linker pulls members by;
2. *place*: allocate the estimates, link at the allocated addresses, check each section came out
   at its block's start and no larger, then give back each block's tail beyond the real size.

Why the estimate bounds the linked size, per target family: the output is the input sections
plus padding (at most ``align - 1`` before each input section: the output section starts at
its largest input alignment, so the padding does not depend on the address) plus what the
linker adds. x86-64 host: nothing that grows a placed section in a static link (GOTPCRELX and
TLS relaxations rewrite instructions in place, the same size). RISC-V: the configs link
``--no-relax`` (sizes are the input's), and relaxation would only delete bytes anyway. Arm
(Thumb) and AArch64 hosts: the linker adds *veneers* for a BL/B.W whose target is out of range
(+-16 MiB on Thumb-2, +-128 MiB on AArch64) or, on Arm, in ARM state; neither occurs while code
and the functions it calls share such a span (the default Cortex-M configs: one code region of
at most 4 MiB, all of it Thumb code), but the estimate cannot prove it for every configuration.
So the check in step 2 is what makes it safe: a section larger than its block (a veneer, a
linker-made ``.got``) or one the estimate said empty frees the blocks and links again at a new
place sized by what that link produced; nothing is written to the device before a link passed
the check.

When the estimate cannot be made (an archive that is not a plain ``ar`` with an index, an input
section the script does not place), does not fit, or the optimistic link fails, the exact
two-pass path runs, with its error messages unchanged: *measure* (link at the regions' start
addresses with unresolved symbols tolerated, read the real sizes and any symbol nobody defines),
then allocate those sizes and link again. The sizes a placed link produced are remembered per
library and set of external names, so plan(), fits() and a later load() reuse them.

Symbols of the device runtime and of libraries loaded earlier reach the linker as absolute
addresses in a generated script of quoted assignments (``"add" = 0x...;``; not ``--defsym``,
which misreads names such as ``add`` or ``beef`` as hex numbers): a library can call the
runtime and other libraries. A link's scripts are deleted once it is done, and a placed
image's ELF when its module is unloaded (:meth:`LinkedImage.discard`), so a session's
folder does not grow over load/unload cycles.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
import shlex
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from .config import DeviceConfig
from .elf import ElfFile, Location
from .elf.reader import _decode_symbols, _read_table
from .errors import BuildError, LayoutError, LinkError
from .layout import Block, MemoryLayout
from .toolchain import LINKER_DIR, Library, Toolchain, check_target

log = logging.getLogger(__name__)

#: Output section -> layout region that holds it.
SECTION_REGIONS = {".text": "text", ".rodata": "rodata", ".data": "data", ".bss": "bss"}
_PLACEHOLDERS = {".text": "@TEXT@", ".rodata": "@RODATA@", ".data": "@DATA@", ".bss": "@BSS@"}
#: Links of one placement before giving up (a link whose sections outgrow their blocks is
#: redone at a new place sized by what it produced: Arm veneers depend on distances).
_PLACE_ATTEMPTS = 3


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
        return self._allocate(layout, self.measure(lib, externs), owner)

    def place(self, lib: Library, owner: str, externs: Mapping[str, int],
              provider: Optional[Mapping[str, str]] = None) -> LinkedImage:
        """Allocate room for ``lib`` in the layout and link it there.

        ``externs`` maps symbols defined elsewhere on the device (runtime, loaded libraries) to
        addresses. Raises :class:`LinkError` for undefined symbols or sections that have no
        region, :class:`~utvm_host.errors.LayoutError` when it does not fit. Nothing stays
        allocated when it raises.

        A library whose sizes are not known yet is placed by its estimate and linked once (see
        the module's docstring); anything unusual takes the exact path (measure, then link).
        """
        check_target(lib, self.cfg)
        own = set(lib.elf().defined_symbols())
        defsyms = {n: a for n, a in externs.items() if n not in own}
        key = (lib.path, frozenset(defsyms))
        if key not in self._measured:
            sizes = self.estimator.estimate(lib, defsyms)
            if sizes is not None:
                try:
                    blocks = self._allocate(self.layout, sizes, owner)
                except LayoutError:   # the bound does not fit; the real sizes may: measure them
                    blocks = None
                if blocks is not None:
                    image = self._link_placed(lib, owner, defsyms, blocks, sizes, key, optimistic=True)
                    if image is not None:
                        return image
        blocks = self.reserve(lib, owner, externs)   # the exact path: measure (cached), allocate
        image = self._link_placed(lib, owner, defsyms, blocks, self._measured[key], key, optimistic=False)
        assert image is not None
        return image

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
            final: Optional[Path] = None
            try:
                addresses = {s: self.layout.regions_for(k)[0].start for s, k in SECTION_REGIONS.items()}
                addresses.update({b.what: b.start for b in blocks})
                self._count += 1
                stem = self.workdir / f"{self._count:03d}_{_safe(owner)}"
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
                        blocks = self._shrink(blocks, real)
                        image = self._image(lib, owner, final, blocks, elf)
                        self._measured[key] = real
                        return image
                    if not placeable or attempt == _PLACE_ATTEMPTS:
                        self._image(lib, owner, final, blocks, elf)   # raises: a section outside its block
                        raise AssertionError("unreachable: _image raises for a section outside its block")
                raise _Retry({s: (max(real.get(s, (0, 1))[0], sizes.get(s, (0, 1))[0]),
                                  max(real.get(s, (0, 1))[1], sizes.get(s, (0, 1))[1]))
                              for s in SECTION_REGIONS})
            except _Retry as retry:
                for block in blocks:
                    self.layout.free(block)
                if final is not None and final.exists():
                    final.unlink()
                if retry.sizes is None:
                    return None
                log.debug("'%s' outgrew its blocks at link %d; linking again at a new place", lib.name, attempt)
                sizes = retry.sizes
                blocks = self._allocate(self.layout, sizes, owner)   # raises with nothing allocated
            except BaseException:
                for block in blocks:
                    self.layout.free(block)
                if final is not None and final.exists():
                    final.unlink()
                raise
        raise AssertionError("unreachable")

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


def _script_rules(template: str) -> List[Tuple[Optional[str], List[str]]]:
    """``[(output section or None for /DISCARD/, [input section patterns])]`` of the library
    script, in its order (the linker puts an input section in the first rule that matches)."""
    rules: List[Tuple[Optional[str], List[str]]] = []
    body = re.sub(r"/\*.*?\*/", " ", template, flags=re.S)
    for m in re.finditer(r"(/DISCARD/|\.[\w.]+)[^:{}]*:\s*\{(.*?)\n\s*\}", body, flags=re.S):
        name = None if m.group(1) == "/DISCARD/" else m.group(1)
        patterns: List[str] = []
        for group in re.findall(r"\*\(([^)]*)\)", m.group(2)):
            patterns += group.split()
        rules.append((name, patterns))
    return rules


class _Member:
    """What one archive member can add to a link: the symbols it defines and leaves
    undefined, and its worst-case bytes per output section."""
    __slots__ = ("defines", "needs", "sizes", "orphans")

    def __init__(self, defines: FrozenSet[str], needs: FrozenSet[str], sizes: Dict[str, Tuple[int, int]],
                 orphans: bool):
        self.defines = defines
        self.needs = needs
        self.sizes = sizes
        self.orphans = orphans   # an allocatable section the script places nowhere (.tbss, ...)


class _Archive:
    """A GNU ``ar`` archive read the way the linker reads it: its symbol index names the
    members that define each symbol (the linker pulls members by this index only); members
    are parsed when first asked for."""

    _cache: Dict[tuple, "_Archive"] = {}

    def __init__(self, path: str, index: Dict[str, List[int]]):
        self.path = path
        self.index = index
        self._members: Dict[int, Optional[_Member]] = {}

    @classmethod
    def open(cls, path: str) -> Optional["_Archive"]:
        """The archive at ``path``, or None when it is not a GNU archive with a symbol index."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_size, st.st_mtime_ns)
        if key in cls._cache:
            return cls._cache[key]
        archive = None
        try:
            with open(path, "rb") as f:
                if f.read(8) == b"!<arch>\n":
                    head = f.read(60)
                    name, size = head[:16].rstrip(), int(head[48:58])
                    if name in (b"/", b"/SYM64/"):
                        archive = cls(path, _armap(f.read(size), 8 if name == b"/SYM64/" else 4))
        except (OSError, ValueError, struct.error):
            archive = None
        cls._cache[key] = archive
        return archive

    def member(self, offset: int, classify) -> Optional[_Member]:
        """The member whose header is at ``offset``, or None when it cannot be read."""
        if offset not in self._members:
            self._members[offset] = _read_member(self.path, offset, classify)
        return self._members[offset]


def _armap(data: bytes, width: int) -> Dict[str, List[int]]:
    """The GNU archive symbol index: symbol -> offsets of the members defining it."""
    fmt = ">Q" if width == 8 else ">I"
    count = struct.unpack_from(fmt, data, 0)[0]
    offsets = struct.unpack_from(f">{count}{fmt[1]}", data, width)
    names = data[width * (count + 1):].split(b"\0")
    index: Dict[str, List[int]] = {}
    for name, offset in zip(names, offsets):
        index.setdefault(name.decode("utf-8", "replace"), []).append(offset)
    return index


def _read_member(path: str, offset: int, classify) -> Optional[_Member]:
    """Parse the ELF object at ``offset`` of archive ``path``: defined/undefined global
    symbols and the worst-case ``(bytes, alignment)`` it adds to each output section
    (each input section's size plus its alignment minus one; COMMON symbols in ``.bss``)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            head = f.read(60)
            blob = f.read(int(head[48:58]))
    except (OSError, ValueError):
        return None
    table = _read_table(blob)
    if table is None:
        return None
    sizes: Dict[str, Tuple[int, int]] = {}
    orphans = False
    symtab = None
    for name_off, sh_type, flags, _addr, sh_offset, size, link, _info, align, _ in table.headers[1:]:
        if sh_type == 2:   # SHT_SYMTAB
            symtab = (sh_offset, size, link)
        if not flags & 2 or not size:   # SHF_ALLOC
            continue
        end = table.names.find(b"\0", name_off)
        out = classify(table.names[name_off:end].decode("utf-8", "replace"))
        if out:
            _add(sizes, out, size, align)
        elif out is None:
            orphans = True
    defines: Set[str] = set()
    needs: Set[str] = set()
    if symtab is not None:
        sym_off, sym_size, link = symtab
        str_off, str_size = table.headers[link][4], table.headers[link][5]
        symbols = _decode_symbols(blob[sym_off:sym_off + sym_size], blob[str_off:str_off + str_size],
                                  64 if table.wide else 32, table.order == "<", lambda i: None)
        for sym in symbols:
            if not sym.name or sym.bind not in ("GLOBAL", "WEAK"):
                continue
            if sym.section_index == "SHN_UNDEF":
                needs.add(sym.name)
            else:
                defines.add(sym.name)
                if sym.section_index == "SHN_COMMON":
                    _add(sizes, ".bss", sym.size, max(sym.value, 1))
    return _Member(frozenset(defines), frozenset(needs - defines), sizes, orphans)


def _add(sizes: Dict[str, Tuple[int, int]], section: str, size: int, align: int) -> None:
    """Add an input of ``size`` bytes aligned ``align`` to ``sizes[section]``, with the most
    padding its alignment can cost (``align - 1``)."""
    align = max(align, 1)
    total, most = sizes.get(section, (0, 1))
    sizes[section] = (total + size + align - 1, max(most, align))


class SizeEstimator:
    """Upper bounds of a library's output sections before any link (see the module docstring).

    ``estimate(lib, defsyms)`` -> ``{section: (bytes, alignment)}`` or None when no sound bound
    can be made. The archives of a toolchain's link are found once (``gcc -###``) and read
    lazily (only the index and the members a library could pull); estimates are cached per
    library and set of external names.
    """

    _inputs: Dict[tuple, Optional[List[str]]] = {}

    def __init__(self, toolchain: Toolchain, template: str):
        self.toolchain = toolchain
        self.rules = _script_rules(template)
        #: Symbols the script or the linker itself defines.
        self.provided = set(re.findall(r"PROVIDE(?:_HIDDEN)?\s*\(\s*([^\s=)]+)\s*=", template))
        self.provided.add("_GLOBAL_OFFSET_TABLE_")
        self._classes: Dict[str, Optional[str]] = {}
        self._cache: Dict[tuple, Optional[Dict[str, Tuple[int, int]]]] = {}

    def classify(self, name: str) -> Optional[str]:
        """The output section of input section ``name``: ``.text`` ..., ``""`` when discarded,
        None when the script places it nowhere (the link would make an orphan section)."""
        if name not in self._classes:
            out: Optional[str] = None
            for section, patterns in self.rules:
                if any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
                    out = section or ""
                    break
            self._classes[name] = out
        return self._classes[name]

    def archives(self) -> Optional[List[_Archive]]:
        """The archives the link searches, in order (the driver's ``-###`` resolved against its
        ``-L`` folders), or None when one cannot be found or read as an indexed archive."""
        tc = self.toolchain
        key = (tc.cc_name, tuple(tc.ldflags), tuple(tc.libs))
        if key not in self._inputs:
            self._inputs[key] = _link_archives(tc)
        paths = self._inputs[key]
        if paths is None:
            return None
        archives = [_Archive.open(p) for p in paths]
        return None if any(a is None for a in archives) else archives   # type: ignore[misc]

    def estimate(self, lib: Library, defsyms: Mapping[str, int]) -> Optional[Dict[str, Tuple[int, int]]]:
        key = (lib.path, frozenset(defsyms))
        if key not in self._cache:
            try:
                self._cache[key] = self._estimate(lib, defsyms)
            except (OSError, BuildError, ValueError, struct.error) as exc:   # no bound: the exact path
                log.debug("no size estimate for %s: %s", lib.name, exc)
                self._cache[key] = None
        found = self._cache[key]
        return dict(found) if found is not None else None

    def _estimate(self, lib: Library, defsyms: Mapping[str, int]) -> Optional[Dict[str, Tuple[int, int]]]:
        elf = lib.elf()
        sizes: Dict[str, Tuple[int, int]] = {}
        for sec in elf.sections:
            if not sec.alloc or not sec.size:
                continue
            out = self.classify(sec.name)
            if out is None:
                return None   # an orphan section: the exact path names it
            if out:
                _add(sizes, out, sec.size, sec.align)
        defined = set(defsyms)
        for sym in elf.iter_symbols():
            if sym.name and sym.bind in ("GLOBAL", "WEAK") and sym.defined:
                defined.add(sym.name)
                if sym.section_index == "SHN_COMMON":
                    _add(sizes, ".bss", sym.size, max(sym.value, 1))
        wanted = [n for n in elf.undefined_symbols() if n not in defined]
        if wanted:
            archives = self.archives()
            if archives is None:
                return None
            # A strong reference nothing can define fails the link: measure, which names it
            # (one link, as before, instead of a failed link and then the measuring one).
            strong = {s.name for s in elf.iter_symbols() if s.bind == "GLOBAL" and not s.defined}
            if any(n in strong and n not in self.provided and not any(n in a.index for a in archives)
                   for n in wanted):
                return None
            # Every member any archive's index offers for a symbol still undefined, and what
            # those need in turn: a superset of what the linker pulls in any search order.
            taken: Set[Tuple[int, int]] = set()
            seen: Set[str] = set(wanted)
            while wanted:
                name = wanted.pop()
                for i, archive in enumerate(archives):
                    for offset in archive.index.get(name, ()):
                        if (i, offset) in taken:
                            continue
                        taken.add((i, offset))
                        member = archive.member(offset, self.classify)
                        if member is None or member.orphans:   # the link likely fails: measure says why
                            return None
                        for section, (size, align) in member.sizes.items():
                            total, most = sizes.get(section, (0, 1))
                            sizes[section] = (total + size, max(most, align))
                        for need in member.needs:
                            if need not in defined and need not in seen:
                                seen.add(need)
                                wanted.append(need)
        return sizes


def _link_archives(tc: Toolchain) -> Optional[List[str]]:
    """The archives the driver hands the linker for a library link (``-l`` resolved in the
    ``-L`` folders, ``lib<name>.a``: the link is static), or None when that cannot be told."""
    cmd = [tc.cc, "-###", "-nostdlib", "-nostartfiles", "-static"] + tc.ldflags
    cmd += ["-Wl,--no-gc-sections", "utvm-estimate.o"] + tc.libs + ["-o", "utvm-estimate.elf"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    line = next((ln for ln in reversed(proc.stderr.splitlines())
                 if ln.startswith(" ") and "utvm-estimate.o" in ln), None)
    if line is None:
        return None
    args = shlex.split(line)
    dirs: List[str] = []
    names: List[str] = []
    archives: List[str] = []
    i = 1
    while i < len(args):
        arg = args[i]
        if arg in ("-L", "-l") and i + 1 < len(args):
            arg, i = arg + args[i + 1], i + 1
        if arg.startswith("-L"):
            dirs.append(arg[2:])
        elif arg.startswith("-l"):
            names.append(arg[2:])
        elif arg.endswith(".a") and not arg.startswith("-"):
            archives.append(arg)
        i += 1
    for name in names:
        found = next((os.path.join(d, f"lib{name}.a") for d in dirs
                      if os.path.isfile(os.path.join(d, f"lib{name}.a"))), None)
        if found is None:
            return None
        archives.append(found)
    return archives


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
