"""The ELF reader layer of utvm-host: what the builder, the linker-script writer, the loader
and the fault reporter need to know about an object file or an executable.

Everything is read from the file itself (never by parsing binutils' text output), with
:mod:`struct` where speed matters and pyelftools for the rest:

* the header (machine, class, endianness, type, ``e_flags``), sections, ``.symtab`` symbols and
  relocations;
* from DWARF: C signatures of the externally visible functions (:meth:`ElfFile.signatures`),
  struct layouts (:meth:`ElfFile.struct_layout`) and address -> ``function+offset (file:line)``
  (:meth:`ElfFile.symbolize`);
* the bytes a loader must place at a virtual address (:meth:`ElfFile.read`).

Relocatable objects (``ET_REL``) carry DWARF that only makes sense after the relocations aimed
at the ``.debug_*`` sections are applied; :mod:`.relocations` applies them itself for EM_RISCV,
EM_ARM, EM_386 and EM_X86_64, and lets pyelftools do it for any other machine.

The whole file is read into memory when an :class:`ElfFile` is opened: nothing is read from
disk afterwards, so :meth:`Section.data` keeps working after :meth:`ElfFile.close`.

Modules, each importing only those listed before it:

* :mod:`.types`: the values handed out (:class:`Section`, :class:`Symbol`, :class:`Relocation`,
  :class:`CType`, :class:`Parameter`, :class:`Signature`, :class:`Location`);
* :mod:`.malformed`: how a malformed file becomes :class:`~utvm_host.errors.BuildError`;
* :mod:`.relocations`: REL/RELA entries, and the relocation of DWARF sections in ``.o`` files;
* :mod:`.reader`: ELF header, section headers and symbols decoded with struct;
* :mod:`.dwarf_types`: DWARF type DIE -> :class:`CType`, struct layouts;
* :mod:`.lines`: the line table and the function containing an address;
* :mod:`.signatures`: C signatures of the external functions;
* :mod:`.elffile`: :class:`ElfFile`, which ties them together and caches what it parsed.
"""
from __future__ import annotations

from .types import CType, Location, Parameter, Relocation, Section, Signature, Symbol
from .relocations import _apply_relocations
from .elffile import ElfFile

__all__ = ["ElfFile", "CType", "Parameter", "Signature", "Symbol", "Section", "Relocation",
           "Location"]
