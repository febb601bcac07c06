"""The ELF header, the section headers and the ``.symtab`` symbols, decoded with :mod:`struct`
(gABI "ELF Header", "Sections", "Symbol Table").

Building pyelftools' ELFFile costs milliseconds per file and its per-symbol parsing ~0.1 ms a
symbol, and load() reads several files: this fast path reads what every load needs, and
:class:`~utvm_host.elf.ElfFile` falls back to pyelftools (with its error messages) for
anything unusual.  Names are spelled exactly as pyelftools spells them (its own enum tables).

Imports only :mod:`.types` from the package.
"""
from __future__ import annotations

import struct
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from elftools.elf import enums as _enums
from elftools.elf.sections import Section as ElfSection

from .types import Section, Symbol

__all__: list = []

# gABI symbol table encodings (st_info type and binding, special st_shndx values).
_SYM_TYPES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS",
              10: "GNU_IFUNC"}
_SYM_BINDS = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "GNU_UNIQUE"}
_SPECIAL_SHNDX = {0: "SHN_UNDEF", 0xFFF1: "SHN_ABS", 0xFFF2: "SHN_COMMON"}
# Names exactly as pyelftools spells them (its own enum tables), for the struct fast path.
_E_MACHINE = {v: k for k, v in _enums.ENUM_E_MACHINE.items() if isinstance(v, int)}
_E_TYPE = {v: k for k, v in _enums.ENUM_E_TYPE.items() if isinstance(v, int)}
_SH_TYPE_BASE = {v: k for k, v in _enums.ENUM_SH_TYPE_BASE.items() if isinstance(v, int)}
_SH_TYPE_MACHINE = {
    machine: {v: k for k, v in table.items() if isinstance(v, int)}
    for machine, table in (("EM_ARM", _enums.ENUM_SH_TYPE_ARM), ("EM_AARCH64", _enums.ENUM_SH_TYPE_AARCH64),
                           ("EM_X86_64", _enums.ENUM_SH_TYPE_AMD64), ("EM_MIPS", _enums.ENUM_SH_TYPE_MIPS),
                           ("EM_RISCV", _enums.ENUM_SH_TYPE_RISCV))}

#: A raw section header as ElfFile keeps it: offset, size, type, flags, link.
_RawHeader = Tuple[int, int, int, int, int]


class _Headers(NamedTuple):
    """What the fast path read: the ELF header fields ElfFile exposes, its sections, and the
    raw headers by section index."""
    machine: str
    elf_class: int
    little_endian: bool
    elf_type: str
    flags: int
    sections: List[Section]
    raw: Dict[int, _RawHeader]


class _Table(NamedTuple):
    """The ELF header fields the fast path needs, the section headers, the name table."""
    machine: str
    wide: bool
    order: str
    e_type: int
    e_flags: int
    headers: List[tuple]
    names: bytes


def _unpack_ehdr(blob: bytes, order: str, wide: bool) -> Tuple[int, ...]:
    """e_type, e_machine, e_shoff, e_flags, e_shentsize, e_shnum, e_shstrndx (Elf32_Ehdr or
    Elf64_Ehdr); struct.error when ``blob`` is too short."""
    e_type, e_machine, _, _, _, e_shoff, e_flags, _, _, _, e_shentsize, e_shnum, e_shstrndx = \
        struct.unpack_from(order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"), blob, 16)
    return e_type, e_machine, e_shoff, e_flags, e_shentsize, e_shnum, e_shstrndx


def _table_fits(length: int, size: int, e_shoff: int, e_shentsize: int, e_shnum: int,
                e_shstrndx: int) -> bool:
    """Whether a section header table of ``e_shnum`` entries of ``size`` bytes lies inside a
    file of ``length`` bytes and holds its name table (index ``e_shstrndx``)."""
    return not (e_shnum == 0 or e_shentsize != size or e_shoff + e_shnum * size > length
                or e_shstrndx >= e_shnum)


def read_table(blob: bytes) -> Optional[_Table]:
    """The section header table of ``blob``, or None when anything looks unusual."""
    if len(blob) < 52 or blob[4] not in (1, 2) or blob[5] not in (1, 2):
        return None
    order = "<" if blob[5] == 1 else ">"
    wide = blob[4] == 2
    try:
        e_type, e_machine, e_shoff, e_flags, e_shentsize, e_shnum, e_shstrndx = \
            _unpack_ehdr(blob, order, wide)
        shdr = struct.Struct(order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII"))
        if not _table_fits(len(blob), shdr.size, e_shoff, e_shentsize, e_shnum, e_shstrndx):
            return None
        machine = _E_MACHINE.get(e_machine)
        if machine is None:
            return None
        headers = [shdr.unpack_from(blob, e_shoff + i * shdr.size) for i in range(e_shnum)]
        _, _, _, _, str_off, str_size, *_ = headers[e_shstrndx]
        names = blob[str_off:str_off + str_size]
    except struct.error:
        return None
    return _Table(machine, wide, order, e_type, e_flags, headers, names)


def _parse_headers_fast(blob: bytes, section_bytes: Callable[[int], bytes]) -> Optional[_Headers]:
    """Read the ELF header and section headers of ``blob`` with struct; None (leave the work
    to pyelftools, with its error messages) for anything unusual.  The sections read their
    contents through ``section_bytes(index)``."""
    table = read_table(blob)
    if table is None:
        return None
    types = dict(_SH_TYPE_BASE)
    types.update(_SH_TYPE_MACHINE.get(table.machine, {}))
    sections: List[Section] = []
    raw: Dict[int, _RawHeader] = {}
    names = table.names
    for i, (name_off, sh_type, flags, addr, offset, size, link, info, align, _) in enumerate(table.headers):
        if i == 0:
            continue
        end = names.find(b"\0", name_off)
        name = names[name_off:end if end >= 0 else None].decode("utf-8", "replace")
        sections.append(Section(name=name, index=i, type=types.get(sh_type, f"0x{sh_type:x}"), addr=addr,
                                size=size, align=align or 1, flags=flags, offset=offset,
                                _reader=lambda i=i: section_bytes(i)))
        raw[i] = (offset, size, sh_type, flags, link)
    return _Headers(machine=table.machine, elf_class=64 if table.wide else 32,
                    little_endian=table.order == "<", elf_type=_E_TYPE.get(table.e_type, str(table.e_type)),
                    flags=table.e_flags, sections=sections, raw=raw)


def _make_section(index: int, sec: ElfSection, section_bytes: Callable[[int], bytes]) -> Section:
    """A :class:`Section` from pyelftools' view of section ``index`` (the slow path)."""
    t = sec["sh_type"]
    return Section(name=sec.name, index=index, type=t if isinstance(t, str) else f"0x{t:x}",
                   addr=sec["sh_addr"], size=sec["sh_size"], align=sec["sh_addralign"] or 1,
                   flags=sec["sh_flags"], offset=sec["sh_offset"],
                   _reader=lambda: section_bytes(index))


def decode_symbols(data: bytes, strtab: bytes, elf_class: int, little_endian: bool,
                    section_name: Callable[[Union[int, str]], Optional[str]]) -> List[Symbol]:
    """The entries of a symbol table's contents ``data`` (Elf32_Sym / Elf64_Sym), index 0
    skipped; names come from ``strtab``, section names from ``section_name(index)``."""
    order = "<" if little_endian else ">"
    if elf_class == 64:
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
                           section_index=index, section_name=section_name(index)))
    return syms
