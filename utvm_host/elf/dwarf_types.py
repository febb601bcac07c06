"""DWARF type information: DIE attribute look-ups that follow abstract origins and
specifications, DWARF type DIE -> :class:`CType`, and struct/union layouts.

Imports :mod:`.types` and :mod:`.relocations` (for the ULEB128 decoder) from the package.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo

from .relocations import _read_uleb
from .types import CType

__all__: list = []

_VOID = CType("void", "void", None, False, False, None)
_UNKNOWN = CType("unknown", "<unknown>", None, False, False, None)

# DW_AT_encoding of a base type -> (kind, signed); anything else is ("unknown", False).
_ENCODINGS = {0x5: ("int", True), 0x6: ("int", True), 0x7: ("int", False),
              0x8: ("int", False), 0x10: ("int", False), 0x4: ("float", False),
              0x2: ("bool", False)}
_LOOKED_THROUGH = ("DW_TAG_typedef", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
                   "DW_TAG_atomic_type")
_AGGREGATES = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
               "DW_TAG_enumeration_type": "enum"}
_STRUCTS = ("DW_TAG_structure_type", "DW_TAG_union_type")

#: A struct layout as struct_layout() returns it: {member: (byte offset, byte size)}.
_Layout = Dict[str, Tuple[int, int]]


# --- attributes along DW_AT_abstract_origin / DW_AT_specification ---------------------------
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


def _attr(die: DIE, name: str) -> Any:
    """Attribute value of ``die``, following DW_AT_abstract_origin/specification."""
    owner = _owner(die, name)
    return owner.attributes[name].value if owner is not None else None


def _name(die: DIE) -> Optional[str]:
    """DW_AT_name of ``die`` (or of its origin) as text."""
    v = _attr(die, "DW_AT_name")
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


# --- type DIE -> CType ------------------------------------------------------------------------
def _subrange_count(sub: DIE) -> Optional[int]:
    """The element count of an array dimension, None when unknown (``[]``, VLAs)."""
    a = sub.attributes
    n = (a["DW_AT_count"].value if "DW_AT_count" in a else
         a["DW_AT_upper_bound"].value + 1 if "DW_AT_upper_bound" in a else None)
    return n if isinstance(n, int) else None


def _array_size(elem: CType, counts: List[Optional[int]]) -> Optional[int]:
    """The size of an array of ``elem`` with dimensions ``counts``, None if any is unknown."""
    if elem.size is None or not counts or None in counts:
        return None
    size = elem.size
    for n in counts:
        size *= n
    return size


def _const_spelling(inner: CType) -> str:
    """How C spells ``inner`` const-qualified (``const int``, ``int *const``,
    ``int (*const)(void)``)."""
    if inner.kind != "pointer":
        return f"const {inner.spelling}"
    if "(*)" in inner.spelling:
        return inner.spelling.replace("(*)", "(*const)", 1)
    return f"{inner.spelling}const"


class _CTypes:
    """DWARF type DIE -> :class:`CType`, cached by DIE offset in ``cache`` (a dict the owner
    may clear)."""

    def __init__(self, cache: Dict[int, CType]):
        self.cache = cache
        self._builders: Dict[str, Callable[[DIE, Optional[str], Optional[int]], CType]] = {
            "DW_TAG_base_type": self._base,
            "DW_TAG_const_type": self._const,
            "DW_TAG_pointer_type": self._pointer,
            "DW_TAG_array_type": self._array,
            "DW_TAG_subroutine_type": self._subroutine,
        }
        self._builders.update(dict.fromkeys(_LOOKED_THROUGH, self._looked_through))
        self._builders.update(dict.fromkeys(_AGGREGATES, self._aggregate))

    def ctype(self, die: Optional[DIE]) -> CType:
        """The CType of a type DIE (None means void); cached by DIE offset."""
        if die is None:
            return _VOID
        hit = self.cache.get(die.offset)
        if hit is None:
            self.cache[die.offset] = _UNKNOWN          # guards against cycles
            hit = self.cache[die.offset] = self._build(die)
        return hit

    def target(self, die: DIE) -> CType:
        """The CType named by DW_AT_type of ``die`` or of its origin (void when absent)."""
        owner = _owner(die, "DW_AT_type")
        return self.ctype(owner.get_DIE_from_attribute("DW_AT_type") if owner else None)

    def _build(self, die: DIE) -> CType:
        name = _name(die)
        size = die.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in die.attributes else None
        builder = self._builders.get(die.tag)
        if builder is None:
            return CType("unknown", name or "<unknown>", size, False, False, None)
        return builder(die, name, size)

    def _base(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        enc = die.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in die.attributes else 0
        kind, signed = _ENCODINGS.get(enc, ("unknown", False))
        return CType(kind, name or "<unknown>", size, signed, False, None)

    def _looked_through(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        """typedef (which keeps its name as the spelling), volatile, restrict, _Atomic."""
        inner = self.target(die)
        return replace(inner, spelling=name) if die.tag == "DW_TAG_typedef" and name else inner

    def _const(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        inner = self.target(die)
        if inner.const:
            return inner
        return replace(inner, const=True, spelling=_const_spelling(inner))

    def _pointer(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        size = size or die.cu["address_size"]
        pointee = self.target(die)
        if pointee.kind == "function":      # 'int (int, float)' -> 'int (*)(int, float)'
            ret, _, args = pointee.spelling.partition(" (")
            return CType("pointer", f"{ret} (*)({args}", size, False, False, pointee)
        star = "*" if pointee.kind == "pointer" and pointee.spelling.endswith("*") else " *"
        return CType("pointer", pointee.spelling + star, size, False, False, pointee)

    def _aggregate(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        """struct, union, enum: spelled with their tag; an enum is signed when its
        underlying type is, or (without one) when an enumerator is negative."""
        kind = _AGGREGATES[die.tag]
        signed = False
        if kind == "enum":
            if "DW_AT_type" in die.attributes:
                signed = self.target(die).signed
            else:
                signed = any(c.attributes.get("DW_AT_const_value") is not None
                             and c.attributes["DW_AT_const_value"].value < 0
                             for c in die.iter_children())
        return CType(kind, f"{kind} {name or '<anonymous>'}", size, signed, False, None)

    def _array(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        elem = self.target(die)
        counts = [_subrange_count(c) for c in die.iter_children() if c.tag == "DW_TAG_subrange_type"]
        if size is None:
            size = _array_size(elem, counts)
        dims = "".join(f"[{'' if n is None else n}]" for n in counts) or "[]"
        return CType("array", elem.spelling + dims, size, False, False, None)

    def _subroutine(self, die: DIE, name: Optional[str], size: Optional[int]) -> CType:
        ret = self.target(die)
        args = [self.target(c).spelling for c in die.iter_children()
                if c.tag == "DW_TAG_formal_parameter"]
        if any(c.tag == "DW_TAG_unspecified_parameters" for c in die.iter_children()):
            args.append("...")
        if not args and die.attributes.get("DW_AT_prototyped"):
            args = ["void"]
        return CType("function", f"{ret.spelling} ({', '.join(args)})", None, False, False, None)


# --- struct layouts ---------------------------------------------------------------------------
def _index_types(dw: Optional[DWARFInfo]) -> Dict[str, DIE]:
    """Struct, union and typedef DIEs that are not declarations, by name; a definition with
    members wins over an empty one."""
    index: Dict[str, DIE] = {}
    for cu in (dw.iter_CUs() if dw is not None else ()):
        for die in cu.iter_DIEs():
            if die.tag in ("DW_TAG_structure_type", "DW_TAG_union_type",
                           "DW_TAG_typedef") and "DW_AT_declaration" not in die.attributes:
                key = _name(die)
                if key and (key not in index or not index[key].has_children):
                    index[key] = die
    return index


def _find_struct(index: Dict[str, DIE], name: str) -> Optional[DIE]:
    """The complete struct/union DIE whose tag is ``name`` (``'struct foo'`` accepted) or
    that the typedef ``name`` denotes; None if there is none."""
    key = name.split(" ", 1)[1] if name.startswith(("struct ", "union ")) else name
    die = index.get(key)
    while die is not None and die.tag != "DW_TAG_structure_type" and die.tag != "DW_TAG_union_type":
        die = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
    if die is None or not die.has_children:
        return None
    return die


def _member_offset(attributes: Dict[str, Any]) -> int:
    """The byte offset of a DW_TAG_member within its struct."""
    if "DW_AT_data_member_location" in attributes:
        loc = attributes["DW_AT_data_member_location"].value
        if isinstance(loc, list):                   # DW_OP_plus_uconst ULEB128
            return _read_uleb(bytearray(loc[1:]), 0)[0] if loc and loc[0] == 0x23 else 0
        return loc
    if "DW_AT_data_bit_offset" in attributes:
        return attributes["DW_AT_data_bit_offset"].value // 8
    return 0


def _struct_die_of(member: DIE) -> DIE:
    """The struct/union DIE an anonymous member's type names (through typedefs, qualifiers)."""
    inner = member.get_DIE_from_attribute("DW_AT_type")
    while inner.tag not in _STRUCTS:
        inner = inner.get_DIE_from_attribute("DW_AT_type")
    return inner


def _members(ctypes: _CTypes, die: DIE, base: int, out: _Layout) -> None:
    """Add the members of struct/union ``die`` (placed at ``base``) to ``out``, flattening
    anonymous struct/union members."""
    for m in die.iter_children():
        if m.tag != "DW_TAG_member":
            continue
        off = _member_offset(m.attributes)
        t = ctypes.target(m)
        mname = _name(m)
        if mname is None and t.kind in ("struct", "union"):
            _members(ctypes, _struct_die_of(m), base + off, out)
        elif mname is not None:
            out[mname] = (base + off, t.size or 0)

