"""The ELF reader layer of utvm-host: what the builder, the linker-script writer, the loader
and the fault reporter need to know about an object file or an executable.

Everything is read with pyelftools (never by parsing binutils' text output):

* the header (machine, class, endianness, type, ``e_flags``), sections, ``.symtab`` symbols and
  relocations;
* from DWARF: C signatures of the externally visible functions (:meth:`ElfFile.signatures`),
  struct layouts (:meth:`ElfFile.struct_layout`) and address -> ``function+offset (file:line)``
  (:meth:`ElfFile.symbolize`);
* the bytes a loader must place at a virtual address (:meth:`ElfFile.read`).

Relocatable objects (``ET_REL``) carry DWARF that only makes sense after the relocations aimed
at the ``.debug_*`` sections are applied.  pyelftools 0.33 applies x86/x86-64/ARM ones but
raises ``ELFRelocationError`` for every RISC-V type (``R_RISCV_32``, the ``ADD``/``SUB``/``SET``
pairs that encode code lengths under linker relaxation, ...), so this module applies the
relocations of DWARF sections itself for EM_RISCV, EM_ARM, EM_386 and EM_X86_64 (the types
compilers emit into debug sections), and lets pyelftools do it for any other machine.

The whole file is read into memory when an :class:`ElfFile` is opened: nothing is read from
disk afterwards, so :meth:`Section.data` keeps working after :meth:`ElfFile.close`.
"""
from __future__ import annotations

import bisect
import functools
import io
import logging
import os
import struct
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from elftools.common.exceptions import DWARFError, ELFError, ELFRelocationError
from elftools.elf import enums as _enums
from elftools.construct import ConstructError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.descriptions import describe_reloc_type
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationHandler, RelocationSection
from elftools.elf.sections import Section as ElfSection, SymbolTableSection

from .errors import BuildError

__all__ = ["ElfFile", "CType", "Parameter", "Signature", "Symbol", "Section", "Relocation",
           "Location"]

log = logging.getLogger(__name__)

_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4


@dataclass(frozen=True)
class Section:
    """One section header.  ``align`` is ``sh_addralign`` with 0 reported as 1."""
    name: str
    index: int
    type: str
    addr: int
    size: int
    align: int
    flags: int
    offset: int
    _reader: Optional[Callable[[], bytes]] = field(default=None, repr=False, compare=False)

    @property
    def alloc(self) -> bool:
        return bool(self.flags & _SHF_ALLOC)

    @property
    def write(self) -> bool:
        return bool(self.flags & _SHF_WRITE)

    @property
    def exec(self) -> bool:
        return bool(self.flags & _SHF_EXECINSTR)

    def data(self) -> bytes:
        """The section's file contents (``b''`` for SHT_NOBITS).  Works after the ElfFile is
        closed (it is held in memory); a Section built by hand has no data and raises
        ValueError."""
        if self.type == "SHT_NOBITS":
            return b""
        if self._reader is None:
            raise ValueError(f"section {self.name!r} is not attached to an ElfFile")
        return self._reader()


@dataclass(frozen=True)
class Symbol:
    """One ``.symtab`` entry.  ``type``/``bind`` lose their ``STT_``/``STB_`` prefix;
    ``section_index`` is an int or ``'SHN_UNDEF'``/``'SHN_ABS'``/``'SHN_COMMON'``."""
    name: str
    value: int
    size: int
    type: str
    bind: str
    section_index: Union[int, str]
    section_name: Optional[str]

    @property
    def defined(self) -> bool:
        return self.section_index != "SHN_UNDEF"


@dataclass(frozen=True)
class Relocation:
    """One REL/RELA entry.  ``section`` is the section it patches; ``symbol`` is the symbol
    name, or for a section symbol (nameless in ``.o`` files) the section's name, as readelf
    shows it; ``''`` when the entry has no symbol.  ``addend`` is 0 for REL entries."""
    section: str
    offset: int
    type: int
    type_name: str
    symbol: str
    addend: int


@dataclass(frozen=True)
class CType:
    """A C type as a caller sees it: typedefs, volatile, restrict and _Atomic are looked
    through (volatile/restrict/_Atomic never appear in ``spelling``; typedef names do)."""
    kind: str
    spelling: str
    size: Optional[int]
    signed: bool
    const: bool
    pointee: Optional["CType"]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: CType


@dataclass(frozen=True)
class Signature:
    """``file`` is the declaring source path as DWARF records it, ``line`` its line."""
    name: str
    return_type: CType
    params: Tuple[Parameter, ...]
    variadic: bool
    file: Optional[str]
    line: Optional[int]


@dataclass(frozen=True)
class Location:
    """Where an address is: ``function+offset (file:line)``, parts missing when unknown."""
    function: Optional[str]
    offset: int
    file: Optional[str]
    line: Optional[int]
    address: int

    def __str__(self) -> str:
        text = (f"{self.function}+0x{self.offset:x}" if self.function is not None
                else f"0x{self.address:x}")
        if self.file is not None and self.line is not None:
            text += f" ({posixpath.basename(self.file.replace(os.sep, '/'))}:{self.line})"
        return text


_VOID = CType("void", "void", None, False, False, None)
_UNKNOWN = CType("unknown", "<unknown>", None, False, False, None)

