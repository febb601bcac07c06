"""Address -> source: the DWARF line table (``file:line``), the FUNC symbol that holds an
address (``function+offset``), and the file names of a compile unit's line program.

Imports only :mod:`.types` from the package.
"""
from __future__ import annotations

import bisect
import posixpath
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.dwarfinfo import DWARFInfo

from .types import Symbol

__all__: list = []

#: One line-program sequence: (start, end, row addresses, rows as (file, line)).
_Sequence = Tuple[int, int, List[int], List[Tuple[Optional[str], int]]]


class _LineTable(NamedTuple):
    """Line-program sequences sorted by start, their starts, and the running maximum of
    their ends."""
    seqs: List[_Sequence]
    starts: List[int]
    max_end: List[int]


class _FunctionIndex(NamedTuple):
    """FUNC symbols sorted by start (GLOBAL first among equal starts), their starts, and the
    running maximum of their ends."""
    starts: List[int]
    syms: List[Symbol]
    max_end: List[int]


def _file_name(dw: DWARFInfo, cu: CompileUnit, index: Optional[int]) -> Optional[str]:
    """The path of file ``index`` of ``cu``'s line program (DWARF 5 counts from 0)."""
    lp = dw.line_program_for_CU(cu)
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


def _running_max(ends: Iterable[int]) -> List[int]:
    max_end, top = [], -1
    for end in ends:
        top = max(top, end)
        max_end.append(top)
    return max_end


def _cu_sequences(dw: DWARFInfo, cu: CompileUnit, seqs: List[_Sequence]) -> None:
    """Append the sequences of ``cu``'s line program to ``seqs``; when several rows share an
    address, the last one wins."""
    lp = dw.line_program_for_CU(cu)
    if lp is None:
        return
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
            files[st.file] = _file_name(dw, cu, st.file)
        if addrs and addrs[-1] == st.address:
            rows[-1] = (files[st.file], st.line)     # last row for an address wins
        else:
            addrs.append(st.address)
            rows.append((files[st.file], st.line))


def _build_line_table(dw: Optional[DWARFInfo]) -> _LineTable:
    """The line table of every compile unit of ``dw`` (empty without DWARF)."""
    seqs: List[_Sequence] = []
    for cu in (dw.iter_CUs() if dw is not None else ()):
        _cu_sequences(dw, cu, seqs)
    seqs.sort(key=lambda s: s[0])
    return _LineTable(seqs, [s[0] for s in seqs], _running_max(s[1] for s in seqs))


def _line_for(table: _LineTable, addr: int) -> Tuple[Optional[str], Optional[int]]:
    """(file, line) of the row with the greatest address <= ``addr`` in the sequence that
    holds ``addr``; (None, None) when no sequence does."""
    seqs, starts, max_end = table
    k = bisect.bisect_right(starts, addr) - 1
    while k >= 0 and max_end[k] > addr:     # only sequences that can still reach addr
        _, end, addrs, rows = seqs[k]
        if addr < end:
            return rows[bisect.bisect_right(addrs, addr) - 1]
        k -= 1
    return None, None


def _build_function_index(symbols: Iterable[Symbol], machine: str) -> _FunctionIndex:
    """The named FUNC symbols of ``symbols`` (Thumb bit cleared on Arm), for _function_at."""
    mask = ~1 if machine == "EM_ARM" else ~0
    funcs = sorted(((s.value & mask, s) for s in symbols if s.type == "FUNC" and s.name),
                   key=lambda t: (t[0], t[1].bind != "GLOBAL"))
    return _FunctionIndex([t[0] for t in funcs], [t[1] for t in funcs],
                          _running_max(start + max(s.size, 1) for start, s in funcs))


def _function_at(index: _FunctionIndex, addr: int) -> Optional[Tuple[str, int]]:
    """(name, offset) of the FUNC symbol containing ``addr``; the closest start wins, GLOBAL
    wins ties."""
    starts, syms, max_end = index
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
