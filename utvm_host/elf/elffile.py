""":class:`ElfFile`: one ELF file held in memory, and the caches of what has been parsed of it.

The parsing itself lives in the modules below this one (:mod:`.reader`, :mod:`.relocations`,
:mod:`.dwarf_types`, :mod:`.signatures`, :mod:`.lines`); this module decides what is read
when, caches it, and turns a malformed file into :class:`BuildError` (:mod:`.malformed`).
Top of the package: nothing in it imports this module but ``__init__``.
"""
from __future__ import annotations

import io
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from elftools.common.exceptions import ELFRelocationError
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.elffile import ELFFile

from ..errors import BuildError
from .dwarf_types import _CTypes, _attr, _find_struct, _index_types, _members, _name, _owner
from .lines import _build_function_index, _build_line_table, _FunctionIndex, _function_at, _line_for, _LineTable
from .malformed import _MALFORMED, _not_elf_error, _reads
from .reader import decode_symbols, _make_section, _parse_headers_fast
from .relocations import _RECIPES, _read_relocations, _relocate_dwarf, log
from .signatures import _parse_signatures
from .types import CType, Location, Relocation, Section, Signature, Symbol

__all__ = ["ElfFile"]

_ATTRIBUTE_SECTIONS = (".ARM.attributes", ".riscv.attributes")