# --- relocations of DWARF sections -------------------------------------------------------
# Recipes: machine -> {type: (name, width in bytes, fn(V, S, A, P) -> new value)}; width 0
# means "ULEB128 in place", fn None means "nothing to do" (e.g. R_RISCV_RELAX).
_Recipe = Tuple[str, int, Optional[Callable[[int, int, int, int], int]]]
_RISCV: Dict[int, _Recipe] = {
    0: ("R_RISCV_NONE", 0, None), 1: ("R_RISCV_32", 4, lambda v, s, a, p: s + a),
    2: ("R_RISCV_64", 8, lambda v, s, a, p: s + a),
    33: ("R_RISCV_ADD8", 1, lambda v, s, a, p: v + s + a),
    34: ("R_RISCV_ADD16", 2, lambda v, s, a, p: v + s + a),
    35: ("R_RISCV_ADD32", 4, lambda v, s, a, p: v + s + a),
    36: ("R_RISCV_ADD64", 8, lambda v, s, a, p: v + s + a),
    37: ("R_RISCV_SUB8", 1, lambda v, s, a, p: v - s - a),
    38: ("R_RISCV_SUB16", 2, lambda v, s, a, p: v - s - a),
    39: ("R_RISCV_SUB32", 4, lambda v, s, a, p: v - s - a),
    40: ("R_RISCV_SUB64", 8, lambda v, s, a, p: v - s - a),
    43: ("R_RISCV_ALIGN", 0, None), 51: ("R_RISCV_RELAX", 0, None),
    52: ("R_RISCV_SUB6", 1, lambda v, s, a, p: (v & 0xC0) | ((v - s - a) & 0x3F)),
    53: ("R_RISCV_SET6", 1, lambda v, s, a, p: (v & 0xC0) | ((s + a) & 0x3F)),
    54: ("R_RISCV_SET8", 1, lambda v, s, a, p: s + a),
    55: ("R_RISCV_SET16", 2, lambda v, s, a, p: s + a),
    56: ("R_RISCV_SET32", 4, lambda v, s, a, p: s + a),
    57: ("R_RISCV_32_PCREL", 4, lambda v, s, a, p: s + a - p),
    60: ("R_RISCV_SET_ULEB128", 0, lambda v, s, a, p: s + a),
    61: ("R_RISCV_SUB_ULEB128", 0, lambda v, s, a, p: v - s - a),
}
# Names only (code relocations), for Relocation.type_name.
_RISCV_NAMES = {3: "RELATIVE", 4: "COPY", 5: "JUMP_SLOT", 16: "BRANCH", 17: "JAL", 18: "CALL",
                19: "CALL_PLT", 20: "GOT_HI20", 21: "TLS_GOT_HI20", 22: "TLS_GD_HI20",
                23: "PCREL_HI20", 24: "PCREL_LO12_I", 25: "PCREL_LO12_S", 26: "HI20",
                27: "LO12_I", 28: "LO12_S", 29: "TPREL_HI20", 30: "TPREL_LO12_I",
                31: "TPREL_LO12_S", 32: "TPREL_ADD", 44: "RVC_BRANCH", 45: "RVC_JUMP",
                58: "IRELATIVE", 59: "PLT32"}
_RECIPES: Dict[str, Dict[int, _Recipe]] = {
    "EM_RISCV": _RISCV,
    # REL machines: the addend is the value in place (A == V).
    "EM_ARM": {0: ("R_ARM_NONE", 0, None), 2: ("R_ARM_ABS32", 4, lambda v, s, a, p: s + a),
               3: ("R_ARM_REL32", 4, lambda v, s, a, p: s + a - p)},
    "EM_386": {1: ("R_386_32", 4, lambda v, s, a, p: s + a),
               2: ("R_386_PC32", 4, lambda v, s, a, p: s + a - p)},
    "EM_X86_64": {1: ("R_X86_64_64", 8, lambda v, s, a, p: s + a),
                  2: ("R_X86_64_PC32", 4, lambda v, s, a, p: s + a - p),
                  10: ("R_X86_64_32", 4, lambda v, s, a, p: s + a),
                  11: ("R_X86_64_32S", 4, lambda v, s, a, p: s + a),
                  24: ("R_X86_64_PC64", 8, lambda v, s, a, p: s + a - p)},
}


def _read_uleb(buf: bytearray, pos: int) -> Tuple[int, int]:
    value = shift = 0
    start = pos
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            return value, pos - start


def _apply_relocations(buf: bytearray, relsec: RelocationSection, symtab: SymbolTableSection,
                       machine: str, little: bool, base: int) -> None:
    """Apply ``relsec`` to the contents ``buf`` of the section it targets (at ``base``)."""
    recipes = _RECIPES[machine]
    order = "little" if little else "big"
    for rel in relsec.iter_relocations():
        rtype, off = rel["r_info_type"], rel["r_offset"]
        recipe = recipes.get(rtype)
        if recipe is None:
            log.warning("%s: relocation type %d in %s not supported; left unapplied",
                        machine, rtype, relsec.name)
            continue
        _, width, fn = recipe
        if fn is None:
            continue
        sym = symtab.get_symbol(rel["r_info_sym"])["st_value"] if rel["r_info_sym"] else 0
        if width == 0:                       # ULEB128 rewritten in its existing length
            old, length = _read_uleb(buf, off)
            new = fn(old, sym, rel["r_addend"], base + off) & ((1 << (7 * length)) - 1)
            for i in range(length):
                buf[off + i] = ((new >> (7 * i)) & 0x7F) | (0x80 if i < length - 1 else 0)
            continue
        old = int.from_bytes(buf[off:off + width], order)
        addend = rel["r_addend"] if rel.is_RELA() else old
        new = fn(old, sym, addend, base + off) & ((1 << (8 * width)) - 1)
        buf[off:off + width] = new.to_bytes(width, order)


_Sequence = Tuple[int, int, List[int], List[Tuple[Optional[str], int]]]
# gABI symbol table encodings (st_info type and binding, special st_shndx values).
_SYM_TYPES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS",
              10: "GNU_IFUNC"}
_SYM_BINDS = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "GNU_UNIQUE"}
_SPECIAL_SHNDX = {0: "SHN_UNDEF", 0xFFF1: "SHN_ABS", 0xFFF2: "SHN_COMMON"}
# Names exactly as pyelftools spells them (its own enum tables), for the struct fast path.
_E_MACHINE = {v: k for k, v in _enums.ENUM_E_MACHINE.items() if isinstance(v, int)}
_E_TYPE = {v: k for k, v in _enums.ENUM_E_TYPE.items() if isinstance(v, int)}
_SH_TYPE_BASE = {v: k for k, v in _enums.ENUM_SH_TYPE_BASE.items() if isinstance(v, int)}
#: What pyelftools (and the readers below) raise on a malformed file: a truncated table, an
#: offset past the end, a broken DWARF chain. Turned into BuildError at the public methods.
_MALFORMED = (ELFError, DWARFError, ConstructError, AssertionError, KeyError, IndexError, TypeError, ValueError,
              OverflowError, AttributeError, ZeroDivisionError, EOFError, RecursionError, struct.error)


