"""GNU ``ar`` archives read the way the linker reads them, for the size estimate: the symbol
index, and per member the symbols it defines and needs and its worst-case section sizes."""
from __future__ import annotations

import os
import struct
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from ..elf.reader import decode_symbols, read_table

#: ``classify(input section name)`` -> output section, ``""`` (discarded) or None (orphan).
Classify = Callable[[str], Optional[str]]
_SHT_SYMTAB = 2
_SHF_ALLOC = 2


def _add(sizes: Dict[str, Tuple[int, int]], section: str, size: int, align: int) -> None:
    """Add an input of ``size`` bytes aligned ``align`` to ``sizes[section]``, with the most
    padding its alignment can cost (``align - 1``)."""
    align = max(align, 1)
    total, most = sizes.get(section, (0, 1))
    sizes[section] = (total + size + align - 1, max(most, align))


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
        if key not in cls._cache:
            cls._cache[key] = cls._read(path)
        return cls._cache[key]

    @classmethod
    def _read(cls, path: str) -> Optional["_Archive"]:
        """The archive's symbol index read from its first member, or None without one."""
        try:
            with open(path, "rb") as f:
                if f.read(8) != b"!<arch>\n":
                    return None
                head = f.read(60)
                name, size = head[:16].rstrip(), int(head[48:58])
                if name not in (b"/", b"/SYM64/"):
                    return None
                return cls(path, _armap(f.read(size), 8 if name == b"/SYM64/" else 4))
        except (OSError, ValueError, struct.error):
            return None

    def member(self, offset: int, classify: Classify) -> Optional[_Member]:
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


def _member_blob(path: str, offset: int) -> Optional[bytes]:
    """The bytes of the archive member whose header is at ``offset``, or None."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            head = f.read(60)
            return f.read(int(head[48:58]))
    except (OSError, ValueError):
        return None


def _section_sizes(table, classify: Classify) -> Tuple[Dict[str, Tuple[int, int]], bool, Optional[tuple]]:
    """Worst-case ``(bytes, alignment)`` per output section of an object's allocatable input
    sections; whether one is an orphan; and its symbol table's ``(offset, size, link)``."""
    sizes: Dict[str, Tuple[int, int]] = {}
    orphans = False
    symtab = None
    for name_off, sh_type, flags, _addr, sh_offset, size, link, _info, align, _ in table.headers[1:]:
        if sh_type == _SHT_SYMTAB:
            symtab = (sh_offset, size, link)
        if not flags & _SHF_ALLOC or not size:
            continue
        end = table.names.find(b"\0", name_off)
        out = classify(table.names[name_off:end].decode("utf-8", "replace"))
        if out:
            _add(sizes, out, size, align)
        elif out is None:
            orphans = True
    return sizes, orphans, symtab


def _member_symbols(table, blob: bytes, symtab: tuple,
                    sizes: Dict[str, Tuple[int, int]]) -> Tuple[Set[str], Set[str]]:
    """The global/weak symbols an object defines and those it references, from its symbol
    table; COMMON symbols are added to ``sizes[".bss"]``."""
    defines: Set[str] = set()
    needs: Set[str] = set()
    sym_off, sym_size, link = symtab
    str_off, str_size = table.headers[link][4], table.headers[link][5]
    symbols = decode_symbols(blob[sym_off:sym_off + sym_size], blob[str_off:str_off + str_size],
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
    return defines, needs


def _read_member(path: str, offset: int, classify: Classify) -> Optional[_Member]:
    """Parse the ELF object at ``offset`` of archive ``path``: defined/undefined global
    symbols and the worst-case ``(bytes, alignment)`` it adds to each output section
    (each input section's size plus its alignment minus one; COMMON symbols in ``.bss``)."""
    blob = _member_blob(path, offset)
    if blob is None:
        return None
    table = read_table(blob)
    if table is None:
        return None
    sizes, orphans, symtab = _section_sizes(table, classify)
    defines: Set[str] = set()
    needs: Set[str] = set()
    if symtab is not None:
        defines, needs = _member_symbols(table, blob, symtab, sizes)
    return _Member(frozenset(defines), frozenset(needs - defines), sizes, orphans)