class ElfFile:
    """An ELF file (object or executable) opened for reading.

    The whole file is read into memory when it is opened: nothing is read from disk
    afterwards, so :meth:`Section.data` keeps working after :meth:`close`.  Usable as a
    context manager; parsed symbols and DWARF are cached per instance (lazily), so repeated
    :meth:`signatures`/:meth:`symbolize` calls are cheap.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Attributes
    ----------
    path : str
        ``path`` as a string.
    machine : str
        ``e_machine`` as pyelftools spells it (``"EM_RISCV"``, ``"EM_ARM"``, ...).
    elf_class : int
        32 or 64.
    little_endian : bool
        The file's byte order.
    elf_type : str
        ``e_type`` (``"ET_REL"``, ``"ET_EXEC"``, ...).
    flags : int
        ``e_flags``.
    sections : list of Section
        Every section but the null section at index 0, in table order.

    Raises
    ------
    BuildError
        ``'<path>' is not an ELF file: <reason>`` when the file is not a readable ELF; the
        methods raise ``'<path>' is a malformed ELF file: ...`` when the part they read is
        broken.
    OSError
        When the file cannot be read at all.
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
        if not self._read_headers_fast():
            self._read_headers_slow()
        self._by_name = {s.name: s for s in reversed(self.sections)}
        self._symbols: Optional[List[Symbol]] = None
        self._sym_index: Optional[Dict[str, List[Symbol]]] = None
        self._dwarf_cache: Union[DWARFInfo, None, bool] = None   # False: no DWARF
        self._signatures: Optional[Dict[str, Signature]] = None
        self._ctypes: Dict[int, CType] = {}
        self._ctype_builder = _CTypes(self._ctypes)
        self._types_index: Optional[Dict[str, DIE]] = None
        self._lines: Optional[_LineTable] = None
        self._funcs: Optional[_FunctionIndex] = None

    def _read_headers_fast(self) -> bool:
        """The ELF header and section headers read with struct (see :mod:`.reader`); False
        (nothing set) for anything unusual."""
        fast = _parse_headers_fast(self._blob, self._section_bytes)
        if fast is None:
            return False
        self.machine: str = fast.machine
        self.elf_class: int = fast.elf_class
        self.little_endian: bool = fast.little_endian
        self.elf_type: str = fast.elf_type
        self.flags: int = fast.flags
        self.sections: List[Section] = fast.sections
        self._headers.update(fast.raw)
        return True

    def _read_headers_slow(self) -> None:
        """The ELF header and section headers read by pyelftools, with its error messages."""
        try:
            hdr = self._elf.header
            self.machine = str(hdr["e_machine"])
            self.elf_class = self._elf.elfclass
            self.little_endian = bool(self._elf.little_endian)
            self.elf_type = str(hdr["e_type"])
            self.flags = int(hdr["e_flags"])
            self.sections = [_make_section(i, s, self._section_bytes) for i, s in
                             enumerate(self._elf.iter_sections()) if i > 0]
        except BuildError:
            raise
        except _MALFORMED as exc:
            raise _not_elf_error(self.path, exc) from exc

    @property
    def _elf(self) -> ELFFile:
        """pyelftools' view of the file, made on first use (DWARF, relocations)."""
        if self._elf_obj is None:
            try:
                self._elf_obj = ELFFile(io.BytesIO(self._blob))
            except _MALFORMED as exc:
                raise _not_elf_error(self.path, exc) from exc
        return self._elf_obj

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
    def _parse_symtab(self) -> List[Symbol]:
        # Decoded with struct straight from the section bytes (see reader.decode_symbols).
        symtab = self.get_section(".symtab")
        if symtab is None or symtab.type != "SHT_SYMTAB":
            return []
        head = self._headers.get(symtab.index)
        link = head[4] if head is not None else self._elf.get_section(symtab.index)["sh_link"]
        strtab = self._section_bytes(link)
        data = self._section_bytes(symtab.index)
        return decode_symbols(data, strtab, self.elf_class, self.little_endian, self._section_name)

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

    def iter_relocations(self) -> Iterator[Relocation]:
        """Every entry of every SHT_REL/SHT_RELA section, in file order."""
        return iter(self._relocations())

    @_reads("relocations")
    def _relocations(self) -> List[Relocation]:
        return _read_relocations(self._elf, self.machine, self._section_name)

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
                    _relocate_dwarf(self._elf, dw, self.machine, self.little_endian)
                else:
                    try:
                        dw = self._elf.get_dwarf_info()
                    except ELFRelocationError as exc:    # a machine neither of us knows
                        log.warning("%s: DWARF left unrelocated (%s)", self.path, exc)
                        dw = self._elf.get_dwarf_info(relocate_dwarf_sections=False)
                self._dwarf_cache = dw
        return self._dwarf_cache or None

    # DIE attribute look-ups along DW_AT_abstract_origin/specification (dwarf_types).
    _owner = staticmethod(_owner)
    _attr = staticmethod(_attr)
    _name = staticmethod(_name)

    def _ctype(self, die: Optional[DIE]) -> CType:
        """The CType of a type DIE (None means void); cached by DIE offset."""
        return self._ctype_builder.ctype(die)

    def _target(self, die: DIE) -> CType:
        """The CType named by DW_AT_type of ``die`` or of its origin (void when absent)."""
        return self._ctype_builder.target(die)

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
        if dw is None:
            return {}
        defined = self.defined_symbols()
        has_symtab = self._elf.get_section_by_name(".symtab") is not None
        return _parse_signatures(dw, self._ctype_builder, defined, has_symtab, self.machine)

    # --- build attributes -------------------------------------------------------------
    @_reads("build attributes")
    def attributes(self) -> Dict[str, Any]:
        """File-level build attributes (``.ARM.attributes``, ``.riscv.attributes``) by
        pyelftools' tag name without ``TAG_`` (``"ABI_VFP_ARGS"``, ``"ARCH"``); empty if none."""
        out: Dict[str, Any] = {}
        if not any(s.name in _ATTRIBUTE_SECTIONS for s in self.sections):
            return out
        for sec in self._elf.iter_sections():
            if sec.name not in _ATTRIBUTE_SECTIONS or not hasattr(sec, "iter_subsections"):
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
            self._types_index = _index_types(self._dwarf())
        die = _find_struct(self._types_index, name)
        if die is None:
            return None
        out: Dict[str, Tuple[int, int]] = {}
        _members(self._ctype_builder, die, 0, out)
        return out

    # --- symbolization ----------------------------------------------------------------
    def _line_table(self) -> _LineTable:
        """Line-program sequences as (start, end, row addresses, rows) sorted by start, their
        starts, and the running maximum of their ends."""
        if self._lines is None:
            self._lines = _build_line_table(self._dwarf())
        return self._lines

    def _line_for(self, addr: int) -> Tuple[Optional[str], Optional[int]]:
        return _line_for(self._line_table(), addr)

    def _function_at(self, addr: int) -> Optional[Tuple[str, int]]:
        """(name, offset) of the FUNC symbol containing ``addr``; GLOBAL wins ties."""
        if self._funcs is None:
            self._funcs = _build_function_index(self.iter_symbols(), self.machine)
        return _function_at(self._funcs, addr)

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
