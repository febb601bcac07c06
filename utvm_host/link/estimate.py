"""Upper bounds of a library's linked section sizes before any link (the first step of a
placement, see :mod:`utvm_host.link`): its input sections as the library script places them,
plus every archive member the link could pull, with their worst alignment padding."""
from __future__ import annotations

import fnmatch
import logging
import os
import re
import shlex
import struct
import subprocess
from typing import Dict, Iterator, List, Mapping, Optional, Set, Tuple

from ..elf import ElfFile
from ..errors import BuildError
from ..toolchain import Library, Toolchain
from .archive import _add, _Archive, _Member

log = logging.getLogger("utvm_host.link")

Sizes = Dict[str, Tuple[int, int]]


def _script_rules(template: str) -> List[Tuple[Optional[str], List[str]]]:
    """``[(output section or None for /DISCARD/, [input section patterns])]`` of the library
    script, in its order (the linker puts an input section in the first rule that matches)."""
    rules: List[Tuple[Optional[str], List[str]]] = []
    body = re.sub(r"/\*.*?\*/", " ", template, flags=re.S)
    for m in re.finditer(r"(/DISCARD/|\.[\w.]+)[^:{}]*:\s*\{(.*?)\n\s*\}", body, flags=re.S):
        name = None if m.group(1) == "/DISCARD/" else m.group(1)
        patterns: List[str] = []
        for group in re.findall(r"\*\(([^)]*)\)", m.group(2)):
            patterns += group.split()
        rules.append((name, patterns))
    return rules


def _defined_symbols(elf: ElfFile, defsyms: Mapping[str, int], sizes: Sizes) -> Set[str]:
    """The names ``defsyms`` and the object define; the object's COMMON symbols are added to
    ``sizes[".bss"]``."""
    defined = set(defsyms)
    for sym in elf.iter_symbols():
        if sym.name and sym.bind in ("GLOBAL", "WEAK") and sym.defined:
            defined.add(sym.name)
            if sym.section_index == "SHN_COMMON":
                _add(sizes, ".bss", sym.size, max(sym.value, 1))
    return defined


def _add_member(sizes: Sizes, member: _Member) -> None:
    """Add a member's worst-case sizes (their padding counted already) to ``sizes``."""
    for section, (size, align) in member.sizes.items():
        total, most = sizes.get(section, (0, 1))
        sizes[section] = (total + size, max(most, align))