def _reads(what: str) -> Callable:
    """Decorate an :class:`ElfFile` method that parses ``what`` (e.g. "DWARF debug info"):
    whatever a malformed file makes the parser raise comes out as :class:`BuildError` naming
    the file and the part that is broken, and the file stays marked so (every later parse
    raises the same way: half-built caches are never used)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(self: "ElfFile", *args: Any, **kwargs: Any) -> Any:
            if self._malformed is not None:
                raise self._malformed_error(*self._malformed)
            try:
                return fn(self, *args, **kwargs)
            except BuildError:
                raise
            except _MALFORMED as exc:
                self._malformed = (what, exc)
                raise self._malformed_error(what, exc) from exc
        return guarded
    return wrap


_SH_TYPE_MACHINE = {
    machine: {v: k for k, v in table.items() if isinstance(v, int)}
    for machine, table in (("EM_ARM", _enums.ENUM_SH_TYPE_ARM), ("EM_AARCH64", _enums.ENUM_SH_TYPE_AARCH64),
                           ("EM_X86_64", _enums.ENUM_SH_TYPE_AMD64), ("EM_MIPS", _enums.ENUM_SH_TYPE_MIPS),
                           ("EM_RISCV", _enums.ENUM_SH_TYPE_RISCV))}
_DWARF_SECTION_ATTRS = (
    "debug_info_sec", "debug_aranges_sec", "debug_abbrev_sec", "debug_frame_sec",
    "eh_frame_sec", "debug_str_sec", "debug_loc_sec", "debug_ranges_sec", "debug_line_sec",
    "debug_pubtypes_sec", "debug_pubnames_sec", "debug_addr_sec", "debug_str_offsets_sec",
    "debug_line_str_sec", "debug_loclists_sec", "debug_rnglists_sec", "debug_types_sec")


class ElfFile:
    """An ELF file (object or executable) opened for reading.

    Raises :class:`BuildError` (``'<path>' is not an ELF file: <reason>``) when the file is not
    a readable ELF, and OSError when it cannot be read at all.  Usable as a context manager;
    parsed symbols and DWARF are cached per instance (lazily), so repeated
    :meth:`signatures`/:meth:`symbolize` calls are cheap.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self.path: str = os.fspath(path)
        with open(self.path, "rb") as f:
            blob = f.read()
        if blob[:4] != b"\x7fELF":
            raise BuildError(f"'{self.path}' is not an ELF file: "
                             f"bad magic number {blob[:4]!r} (expected b'\\x7fELF')")
        self._data_cache: Dict[int, bytes] = {}
        self._blob = blob
        self._malformed: Optional[Tuple[str, BaseException]] = None   # (what, why) once a parse failed
        self._elf_obj: Optional[ELFFile] = None
        self._headers: Dict[int, Tuple[int, int, int, int, int]] = {}   # offset, size, type, flags, link
        if not self._parse_headers_fast():
            try:
                hdr = self._elf.header
                self.machine: str = str(hdr["e_machine"])
                self.elf_class: int = self._elf.elfclass
                self.little_endian: bool = bool(self._elf.little_endian)
                self.elf_type: str = str(hdr["e_type"])
                self.flags: int = int(hdr["e_flags"])
                self.sections: List[Section] = [self._make_section(i, s) for i, s in
                                                enumerate(self._elf.iter_sections()) if i > 0]
            except BuildError:
                raise
            except _MALFORMED as exc:
                raise BuildError(f"'{self.path}' is not an ELF file: {type(exc).__name__}: {exc}") from exc
        self._by_name = {s.name: s for s in reversed(self.sections)}
        self._symbols: Optional[List[Symbol]] = None
        self._sym_index: Optional[Dict[str, List[Symbol]]] = None
        self._dwarf_cache: Union[DWARFInfo, None, bool] = None   # False: no DWARF
        self._signatures: Optional[Dict[str, Signature]] = None
        self._ctypes: Dict[int, CType] = {}
        self._types_index: Optional[Dict[str, DIE]] = None
        self._lines: Optional[Tuple[List[_Sequence], List[int], List[int]]] = None
        self._funcs: Optional[Tuple[List[int], List[Symbol], List[int]]] = None

    @property
    def _elf(self) -> ELFFile:
        """pyelftools' view of the file, made on first use (DWARF, relocations)."""
        if self._elf_obj is None:
            try:
                self._elf_obj = ELFFile(io.BytesIO(self._blob))
            except _MALFORMED as exc:
                raise BuildError(f"'{self.path}' is not an ELF file: {type(exc).__name__}: {exc}") from exc
        return self._elf_obj

    def _malformed_error(self, what: str, exc: BaseException) -> BuildError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if len(detail) > 200:
            detail = detail[:200] + "..."
        return BuildError(f"'{self.path}' is a malformed ELF file: its {what} cannot be read ({detail}); "
                          "rebuild it, or pass the object file the compiler wrote")

    def _parse_headers_fast(self) -> bool:
        """Read the ELF header and section headers with struct (gABI "ELF Header", "Sections").

        Building pyelftools' ELFFile costs milliseconds per file, and load() reads several
        files; the DWARF and relocation readers still go through pyelftools. Returns False
        (and leaves the work to pyelftools, with its error messages) for anything unusual.
        """
        blob = self._blob
        if len(blob) < 52 or blob[4] not in (1, 2) or blob[5] not in (1, 2):
            return False
        order = "<" if blob[5] == 1 else ">"
        wide = blob[4] == 2
        try:
            if wide:
                e_type, e_machine, _, _, _, e_shoff, e_flags, _, _, _, e_shentsize, e_shnum, e_shstrndx = \
                    struct.unpack_from(order + "HHIQQQIHHHHHH", blob, 16)
                shdr = struct.Struct(order + "IIQQQQIIQQ")
            else:
                e_type, e_machine, _, _, _, e_shoff, e_flags, _, _, _, e_shentsize, e_shnum, e_shstrndx = \
                    struct.unpack_from(order + "HHIIIIIHHHHHH", blob, 16)
                shdr = struct.Struct(order + "IIIIIIIIII")
            if e_shnum == 0 or e_shentsize != shdr.size or e_shoff + e_shnum * shdr.size > len(blob) \
                    or e_shstrndx >= e_shnum:
                return False
            machine = _E_MACHINE.get(e_machine)
            if machine is None:
                return False
            headers = [shdr.unpack_from(blob, e_shoff + i * shdr.size) for i in range(e_shnum)]
            _, _, _, _, str_off, str_size, *_ = headers[e_shstrndx]
            names = blob[str_off:str_off + str_size]
        except struct.error:
            return False
        self.machine = machine
        self.elf_class = 64 if wide else 32
        self.little_endian = order == "<"
        self.elf_type = _E_TYPE.get(e_type, str(e_type))
        self.flags = e_flags
        types = dict(_SH_TYPE_BASE)
        types.update(_SH_TYPE_MACHINE.get(machine, {}))
        sections = []
        for i, (name_off, sh_type, flags, addr, offset, size, link, info, align, _) in enumerate(headers):
            if i == 0:
                continue
            end = names.find(b"\0", name_off)
            name = names[name_off:end if end >= 0 else None].decode("utf-8", "replace")
            sections.append(Section(name=name, index=i, type=types.get(sh_type, f"0x{sh_type:x}"), addr=addr,
                                    size=size, align=align or 1, flags=flags, offset=offset,
                                    _reader=lambda i=i: self._section_bytes(i)))
            self._headers[i] = (offset, size, sh_type, flags, link)
        self.sections = sections
        return True

    # --- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Drop the DWARF caches.  The file is held in memory, so the object stays usable."""
        self._dwarf_cache = None
        self._ctypes.clear()
        self._types_index = None

    def __enter__(self) -> "ElfFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ElfFile({self.path!r}, {self.machine}, {self.elf_type})"

    # --- sections and symbols ---------------------------------------------------------
    def _make_section(self, index: int, sec: ElfSection) -> Section:
        t = sec["sh_type"]
        return Section(name=sec.name, index=index, type=t if isinstance(t, str) else f"0x{t:x}",
                       addr=sec["sh_addr"], size=sec["sh_size"], align=sec["sh_addralign"] or 1,
                       flags=sec["sh_flags"], offset=sec["sh_offset"],
                       _reader=lambda: self._section_bytes(index))

    @_reads("section contents")
    def _section_bytes(self, index: int) -> bytes:
        data = self._data_cache.get(index)
        if data is None:
            head = self._headers.get(index)
            if head is not None and head[2] != 8 and not head[3] & 0x800:   # not NOBITS, not compressed
                data = self._blob[head[0]:head[0] + head[1]]
            elif head is not None and head[2] == 8:
                data = b""
            else:
                data = bytes(self._elf.get_section(index).data())
            self._data_cache[index] = data
        return data

    def validate(self) -> None:
        """Check what a linker trusts blindly, before handing it a file from elsewhere: every
        section with contents lies inside the file, and the symbol table's links name real
        sections. :class:`BuildError` naming the section otherwise (binutils may spend seconds
        on a section that claims gigabytes, then fail with "file truncated")."""
        for sec in self.sections:
            if sec.type != "SHT_NOBITS" and sec.size and sec.offset + sec.size > len(self._blob):
                raise BuildError(f"'{self.path}' is a malformed ELF file: section {sec.name!r} (index {sec.index}) "
                                 f"claims {sec.size:,} bytes at offset {sec.offset:,}, past the end of the "
                                 f"file ({len(self._blob):,} bytes); rebuild it, or pass the object file "
                                 "the compiler wrote")
        for sec in self.sections:
            head = self._headers.get(sec.index)
            if sec.type in ("SHT_SYMTAB", "SHT_REL", "SHT_RELA") and head is not None \
                    and not 0 < head[4] <= len(self.sections):
                raise BuildError(f"'{self.path}' is a malformed ELF file: section {sec.name!r} (index {sec.index}) "
                                 f"links to section {head[4]}, which does not exist; rebuild it, or pass the "
                                 "object file the compiler wrote")

    def get_section(self, name: str) -> Optional[Section]:
        """The first section called ``name``, or None."""
        return self._by_name.get(name)

    def _section_name(self, index: Union[int, str]) -> Optional[str]:
        if isinstance(index, int) and 0 < index <= len(self.sections):
            return self.sections[index - 1].name
        return None

    def iter_symbols(self) -> Iterator[Symbol]:
        """Every ``.symtab`` symbol in table order, index 0 skipped (none if stripped)."""
        if self._symbols is None:
            self._symbols = self._parse_symtab()
        return iter(self._symbols)

    @_reads("symbol table")
    def _parse_symtab(self) -> List["Symbol"]:
        # Decoded with struct straight from the section bytes (Elf32_Sym / Elf64_Sym, gABI
        # "Symbol Table"): pyelftools' per-symbol construct parsing costs ~0.1 ms a symbol,
        # which dominated load() time for libraries with a few hundred symbols.
        symtab = self.get_section(".symtab")
        if symtab is None or symtab.type != "SHT_SYMTAB":
            return []
        head = self._headers.get(symtab.index)
        link = head[4] if head is not None else self._elf.get_section(symtab.index)["sh_link"]
        strtab = self._section_bytes(link)
        data = self._section_bytes(symtab.index)
        order = "<" if self.little_endian else ">"
        if self.elf_class == 64:
            entry = struct.Struct(order + "IBBHQQ")
            fields = lambda t: (t[0], t[4], t[5], t[1], t[3])       # name, value, size, info, shndx
        else:
            entry = struct.Struct(order + "IIIBBH")
            fields = lambda t: (t[0], t[1], t[2], t[3], t[5])
        syms: List[Symbol] = []
        for i in range(1, len(data) // entry.size):
            name_off, value, size, info, shndx = fields(entry.unpack_from(data, i * entry.size))
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else None].decode("utf-8", "replace")
            index: Union[int, str] = _SPECIAL_SHNDX.get(shndx, shndx)
            syms.append(Symbol(name=name, value=value, size=size,
                               type=_SYM_TYPES.get(info & 0xF, str(info & 0xF)),
                               bind=_SYM_BINDS.get(info >> 4, str(info >> 4)),
                               section_index=index, section_name=self._section_name(index)))
        return syms

    def get_symbol(self, name: str) -> Optional[Symbol]:
        """The defined GLOBAL/WEAK symbol ``name`` if there is one (GLOBAL first), else the
        first symbol of that name, else None."""
        if self._sym_index is None:
            self._sym_index = {}
            for s in self.iter_symbols():
                self._sym_index.setdefault(s.name, []).append(s)
        found = self._sym_index.get(name, [])
        for bind in ("GLOBAL", "WEAK"):
            for s in found:
                if s.bind == bind and s.defined:
                    return s
        return found[0] if found else None

    def defined_symbols(self) -> Dict[str, Symbol]:
        """Named GLOBAL/WEAK symbols that are defined (SHN_COMMON included) and of type
        FUNC/OBJECT/NOTYPE/COMMON; a GLOBAL one wins over a WEAK one of the same name."""
        out: Dict[str, Symbol] = {}
        for s in self.iter_symbols():
            if (s.name and s.defined and s.bind in ("GLOBAL", "WEAK")
                    and s.type in ("FUNC", "OBJECT", "NOTYPE", "COMMON")
                    and (s.name not in out or out[s.name].bind == "WEAK")):
                out[s.name] = s
        return out

    def undefined_symbols(self) -> List[str]:
        """Sorted, unique names of GLOBAL/WEAK symbols that are SHN_UNDEF."""
        return sorted({s.name for s in self.iter_symbols()
                       if s.name and not s.defined and s.bind in ("GLOBAL", "WEAK")})

    def _reloc_type_name(self, rtype: int) -> str:
        recipe = _RECIPES.get(self.machine, {}).get(rtype)
        if recipe is not None:
            return recipe[0]
        if self.machine == "EM_RISCV":
            return "R_RISCV_" + _RISCV_NAMES[rtype] if rtype in _RISCV_NAMES else str(rtype)
        name = describe_reloc_type(rtype, self._elf)
        return name if name.startswith("R_") else str(rtype)

    def iter_relocations(self) -> Iterator[Relocation]:
        """Every entry of every SHT_REL/SHT_RELA section, in file order."""
        return iter(self._relocations())

    @_reads("relocations")
    def _relocations(self) -> List[Relocation]:
        out: List[Relocation] = []
        for relsec in self._elf.iter_sections():
            if not isinstance(relsec, RelocationSection):
                continue
            target = self._section_name(relsec["sh_info"]) or ""
            symtab = self._elf.get_section(relsec["sh_link"])
            for rel in relsec.iter_relocations():
                name = ""
                if rel["r_info_sym"] and isinstance(symtab, SymbolTableSection):
                    sym = symtab.get_symbol(rel["r_info_sym"])
                    name = sym.name
                    if not name and sym["st_info"]["type"] == "STT_SECTION":
                        name = self._section_name(sym["st_shndx"]) or ""
                out.append(Relocation(section=target, offset=rel["r_offset"],
                                 type=rel["r_info_type"],
                                 type_name=self._reloc_type_name(rel["r_info_type"]),
                                 symbol=name, addend=rel["r_addend"] if rel.is_RELA() else 0))
        return out

    # --- memory image -----------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at virtual address ``addr`` as the file initialises them: contents of
        SHF_ALLOC sections (zeros for SHT_NOBITS); may span adjacent sections.  Raises
        ValueError if any byte lies outside every allocated section.  Meaningful for linked
        files (in ``.o`` files every section starts at 0 and the first one wins)."""
        if n < 0:
            raise ValueError(f"negative length {n}")
        out = bytearray()
        pos, end = addr, addr + n
        while pos < end:
            sec = next((s for s in self.sections
                        if s.alloc and s.size and s.addr <= pos < s.addr + s.size), None)
            if sec is None:
                raise ValueError(f"address 0x{pos:x} is not in any allocated section of "
                                 f"'{self.path}'")
            stop = min(end, sec.addr + sec.size)
            if sec.type == "SHT_NOBITS":
                out += bytes(stop - pos)
            else:
                out += sec.data()[pos - sec.addr:stop - sec.addr]
            pos = stop
        return bytes(out)

    # --- DWARF ------------------------------------------------------------------------
    @_reads("DWARF debug info")
    def _dwarf(self) -> Optional[DWARFInfo]:
        """The DWARFInfo (relocated for ET_REL), or None without debug info; cached."""
        if self._dwarf_cache is None:
            self._dwarf_cache = False
            if self._elf.has_dwarf_info():
                if self.elf_type == "ET_REL" and self.machine in _RECIPES:
                    dw = self._elf.get_dwarf_info(relocate_dwarf_sections=False)
                    self._relocate(dw)
                else:
                    try:
                        dw = self._elf.get_dwarf_info()
                    except ELFRelocationError as exc:    # a machine neither of us knows
                        log.warning("%s: DWARF left unrelocated (%s)", self.path, exc)
                        dw = self._elf.get_dwarf_info(relocate_dwarf_sections=False)
                self._dwarf_cache = dw
        return self._dwarf_cache or None

    def _relocate(self, dw: DWARFInfo) -> None:
        """Apply the relocations aimed at each DWARF section to its in-memory copy."""
        handler = RelocationHandler(self._elf)
        for attr in _DWARF_SECTION_ATTRS:
            desc = getattr(dw, attr, None)
            sec = self._elf.get_section_by_name(desc.name) if desc is not None else None
            relsec = handler.find_relocations_for_section(sec) if sec is not None else None
            if relsec is None:
                continue
            symtab = self._elf.get_section(relsec["sh_link"])
            buf = bytearray(desc.stream.getvalue())
            _apply_relocations(buf, relsec, symtab, self.machine, self.little_endian,
                               sec["sh_addr"])
            desc.stream.seek(0)
            desc.stream.write(buf)

    @staticmethod
    def _owner(die: DIE, name: str) -> Optional[DIE]:
        """``die`` or the first DIE along its DW_AT_abstract_origin/specification chain that
        has attribute ``name``."""
        for _ in range(8):
            if name in die.attributes:
                return die
            link = next((a for a in ("DW_AT_abstract_origin", "DW_AT_specification")
                         if a in die.attributes), None)
            if link is None:
                return None
            die = die.get_DIE_from_attribute(link)
        return None

    @staticmethod
    def _attr(die: DIE, name: str):
        """Attribute value of ``die``, following DW_AT_abstract_origin/specification."""
        owner = ElfFile._owner(die, name)
        return owner.attributes[name].value if owner is not None else None

    @staticmethod
    def _name(die: DIE) -> Optional[str]:
        v = ElfFile._attr(die, "DW_AT_name")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    def _ctype(self, die: Optional[DIE]) -> CType:
        """The CType of a type DIE (None means void); cached by DIE offset."""
        if die is None:
            return _VOID
        hit = self._ctypes.get(die.offset)
        if hit is None:
            self._ctypes[die.offset] = _UNKNOWN          # guards against cycles
            hit = self._ctypes[die.offset] = self._build_ctype(die)
        return hit

    def _target(self, die: DIE) -> CType:
        """The CType named by DW_AT_type of ``die`` or of its origin (void when absent)."""
        owner = self._owner(die, "DW_AT_type")
        return self._ctype(owner.get_DIE_from_attribute("DW_AT_type") if owner else None)

    def _build_ctype(self, die: DIE) -> CType:
        tag, name = die.tag, self._name(die)
        size = die.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in die.attributes else None
        if tag == "DW_TAG_base_type":
            enc = die.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in die.attributes else 0
            kind, signed = {0x5: ("int", True), 0x6: ("int", True), 0x7: ("int", False),
                            0x8: ("int", False), 0x10: ("int", False), 0x4: ("float", False),
                            0x2: ("bool", False)}.get(enc, ("unknown", False))
            return CType(kind, name or "<unknown>", size, signed, False, None)
        if tag in ("DW_TAG_typedef", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
                   "DW_TAG_atomic_type"):
            inner = self._target(die)
            return replace(inner, spelling=name) if tag == "DW_TAG_typedef" and name else inner
        if tag == "DW_TAG_const_type":
            inner = self._target(die)
            if inner.const:
                return inner
            spelling = (f"const {inner.spelling}" if inner.kind != "pointer" else
                        inner.spelling.replace("(*)", "(*const)", 1) if "(*)" in inner.spelling
                        else f"{inner.spelling}const")
            return replace(inner, const=True, spelling=spelling)
        if tag == "DW_TAG_pointer_type":
            size = size or die.cu["address_size"]
            pointee = self._target(die)
            if pointee.kind == "function":      # 'int (int, float)' -> 'int (*)(int, float)'
                ret, _, args = pointee.spelling.partition(" (")
                return CType("pointer", f"{ret} (*)({args}", size, False, False, pointee)
            star = "*" if pointee.kind == "pointer" and pointee.spelling.endswith("*") else " *"
            return CType("pointer", pointee.spelling + star, size, False, False, pointee)
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_enumeration_type"):
            kind = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union"}.get(tag, "enum")
            signed = False
            if kind == "enum":
                if "DW_AT_type" in die.attributes:
                    signed = self._target(die).signed
                else:
                    signed = any(c.attributes.get("DW_AT_const_value") is not None
                                 and c.attributes["DW_AT_const_value"].value < 0
                                 for c in die.iter_children())
            return CType(kind, f"{kind} {name or '<anonymous>'}", size, signed, False, None)
        if tag == "DW_TAG_array_type":
            elem = self._target(die)
            counts = []
            for sub in (c for c in die.iter_children() if c.tag == "DW_TAG_subrange_type"):
                a = sub.attributes
                n = (a["DW_AT_count"].value if "DW_AT_count" in a else
                     a["DW_AT_upper_bound"].value + 1 if "DW_AT_upper_bound" in a else None)
                counts.append(n if isinstance(n, int) else None)
            if size is None and elem.size is not None and counts and None not in counts:
                size = elem.size
                for n in counts:
                    size *= n
            dims = "".join(f"[{'' if n is None else n}]" for n in counts) or "[]"
            return CType("array", elem.spelling + dims, size, False, False, None)
        if tag == "DW_TAG_subroutine_type":
            ret = self._target(die)
            args = [self._target(c).spelling for c in die.iter_children()
                    if c.tag == "DW_TAG_formal_parameter"]
            if any(c.tag == "DW_TAG_unspecified_parameters" for c in die.iter_children()):
                args.append("...")
            if not args and die.attributes.get("DW_AT_prototyped"):
                args = ["void"]
            return CType("function", f"{ret.spelling} ({', '.join(args)})", None, False, False, None)
        return CType("unknown", name or "<unknown>", size, False, False, None)

    def _file_name(self, cu: CompileUnit, index: Optional[int]) -> Optional[str]:
        """The path of file ``index`` of ``cu``'s line program (DWARF 5 counts from 0)."""
        lp = self._dwarf().line_program_for_CU(cu)
        if lp is None or index is None:
            return None
        entries = lp["file_entry"]
        i = index if lp["version"] >= 5 else index - 1
        if not 0 <= i < len(entries):
            return None
        entry = entries[i]
        name = entry.name.decode("utf-8", "replace")
        dirs = lp["include_directory"]
        d = entry.dir_index if lp["version"] >= 5 else entry.dir_index - 1
        if not posixpath.isabs(name) and 0 <= d < len(dirs):
            name = posixpath.join(dirs[d].decode("utf-8", "replace"), name)
        return name

    def signatures(self) -> Dict[str, Signature]:
        """Signatures of the externally visible (DW_AT_external), defined (with code:
        low_pc or ranges) functions that have DWARF, by name; declarations, static
        functions and compiler clones (``foo.part.0``) are not reported.  Follows
        DW_AT_abstract_origin/specification, so an out-of-line copy of an inlined function
        (-O2) reports its source parameters.  In a linked file with a symbol table, functions
        whose symbol is not defined (garbage-collected) are dropped.  Empty without DWARF.
        Returns a fresh dict (the parse is cached)."""
        if self._signatures is None:
            self._signatures = self._parse_signatures()
        return dict(self._signatures)

    @_reads("DWARF function signatures")
    def _parse_signatures(self) -> Dict[str, Signature]:
        dw = self._dwarf()
        out: Dict[str, Signature] = {}
        if dw is None:
            return out
        defined = self.defined_symbols()
        has_symtab = self._elf.get_section_by_name(".symtab") is not None
        candidates: Dict[str, List[Tuple[DIE, CompileUnit]]] = {}
        # Identical code folding (gcc -O2, -fipa-icf) keeps a folded function's symbol (a
        # thunk or a copy) but leaves its DIE without code (no low_pc/ranges): such a DIE
        # still describes a function this file defines when a FUNC symbol of its name is
        # defined here, so it stands in when no DIE with code claims the name.
        codeless: Dict[str, Tuple[DIE, CompileUnit]] = {}
        for cu in dw.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if (die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes
                        or not self._attr(die, "DW_AT_external")):
                    continue
                name = self._name(die)
                if not name or (has_symtab and name not in defined):
                    continue
                if "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes:
                    candidates.setdefault(name, []).append((die, cu))
                elif (has_symtab and defined[name].type == "FUNC" and "DW_AT_inline" not in die.attributes
                      and "DW_AT_abstract_origin" not in die.attributes):
                    codeless.setdefault(name, (die, cu))
        for name, dies in candidates.items():
            die, cu = self._pick(dies, defined.get(name))
            out[name] = self._signature(name, die, cu)
        for name, (die, cu) in codeless.items():
            if name not in out:
                out[name] = self._signature(name, die, cu)
        return out

    def _pick(self, dies: List[Tuple[DIE, CompileUnit]], sym: Optional[Symbol]) -> Tuple[DIE, CompileUnit]:
        """Choose among DIEs claiming one name (an out-of-line copy and clones such as
        ``vadd.part.0`` share an abstract origin): the one whose start and size match the
        symbol, else the first."""
        if len(dies) == 1 or sym is None:
            return dies[0]
        start = sym.value & ~1 if self.machine == "EM_ARM" else sym.value
        for die, cu in dies:
            a = die.attributes
            if "DW_AT_low_pc" in a and a["DW_AT_low_pc"].value == start and "DW_AT_high_pc" in a:
                hp = a["DW_AT_high_pc"]
                size = hp.value if hp.form != "DW_FORM_addr" else hp.value - start
                if size == sym.size:
                    return die, cu
        return dies[0]

    def _signature(self, name: str, die: DIE, cu: CompileUnit) -> Signature:
        """The parameter list comes from the abstract instance when ``die`` is a concrete
        one (it is the source's list, with names), else from ``die``, else from the
        declaration its DW_AT_specification names."""
        chain = [die]                   # [abstract origins, deepest first], die, specification
        d = die
        while "DW_AT_abstract_origin" in d.attributes and len(chain) < 8:
            d = d.get_DIE_from_attribute("DW_AT_abstract_origin")
            chain.insert(0, d)
        if "DW_AT_specification" in die.attributes:
            chain.append(die.get_DIE_from_attribute("DW_AT_specification"))
        kinds = ("DW_TAG_formal_parameter", "DW_TAG_unspecified_parameters")
        kids = next((k for k in ([c for c in d.iter_children() if c.tag in kinds] for d in chain)
                     if k), [])
        params = tuple(Parameter(self._name(c) or "", self._target(c)) for c in kids
                       if c.tag == "DW_TAG_formal_parameter")
        return Signature(name=name, return_type=self._target(die), params=params,
                         variadic=any(c.tag == "DW_TAG_unspecified_parameters" for c in kids),
                         file=self._file_name(cu, self._attr(die, "DW_AT_decl_file")),
                         line=self._attr(die, "DW_AT_decl_line"))

    # --- build attributes -------------------------------------------------------------
    @_reads("build attributes")
    def attributes(self) -> Dict[str, Any]:
        """File-level build attributes (``.ARM.attributes``, ``.riscv.attributes``) by
        pyelftools' tag name without ``TAG_`` (``"ABI_VFP_ARGS"``, ``"ARCH"``); empty if none."""
        out: Dict[str, Any] = {}
        if not any(s.name in (".ARM.attributes", ".riscv.attributes") for s in self.sections):
            return out
        for sec in self._elf.iter_sections():
            if sec.name not in (".ARM.attributes", ".riscv.attributes") or not hasattr(sec, "iter_subsections"):
                continue
            for sub in sec.iter_subsections():
                for subsub in sub.iter_subsubsections():
                    for attr in subsub.iter_attributes():
                        out[str(attr.tag).replace("TAG_", "", 1)] = attr.value
        return out

    # --- struct layout ----------------------------------------------------------------
    def struct_layout(self, name: str) -> Dict[str, Tuple[int, int]]:
        """``{member: (byte offset, byte size)}`` of the struct (or union) whose tag is
        ``name`` (``'struct foo'`` accepted) or that the typedef ``name`` denotes, in member
        order; members of anonymous struct/union members are flattened.  KeyError if no
        complete definition exists in the DWARF; :class:`BuildError` if the DWARF is malformed."""
        out = self._struct_members(name)
        if out is None:
            raise KeyError(name)
        return out

    @_reads("DWARF type definitions")
    def _struct_members(self, name: str) -> Optional[Dict[str, Tuple[int, int]]]:
        """struct_layout's work: None when no complete definition of ``name`` exists."""
        if self._types_index is None:
            self._types_index = {}
            dw = self._dwarf()
            for cu in (dw.iter_CUs() if dw is not None else ()):
                for die in cu.iter_DIEs():
                    if die.tag in ("DW_TAG_structure_type", "DW_TAG_union_type",
                                   "DW_TAG_typedef") and "DW_AT_declaration" not in die.attributes:
                        key = self._name(die)
                        if key and (key not in self._types_index
                                    or not self._types_index[key].has_children):
                            self._types_index[key] = die
        key = name.split(" ", 1)[1] if name.startswith(("struct ", "union ")) else name
        die = self._types_index.get(key)
        while die is not None and die.tag != "DW_TAG_structure_type" and die.tag != "DW_TAG_union_type":
            die = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
        if die is None or not die.has_children:
            return None
        out: Dict[str, Tuple[int, int]] = {}
        self._members(die, 0, out)
        return out

    def _members(self, die: DIE, base: int, out: Dict[str, Tuple[int, int]]) -> None:
        for m in die.iter_children():
            if m.tag != "DW_TAG_member":
                continue
            a = m.attributes
            off = 0
            if "DW_AT_data_member_location" in a:
                loc = a["DW_AT_data_member_location"].value
                if isinstance(loc, list):                   # DW_OP_plus_uconst ULEB128
                    off = _read_uleb(bytearray(loc[1:]), 0)[0] if loc and loc[0] == 0x23 else 0
                else:
                    off = loc
            elif "DW_AT_data_bit_offset" in a:
                off = a["DW_AT_data_bit_offset"].value // 8
            t = self._target(m)
            mname = self._name(m)
            if mname is None and t.kind in ("struct", "union"):
                inner = m.get_DIE_from_attribute("DW_AT_type")
                while inner.tag not in ("DW_TAG_structure_type", "DW_TAG_union_type"):
                    inner = inner.get_DIE_from_attribute("DW_AT_type")
                self._members(inner, base + off, out)
            elif mname is not None:
                out[mname] = (base + off, t.size or 0)

    # --- symbolization ----------------------------------------------------------------
    def _line_table(self) -> Tuple[List[_Sequence], List[int], List[int]]:
        """Line-program sequences as (start, end, row addresses, rows) sorted by start, their
        starts, and the running maximum of their ends."""
        if self._lines is None:
            seqs = []
            dw = self._dwarf()
            for cu in (dw.iter_CUs() if dw is not None else ()):
                lp = dw.line_program_for_CU(cu)
                if lp is None:
                    continue
                files: Dict[int, Optional[str]] = {}
                addrs: List[int] = []
                rows: List[Tuple[Optional[str], int]] = []
                for entry in lp.get_entries():
                    st = entry.state
                    if st is None:
                        continue
                    if st.end_sequence:
                        if addrs:
                            seqs.append((addrs[0], st.address, addrs, rows))
                        addrs, rows = [], []
                        continue
                    if st.file not in files:
                        files[st.file] = self._file_name(cu, st.file)
                    if addrs and addrs[-1] == st.address:
                        rows[-1] = (files[st.file], st.line)     # last row for an address wins
                    else:
                        addrs.append(st.address)
                        rows.append((files[st.file], st.line))
            seqs.sort(key=lambda s: s[0])
            max_end, top = [], -1
            for seq in seqs:
                top = max(top, seq[1])
                max_end.append(top)
            self._lines = (seqs, [s[0] for s in seqs], max_end)
        return self._lines

    def _line_for(self, addr: int) -> Tuple[Optional[str], Optional[int]]:
        seqs, starts, max_end = self._line_table()
        k = bisect.bisect_right(starts, addr) - 1
        while k >= 0 and max_end[k] > addr:     # only sequences that can still reach addr
            _, end, addrs, rows = seqs[k]
            if addr < end:
                return rows[bisect.bisect_right(addrs, addr) - 1]
            k -= 1
        return None, None

    def _function_at(self, addr: int) -> Optional[Tuple[str, int]]:
        """(name, offset) of the FUNC symbol containing ``addr``; GLOBAL wins ties."""
        if self._funcs is None:
            mask = ~1 if self.machine == "EM_ARM" else ~0
            funcs = sorted(((s.value & mask, s) for s in self.iter_symbols()
                            if s.type == "FUNC" and s.name),
                           key=lambda t: (t[0], t[1].bind != "GLOBAL"))
            max_end, top = [], -1
            for start, s in funcs:
                top = max(top, start + max(s.size, 1))
                max_end.append(top)
            self._funcs = ([t[0] for t in funcs], [t[1] for t in funcs], max_end)
        starts, syms, max_end = self._funcs
        i = bisect.bisect_right(starts, addr) - 1
        best: Optional[Tuple[str, int]] = None
        while i >= 0 and max_end[i] > addr:     # only symbols that can still reach addr
            start, s = starts[i], syms[i]
            if start <= addr < start + max(s.size, 1) and (
                    best is None or addr - start < best[1] or
                    (addr - start == best[1] and s.bind == "GLOBAL")):
                best = (s.name, addr - start)
            i -= 1
        return best

    @_reads("symbols and DWARF line table")
    def symbolize(self, addr: int) -> Optional[Location]:
        """Where ``addr`` is: the FUNC symbol whose ``[value, value+size)`` holds it (Thumb
        bit cleared on Arm; offset from the even start) and the file:line of the DWARF line
        row with the greatest address <= ``addr`` in the sequence that holds it.  None when
        neither is known.  In ``.o`` files addresses are section offsets (ambiguous between
        sections)."""
        fn = self._function_at(addr)
        file, line = self._line_for(addr)
        if fn is None and line is None:
            return None
        return Location(function=fn[0] if fn else None, offset=fn[1] if fn else 0,
                        file=file, line=line, address=addr)
