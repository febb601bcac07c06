"""C signatures of the externally visible functions a file defines, from DWARF.

Imports :mod:`.types`, :mod:`.dwarf_types` and :mod:`.lines` from the package.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo

from .dwarf_types import _CTypes, _attr, _name
from .lines import _file_name
from .types import Parameter, Signature, Symbol

__all__: list = []

_Found = Tuple[DIE, CompileUnit]
_PARAM_TAGS = ("DW_TAG_formal_parameter", "DW_TAG_unspecified_parameters")


def _is_external_definition(die: DIE) -> bool:
    """A DW_TAG_subprogram that is not a declaration and is DW_AT_external."""
    return (die.tag == "DW_TAG_subprogram" and "DW_AT_declaration" not in die.attributes
            and bool(_attr(die, "DW_AT_external")))


def _has_code(die: DIE) -> bool:
    """A function DIE with code (DW_AT_low_pc or DW_AT_ranges)."""
    return "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes


def _is_folded(die: DIE, sym: Symbol) -> bool:
    """Whether a DIE without code whose name has the defined symbol ``sym`` stands for a
    function identical code folding kept (a FUNC symbol; the DIE is neither the abstract
    instance of an inlined function nor a concrete instance of one)."""
    return (sym.type == "FUNC" and "DW_AT_inline" not in die.attributes
            and "DW_AT_abstract_origin" not in die.attributes)


def _collect(dw: DWARFInfo, defined: Dict[str, Symbol],
             has_symtab: bool) -> Tuple[Dict[str, List[_Found]], Dict[str, _Found]]:
    """The top-level external function DIEs, by name: those with code (low_pc or ranges),
    and those without code that still describe a function this file defines.

    Identical code folding (gcc -O2, -fipa-icf) keeps a folded function's symbol (a thunk or
    a copy) but leaves its DIE without code (no low_pc/ranges): such a DIE still describes a
    function this file defines when a FUNC symbol of its name is defined here, so it stands
    in when no DIE with code claims the name."""
    candidates: Dict[str, List[_Found]] = {}
    codeless: Dict[str, _Found] = {}
    for cu in dw.iter_CUs():
        for die in cu.get_top_DIE().iter_children():
            if not _is_external_definition(die):
                continue
            name = _name(die)
            if not name or (has_symtab and name not in defined):
                continue
            if _has_code(die):
                candidates.setdefault(name, []).append((die, cu))
            elif has_symtab and _is_folded(die, defined[name]):
                codeless.setdefault(name, (die, cu))
    return candidates, codeless


def _pick(dies: List[_Found], sym: Optional[Symbol], machine: str) -> _Found:
    """Choose among DIEs claiming one name (an out-of-line copy and clones such as
    ``vadd.part.0`` share an abstract origin): the one whose start and size match the
    symbol, else the first."""
    if len(dies) == 1 or sym is None:
        return dies[0]
    start = sym.value & ~1 if machine == "EM_ARM" else sym.value
    for die, cu in dies:
        a = die.attributes
        if "DW_AT_low_pc" in a and a["DW_AT_low_pc"].value == start and "DW_AT_high_pc" in a:
            hp = a["DW_AT_high_pc"]
            size = hp.value if hp.form != "DW_FORM_addr" else hp.value - start
            if size == sym.size:
                return die, cu
    return dies[0]


def _param_dies(die: DIE) -> List[DIE]:
    """The parameter DIEs (formal and ``...``) of function DIE ``die``: from the abstract
    instance when ``die`` is a concrete one (it is the source's list, with names), else from
    ``die``, else from the declaration its DW_AT_specification names."""
    chain = [die]                   # [abstract origins, deepest first], die, specification
    d = die
    while "DW_AT_abstract_origin" in d.attributes and len(chain) < 8:
        d = d.get_DIE_from_attribute("DW_AT_abstract_origin")
        chain.insert(0, d)
    if "DW_AT_specification" in die.attributes:
        chain.append(die.get_DIE_from_attribute("DW_AT_specification"))
    return next((k for k in ([c for c in d.iter_children() if c.tag in _PARAM_TAGS] for d in chain)
                 if k), [])


def _signature(dw: DWARFInfo, ctypes: _CTypes, name: str, die: DIE, cu: CompileUnit) -> Signature:
    """The signature ``name`` of function DIE ``die`` of ``cu`` (see _param_dies)."""
    kids = _param_dies(die)
    params = tuple(Parameter(_name(c) or "", ctypes.target(c)) for c in kids
                   if c.tag == "DW_TAG_formal_parameter")
    return Signature(name=name, return_type=ctypes.target(die), params=params,
                     variadic=any(c.tag == "DW_TAG_unspecified_parameters" for c in kids),
                     file=_file_name(dw, cu, _attr(die, "DW_AT_decl_file")),
                     line=_attr(die, "DW_AT_decl_line"))


def _parse_signatures(dw: DWARFInfo, ctypes: _CTypes, defined: Dict[str, Symbol],
                      has_symtab: bool, machine: str) -> Dict[str, Signature]:
    """Signatures of the external functions of ``dw`` with code, by name (see
    :meth:`ElfFile.signatures`); ``defined`` is the file's defined symbols, which filter
    the functions when ``has_symtab``."""
    out: Dict[str, Signature] = {}
    candidates, codeless = _collect(dw, defined, has_symtab)
    for name, dies in candidates.items():
        die, cu = _pick(dies, defined.get(name), machine)
        out[name] = _signature(dw, ctypes, name, die, cu)
    for name, (die, cu) in codeless.items():
        if name not in out:
            out[name] = _signature(dw, ctypes, name, die, cu)
    return out