class SizeEstimator:
    """Upper bounds of a library's output sections before any link (see the module docstring).

    ``estimate(lib, defsyms)`` -> ``{section: (bytes, alignment)}`` or None when no sound bound
    can be made. The archives of a toolchain's link are found once (``gcc -###``) and read
    lazily (only the index and the members a library could pull); estimates are cached per
    library and set of external names.
    """

    _inputs: Dict[tuple, Optional[List[str]]] = {}

    def __init__(self, toolchain: Toolchain, template: str):
        self.toolchain = toolchain
        self.rules = _script_rules(template)
        #: Symbols the script or the linker itself defines.
        self.provided = set(re.findall(r"PROVIDE(?:_HIDDEN)?\s*\(\s*([^\s=)]+)\s*=", template))
        self.provided.add("_GLOBAL_OFFSET_TABLE_")
        self._classes: Dict[str, Optional[str]] = {}
        self._cache: Dict[tuple, Optional[Sizes]] = {}

    def classify(self, name: str) -> Optional[str]:
        """The output section of input section ``name``: ``.text`` ..., ``""`` when discarded,
        None when the script places it nowhere (the link would make an orphan section)."""
        if name not in self._classes:
            out: Optional[str] = None
            for section, patterns in self.rules:
                if any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
                    out = section or ""
                    break
            self._classes[name] = out
        return self._classes[name]

    def archives(self) -> Optional[List[_Archive]]:
        """The archives the link searches, in order (the driver's ``-###`` resolved against its
        ``-L`` folders), or None when one cannot be found or read as an indexed archive."""
        tc = self.toolchain
        key = (tc.cc_name, tuple(tc.ldflags), tuple(tc.libs))
        if key not in self._inputs:
            self._inputs[key] = _link_archives(tc)
        paths = self._inputs[key]
        if paths is None:
            return None
        archives = [_Archive.open(p) for p in paths]
        return None if any(a is None for a in archives) else archives   # type: ignore[misc]

    def estimate(self, lib: Library, defsyms: Mapping[str, int]) -> Optional[Sizes]:
        """An upper bound of each output section of ``lib`` linked with ``defsyms`` defined.

        Parameters
        ----------
        lib : Library
            The library to place.
        defsyms : mapping of str to int
            Symbols defined elsewhere on the device (only their names matter).

        Returns
        -------
        dict or None
            ``{section: (bytes, alignment)}``, or None when no sound bound can be made (the
            exact path then measures). Cached per library and set of names.
        """
        key = (lib.path, frozenset(defsyms))
        if key not in self._cache:
            try:
                self._cache[key] = self._estimate(lib, defsyms)
            except (OSError, BuildError, ValueError, struct.error) as exc:   # no bound: the exact path
                log.debug("no size estimate for %s: %s", lib.name, exc)
                self._cache[key] = None
        found = self._cache[key]
        return dict(found) if found is not None else None

    def _estimate(self, lib: Library, defsyms: Mapping[str, int]) -> Optional[Sizes]:
        elf = lib.elf()
        sizes = self._input_sizes(elf)
        if sizes is None:
            return None   # an orphan section: the exact path names it
        defined = _defined_symbols(elf, defsyms, sizes)
        wanted = [n for n in elf.undefined_symbols() if n not in defined]
        if not wanted:
            return sizes
        archives = self.archives()
        if archives is None or self._undefinable(elf, wanted, archives):
            return None
        return sizes if self._add_members(archives, wanted, defined, sizes) else None

    def _input_sizes(self, elf: ElfFile) -> Optional[Sizes]:
        """The object's own allocatable sections per output section, or None for an orphan."""
        sizes: Sizes = {}
        for sec in elf.sections:
            if not sec.alloc or not sec.size:
                continue
            out = self.classify(sec.name)
            if out is None:
                return None
            if out:
                _add(sizes, out, sec.size, sec.align)
        return sizes

    def _undefinable(self, elf: ElfFile, wanted: List[str], archives: List[_Archive]) -> bool:
        """Whether a strong reference of ``wanted`` is defined by nothing: the link fails, and
        measuring names it (one link, as before, instead of a failed link and then the measuring one)."""
        strong = {s.name for s in elf.iter_symbols() if s.bind == "GLOBAL" and not s.defined}
        return any(n in strong and n not in self.provided and not any(n in a.index for a in archives)
                   for n in wanted)

    def _add_members(self, archives: List[_Archive], wanted: List[str], defined: Set[str], sizes: Sizes) -> bool:
        """Add every member any archive's index offers for a symbol still undefined, and what
        those need in turn (a superset of what the linker pulls in any search order), to
        ``sizes``. False when a member cannot be read or has an orphan section (the link
        likely fails: measuring says why)."""
        taken: Set[Tuple[int, int]] = set()
        seen: Set[str] = set(wanted)
        while wanted:
            for member in self._offered(archives, wanted.pop(), taken):
                if member is None or member.orphans:
                    return False
                _add_member(sizes, member)
                for need in member.needs:
                    if need not in defined and need not in seen:
                        seen.add(need)
                        wanted.append(need)
        return True

    def _offered(self, archives: List[_Archive], name: str,
                 taken: Set[Tuple[int, int]]) -> Iterator[Optional[_Member]]:
        """The members not ``taken`` yet whose archive's index says they define ``name``."""
        for i, archive in enumerate(archives):
            for offset in archive.index.get(name, ()):
                if (i, offset) not in taken:
                    taken.add((i, offset))
                    yield archive.member(offset, self.classify)


def _driver_link_line(tc: Toolchain) -> Optional[List[str]]:
    """The linker command line the driver would run for a library link (from ``-###``)."""
    cmd = tc.link_command(["utvm-estimate.o"], "utvm-estimate.elf", flags=["-Wl,--no-gc-sections"])
    cmd.insert(1, "-###")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    line = next((ln for ln in reversed(proc.stderr.splitlines())
                 if ln.startswith(" ") and "utvm-estimate.o" in ln), None)
    return None if line is None else shlex.split(line)


def _archive_args(args: List[str]) -> Tuple[List[str], List[str], List[str]]:
    """``(-L folders, -l names, archive paths)`` of a linker command line (after the program)."""
    dirs: List[str] = []
    names: List[str] = []
    archives: List[str] = []
    i = 1
    while i < len(args):
        arg = args[i]
        if arg in ("-L", "-l") and i + 1 < len(args):
            arg, i = arg + args[i + 1], i + 1
        if arg.startswith("-L"):
            dirs.append(arg[2:])
        elif arg.startswith("-l"):
            names.append(arg[2:])
        elif arg.endswith(".a") and not arg.startswith("-"):
            archives.append(arg)
        i += 1
    return dirs, names, archives


def _link_archives(tc: Toolchain) -> Optional[List[str]]:
    """The archives the driver hands the linker for a library link (``-l`` resolved in the
    ``-L`` folders, ``lib<name>.a``: the link is static), or None when that cannot be told."""
    args = _driver_link_line(tc)
    if args is None:
        return None
    dirs, names, archives = _archive_args(args)
    for name in names:
        found = next((os.path.join(d, f"lib{name}.a") for d in dirs
                      if os.path.isfile(os.path.join(d, f"lib{name}.a"))), None)
        if found is None:
            return None
        archives.append(found)
    return archives
