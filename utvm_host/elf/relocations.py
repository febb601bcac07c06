"""Relocations: the entries of SHT_REL/SHT_RELA sections as :class:`Relocation` values, and
the relocation of DWARF sections in relocatable objects.

Relocatable objects (``ET_REL``) carry DWARF that only makes sense after the relocations aimed
at the ``.debug_*`` sections are applied.  pyelftools 0.33 applies x86/x86-64/ARM ones but
raises ``ELFRelocationError`` for every RISC-V type (``R_RISCV_32``, the ``ADD``/``SUB``/``SET``
pairs that encode code lengths under linker relaxation, ...), so this module applies the
relocations of DWARF sections itself for EM_RISCV, EM_ARM, EM_386 and EM_X86_64 (the types
compilers emit into debug sections); :class:`~utvm_host.elf.ElfFile` lets pyelftools do it
for any other machine.

Imports only :mod:`.types` from the package.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.descriptions import describe_reloc_type
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationHandler, RelocationSection
from elftools.elf.sections import SymbolTableSection

from .types import Relocation

__all__: list = []

# The package's logger, as before the package was split into modules.
log = logging.getLogger("utvm_host.elf")

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
_DWARF_SECTION_ATTRS = (
    "debug_info_sec", "debug_aranges_sec", "debug_abbrev_sec", "debug_frame_sec",
    "eh_frame_sec", "debug_str_sec", "debug_loc_sec", "debug_ranges_sec", "debug_line_sec",
    "debug_pubtypes_sec", "debug_pubnames_sec", "debug_addr_sec", "debug_str_offsets_sec",
    "debug_line_str_sec", "debug_loclists_sec", "debug_rnglists_sec", "debug_types_sec")


def _read_uleb(buf: bytearray, pos: int) -> Tuple[int, int]:
    """The ULEB128 at ``buf[pos]``: (value, length in bytes)."""
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


def _relocate_dwarf(elf: ELFFile, dw: DWARFInfo, machine: str, little: bool) -> None:
    """Apply the relocations aimed at each DWARF section of ``dw`` to its in-memory copy
    (``machine`` must be one of the machines of ``_RECIPES``)."""
    handler = RelocationHandler(elf)
    for attr in _DWARF_SECTION_ATTRS:
        desc = getattr(dw, attr, None)
        sec = elf.get_section_by_name(desc.name) if desc is not None else None
        relsec = handler.find_relocations_for_section(sec) if sec is not None else None
        if relsec is None:
            continue
        symtab = elf.get_section(relsec["sh_link"])
        buf = bytearray(desc.stream.getvalue())
        _apply_relocations(buf, relsec, symtab, machine, little, sec["sh_addr"])
        desc.stream.seek(0)
        desc.stream.write(buf)


def _reloc_type_name(elf: ELFFile, machine: str, rtype: int) -> str:
    """The name of relocation type ``rtype`` of ``machine``, or ``str(rtype)`` if unknown."""
    recipe = _RECIPES.get(machine, {}).get(rtype)
    if recipe is not None:
        return recipe[0]
    if machine == "EM_RISCV":
        return "R_RISCV_" + _RISCV_NAMES[rtype] if rtype in _RISCV_NAMES else str(rtype)
    name = describe_reloc_type(rtype, elf)
    return name if name.startswith("R_") else str(rtype)


def _read_relocations(elf: ELFFile, machine: str,
                      section_name: Callable[[object], Optional[str]]) -> List[Relocation]:
    """Every entry of every SHT_REL/SHT_RELA section of ``elf``, in file order;
    ``section_name`` maps a section index to its name (None when there is no such section)."""
    out: List[Relocation] = []
    for relsec in elf.iter_sections():
        if not isinstance(relsec, RelocationSection):
            continue
        target = section_name(relsec["sh_info"]) or ""
        symtab = elf.get_section(relsec["sh_link"])
        for rel in relsec.iter_relocations():
            name = _symbol_name(rel, symtab, section_name)
            out.append(Relocation(section=target, offset=rel["r_offset"],
                                  type=rel["r_info_type"],
                                  type_name=_reloc_type_name(elf, machine, rel["r_info_type"]),
                                  symbol=name, addend=rel["r_addend"] if rel.is_RELA() else 0))
    return out


def _symbol_name(rel: Any, symtab: Any, section_name: Callable[[object], Optional[str]]) -> str:
    """The symbol a relocation names, as readelf shows it: a section symbol (nameless in
    ``.o`` files) by its section's name; ``''`` for none."""
    if not (rel["r_info_sym"] and isinstance(symtab, SymbolTableSection)):
        return ""
    sym = symtab.get_symbol(rel["r_info_sym"])
    name = sym.name
    if not name and sym["st_info"]["type"] == "STT_SECTION":
        name = section_name(sym["st_shndx"]) or ""
    return name
