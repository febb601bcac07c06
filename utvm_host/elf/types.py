"""The values the ELF reader hands out: sections, symbols, relocations, C types, function
signatures and source locations.

Plain frozen dataclasses; nothing here parses a file.  Bottom of the package: imports nothing
from it.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple, Union

__all__ = ["Section", "Symbol", "Relocation", "CType", "Parameter", "Signature", "Location"]

_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4


@dataclass(frozen=True)
class Section:
    """One section header.

    Parameters
    ----------
    name : str
        The section's name (``".text"``).
    index : int
        Its index in the section header table (index 0, the null section, is never listed).
    type : str
        ``sh_type`` as pyelftools spells it (``"SHT_PROGBITS"``), or ``"0x..."`` if unknown.
    addr : int
        ``sh_addr``.
    size : int
        ``sh_size``.
    align : int
        ``sh_addralign``, with 0 reported as 1.
    flags : int
        ``sh_flags``.
    offset : int
        ``sh_offset``, where the contents start in the file.

    Attributes
    ----------
    alloc, write, exec : bool
        Whether ``SHF_ALLOC``, ``SHF_WRITE``, ``SHF_EXECINSTR`` are set.
    """
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
    """One ``.symtab`` entry.

    Parameters
    ----------
    name : str
        The symbol's name (``''`` for section symbols of ``.o`` files).
    value : int
        ``st_value``.
    size : int
        ``st_size``.
    type : str
        ``st_info`` type without its ``STT_`` prefix (``"FUNC"``, ``"OBJECT"``, ...).
    bind : str
        ``st_info`` binding without its ``STB_`` prefix (``"GLOBAL"``, ``"WEAK"``, ...).
    section_index : int or str
        ``st_shndx``: an int, or ``'SHN_UNDEF'``/``'SHN_ABS'``/``'SHN_COMMON'``.
    section_name : str or None
        The name of the section ``section_index`` names, None for the special indexes.

    Attributes
    ----------
    defined : bool
        False for ``SHN_UNDEF`` symbols.
    """
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
    """One REL/RELA entry.

    Parameters
    ----------
    section : str
        The section it patches.
    offset : int
        ``r_offset``.
    type : int
        The relocation type number.
    type_name : str
        Its name (``"R_RISCV_32"``), or the number as a string when unknown.
    symbol : str
        The symbol name, or for a section symbol (nameless in ``.o`` files) the section's
        name, as readelf shows it; ``''`` when the entry has no symbol.
    addend : int
        ``r_addend``; 0 for REL entries.
    """
    section: str
    offset: int
    type: int
    type_name: str
    symbol: str
    addend: int


@dataclass(frozen=True)
class CType:
    """A C type as a caller sees it.

    Typedefs, volatile, restrict and _Atomic are looked through (volatile/restrict/_Atomic
    never appear in ``spelling``; typedef names do).

    Parameters
    ----------
    kind : str
        ``"void"``, ``"int"``, ``"float"``, ``"bool"``, ``"pointer"``, ``"struct"``,
        ``"union"``, ``"enum"``, ``"array"``, ``"function"`` or ``"unknown"``.
    spelling : str
        The type as C source would write it (``"const float *"``).
    size : int or None
        Its size in bytes, None when unknown (void, functions, incomplete arrays).
    signed : bool
        Whether an integer (or enum) type is signed.
    const : bool
        Whether the type itself is const-qualified.
    pointee : CType or None
        What a pointer points to; None for every other kind.
    """
    kind: str
    spelling: str
    size: Optional[int]
    signed: bool
    const: bool
    pointee: Optional["CType"]


@dataclass(frozen=True)
class Parameter:
    """One formal parameter of a :class:`Signature`.

    Parameters
    ----------
    name : str
        The parameter's source name (``''`` when DWARF gives none).
    type : CType
        Its type.
    """
    name: str
    type: CType


@dataclass(frozen=True)
class Signature:
    """The C signature of a function, from DWARF.

    Parameters
    ----------
    name : str
        The function's name.
    return_type : CType
        What it returns (kind ``"void"`` for void functions).
    params : tuple of Parameter
        Its formal parameters, in order.
    variadic : bool
        Whether it takes ``...``.
    file : str or None
        The declaring source path as DWARF records it.
    line : int or None
        The declaration's line in ``file``.
    """
    name: str
    return_type: CType
    params: Tuple[Parameter, ...]
    variadic: bool
    file: Optional[str]
    line: Optional[int]


@dataclass(frozen=True)
class Location:
    """Where an address is: ``function+offset (file:line)``, parts missing when unknown.

    Parameters
    ----------
    function : str or None
        The FUNC symbol that holds the address.
    offset : int
        The address's offset from the start of ``function`` (0 without one).
    file : str or None
        The source file of the line-table row that covers the address.
    line : int or None
        The row's line.
    address : int
        The address asked about.
    """
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
