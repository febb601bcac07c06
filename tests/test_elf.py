"""Tests of utvm_host.elf: every value is checked against an independent source (binutils'
readelf/addr2line text, parsed here in the tests only, or values fixed by the C sources in
tests/data_elf/).  Objects are built into tmp_path; cross-compiler tests skip when the compiler
is missing, unless CI=true, where they fail."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Tuple

import pytest

from utvm_host.elf import CType, ElfFile, Location
from utvm_host.errors import BuildError

DATA = Path(__file__).resolve().parent / "data_elf"


@dataclass(frozen=True)
class Target:
    cc: str
    flags: Tuple[str, ...]
    prefix: str          # binutils prefix: readelf, ld, addr2line
    ptr: int
    char_signed: bool
    machine: str
    elf_class: int


TARGETS = {
    "host": Target("gcc", (), "", 8, True, "EM_X86_64", 64),
    "rv32": Target("riscv64-unknown-elf-gcc", ("-march=rv32imac", "-mabi=ilp32"),
                   "riscv64-unknown-elf-", 4, False, "EM_RISCV", 32),
    "rv64": Target("riscv64-unknown-elf-gcc", ("-march=rv64imac", "-mabi=lp64"),
                   "riscv64-unknown-elf-", 8, False, "EM_RISCV", 64),
    "cm3": Target("arm-none-eabi-gcc", ("-mcpu=cortex-m3", "-mthumb"), "arm-none-eabi-", 4,
                  False, "EM_ARM", 32),
}


def require_tool(name: str) -> str:
    """Path of tool ``name``; skip the test if it is missing (fail under CI=true)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run(cmd: List[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return proc.stdout


def build(t: Target, src: str, out: Path, *opts: str, link: bool = False) -> Path:
    """Compile tests/data_elf/``src`` with -g (``.o``), or link it at 0x10000 (``link``)."""
    cmd = [require_tool(t.cc), *t.flags, "-ffreestanding", "-g", *opts, str(DATA / src)]
    if link:
        cmd += ["-nostdlib", "-nostartfiles", "-static", "-Wl,-e,0", "-Wl,-Ttext=0x10000",
                "-lgcc"]
        if t.machine == "EM_X86_64":
            cmd += ["-no-pie", "-fno-pie"]
    else:
        cmd.append("-c")
    run(cmd + ["-o", str(out)])
    return out


def ld_r(t: Target, out: Path, *objs: Path) -> Path:
    """``ld -r`` through the compiler driver (which picks the right emulation, e.g. rv32)."""
    run([require_tool(t.cc), *t.flags, "-r", "-nostdlib", *map(str, objs), "-o", str(out)])
    return out


# --- readelf text, parsed in the test only ----------------------------------------------
def readelf_sections(t: Target, path: Path) -> List[tuple]:
    text = run([require_tool(t.prefix + "readelf"), "-S", "--wide", str(path)])
    rx = re.compile(r"^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+"
                    r"([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)\s+\d+\s+\d+\s+(\d+)\s*$")
    rows = []
    for line in text.splitlines():
        m = rx.match(line)
        if m and m.group(1) != "0":
            i, name, typ, addr, off, size, flg, al = m.groups()
            rows.append((int(i), name, typ, int(addr, 16), int(off, 16), int(size, 16), flg,
                         int(al)))
    return rows


def readelf_symbols(t: Target, path: Path) -> List[tuple]:
    text = run([require_tool(t.prefix + "readelf"), "-s", "--wide", str(path)])
    text = text.split("Symbol table '.symtab'", 1)[1]
    rows = []
    for line in text.splitlines()[2:]:
        parts = line.split(None, 7)
        if len(parts) < 7 or not parts[0].endswith(":") or parts[0] == "0:":
            continue
        ndx = {"UND": "SHN_UNDEF", "ABS": "SHN_ABS", "COM": "SHN_COMMON"}.get(parts[6])
        rows.append((parts[7].strip() if len(parts) > 7 else "", int(parts[1], 16),
                     int(parts[2], 0), parts[3], parts[4], ndx or int(parts[6])))
    return rows


def readelf_relocs(t: Target, path: Path) -> List[tuple]:
    text = run([require_tool(t.prefix + "readelf"), "-r", "--wide", str(path)])
    rows, section = [], ""
    for line in text.splitlines():
        m = re.match(r"Relocation section '\.rela?(\S+)'", line)
        if m:
            section = m.group(1)
            continue
        p = line.split()
        if len(p) < 3 or not p[2].startswith("R_"):
            continue
        if len(p) == 4:                  # no symbol: "offset info type addend"
            rows.append((section, int(p[0], 16), p[2], "", int(p[3], 16)))
        else:
            addend = int(p[6], 16) * (-1 if p[5] == "-" else 1) if len(p) >= 7 else 0
            rows.append((section, int(p[0], 16), p[2], p[4], addend))
    return rows


def addr2line(t: Target, exe: Path, addrs: List[int]) -> List[int]:
    out = run([require_tool(t.prefix + "addr2line"), "-e", str(exe), *map(hex, addrs)])
    return [int(m.group(1)) if (m := re.search(r":(\d+)", ln)) else 0 for ln in out.splitlines()]


# --- conformance with readelf ----------------------------------------------------------
@pytest.mark.parametrize("tname", list(TARGETS))
@pytest.mark.parametrize("kind", ["obj", "ld-r", "exe"])
def test_conformance_with_readelf(tmp_path, tname, kind):
    t = TARGETS[tname]
    if kind == "exe":
        path = build(t, "conform.c", tmp_path / "conform.elf", "-O0", link=True)
    else:
        path = build(t, "conform.c", tmp_path / "conform.o", "-O0")
        if kind == "ld-r":
            sigs = build(t, "sigs.c", tmp_path / "sigs.o", "-O2")
            path = ld_r(t, tmp_path / "combined.o", path, sigs)
    with ElfFile(path) as elf:
        assert (elf.machine, elf.elf_class, elf.little_endian) == (t.machine, t.elf_class, True)
        assert elf.elf_type == ("ET_EXEC" if kind == "exe" else "ET_REL")
        header = run([require_tool(t.prefix + "readelf"), "-h", str(path)])
        flags = re.search(r"Flags:\s+(0x[0-9a-f]+)", header).group(1)
        assert elf.flags == int(flags, 16)
        if t.machine == "EM_RISCV":
            assert elf.flags == 0x1                      # RVC, soft-float ABI
        elif t.machine == "EM_ARM":
            assert elf.flags & 0xFF000000 == 0x05000000  # EABI version 5
        if kind == "ld-r":   # DWARF of two CUs merged (and still relocatable) by ld -r
            with ElfFile(sigs) as alone:
                expected = alone.signatures()
            combined = elf.signatures()
            assert {n: combined[n] for n in expected} == expected and "entry" in combined

        sections = readelf_sections(t, path)
        assert len(elf.sections) == len(sections) > 5
        for (i, name, typ, addr, off, size, flg, al), s in zip(sections, elf.sections):
            assert (s.index, s.name, s.addr, s.offset, s.size, s.align) == \
                (i, name, addr, off, size, al or 1)
            if typ in ("PROGBITS", "NOBITS", "SYMTAB", "STRTAB", "RELA", "REL", "NOTE"):
                assert s.type == "SHT_" + typ
            assert (s.alloc, s.write, s.exec) == ("A" in flg, "W" in flg, "X" in flg)
            assert elf.get_section(name) is not None
            assert len(s.data()) == (0 if typ == "NOBITS" else size)

        symbols = readelf_symbols(t, path)
        mine = list(elf.iter_symbols())
        assert len(mine) == len(symbols) > 10
        for (name, value, size, typ, bind, ndx), s in zip(symbols, mine):
            shown = s.section_name if s.type == "SECTION" else s.name
            assert (shown.strip(), s.value, s.size, s.type, s.bind, s.section_index) == \
                (name, value, size, typ, bind, ndx)
            if isinstance(ndx, int):
                assert s.section_name == sections[ndx - 1][1]
        defined = {n for n, _, _, typ, bind, ndx in symbols if n and ndx != "SHN_UNDEF"
                   and bind in ("GLOBAL", "WEAK") and typ in ("FUNC", "OBJECT", "NOTYPE")}
        assert set(elf.defined_symbols()) == defined
        assert {"counter", "bss_buf", "table", "entry", "calls_ext"} <= defined
        assert "hidden" not in defined and "twice" not in defined
        undefined = sorted({n for n, _, _, _, bind, ndx in symbols if n and ndx == "SHN_UNDEF"
                            and bind in ("GLOBAL", "WEAK")})
        assert elf.undefined_symbols() == undefined
        if kind != "exe":
            assert "external_fn" in undefined
        assert elf.get_symbol("twice").bind == "LOCAL" and elf.get_symbol("nope") is None

        relocs = readelf_relocs(t, path)
        assert [(r.section, r.offset, r.type_name, r.symbol.strip(), r.addend)
                for r in elf.iter_relocations()] == relocs
        assert (len(relocs) > 20) == (kind != "exe")

        if kind == "exe":   # the memory image: initialised data, const data, bss
            sym = elf.get_symbol
            assert elf.read(sym("counter").value, 4) == struct.pack("<i", 3)
            assert elf.read(sym("table").value, 10) == struct.pack("<5H", 1, 2, 3, 4, 5)
            assert elf.read(sym("bss_buf").value, 256) == bytes(256)
            text = elf.get_section(".text")
            assert elf.read(text.addr, 16) == text.data()[:16]
            assert elf.read(text.addr, 0) == b""
            with pytest.raises(ValueError, match="not in any allocated section"):
                elf.read(0x10, 4)


# --- signatures --------------------------------------------------------------------------
def expected_signatures(t: Target) -> dict:
    def i(spelling, size, signed=True):
        return CType("int", spelling, size, signed, False, None)

    def const(c):
        return replace(c, const=True, spelling="const " + c.spelling)

    def ptr(c):
        return CType("pointer", c.spelling + " *", t.ptr, False, False, c)

    void = CType("void", "void", None, False, False, None)
    f32 = CType("float", "float", 4, False, False, None)
    f64 = CType("float", "double", 8, False, False, None)
    boolean = CType("bool", "_Bool", 1, False, False, None)
    int32, int8, char = i("int32_t", 4), i("int8_t", 1), i("char", 1, t.char_signed)
    pair = CType("struct", "struct pair", 24, False, False, None)
    return {
        "vadd": (void, [("a", ptr(const(f32))), ("b", ptr(const(f32))), ("c", ptr(f32)),
                        ("n", int32)], False),
        "dot_i8": (int32, [("a", ptr(const(int8))), ("b", ptr(const(int8))), ("n", int32)],
                   False),
        "mixed": (f64, [("a", int8), ("b", i("uint16_t", 2, False)), ("c", int32),
                        ("d", i("int64_t", 8)), ("e", f32), ("f", f64)], False),
        "rawp": (ptr(void), [("p", ptr(void)), ("q", ptr(const(void)))], False),
        "take_pair": (i("int64_t", 8), [("p", pair),
                                        ("pp", ptr(const(replace(pair, spelling="pair_t"))))],
                      False),
        "sum_va": (int32, [("count", int32)], True),
        "chars": (char, [("c", char), ("s", i("signed char", 1)),
                         ("u", i("unsigned char", 1, False))], False),
        "flag": (boolean, [("b", boolean), ("n", i("size_t", t.ptr, False))], False),
        "scale": (int32, [("x", int32), ("k", f32)], False),
        "use_scale": (int32, [("y", int32)], False),
        "quals": (int32, [
            ("names", replace(ptr(ptr(const(char))), spelling="const char **")),
            ("argv", replace(ptr(replace(ptr(char), const=True, spelling="char *const")),
                             spelling="char *const *")),
            ("out", ptr(f32)),                               # restrict looked through
            ("reg", ptr(int32)),                             # volatile looked through
            ("cb", CType("pointer", "int32_t (*)(int32_t, float)", t.ptr, False, False,
                         CType("function", "int32_t (int32_t, float)", None, False, False,
                               None))),
            # arm-none-eabi uses short enums
            ("m", CType("enum", "enum mode", 1 if t.machine == "EM_ARM" else 4, True, False,
                        None)),
            ("cp", replace(ptr(const(replace(pair, spelling="pair_t"))), const=True,
                           spelling="const pair_t *const"))], False),
    }


def source_line(pattern: str, src: str = "sigs.c") -> int:
    for n, text in enumerate((DATA / src).read_text().splitlines(), 1):
        if re.search(pattern, text):
            return n
    raise AssertionError(pattern)


@pytest.mark.parametrize("tname", list(TARGETS))
@pytest.mark.parametrize("opts", [("-O0",), ("-O2",), ("-O2", "-gdwarf-4")], ids="_".join)
@pytest.mark.parametrize("kind", ["obj", "exe"])
def test_signatures(tmp_path, tname, opts, kind):
    t = TARGETS[tname]
    path = build(t, "sigs.c", tmp_path / "sigs.elf", *opts, link=kind == "exe")
    with ElfFile(path) as elf:
        sigs = elf.signatures()
        expected = expected_signatures(t)
        extra = set(sigs) - set(expected)                # static helper() not reported
        # a linked file also holds libgcc's soft-float helpers, with their DWARF
        assert set(expected) <= set(sigs) and "helper" not in sigs
        assert (not extra) if kind == "obj" else all(n.startswith("__") for n in extra)
        for name, (ret, params, variadic) in expected.items():
            sig = sigs[name]
            assert sig.name == name
            assert sig.return_type == ret, name
            assert [(p.name, p.type) for p in sig.params] == params, name
            assert sig.variadic is variadic
            assert os.path.basename(sig.file) == "sigs.c"
            assert sig.line == source_line(rf"^\w[\w *]*\b{name}\(")
        assert elf.signatures() == sigs                  # cached, same answer
        if opts[0] == "-O2":    # scale() is also inlined: its code refers to an abstract DIE
            dies = [d for cu in elf._dwarf().iter_CUs() for d in cu.get_top_DIE().iter_children()
                    if d.tag == "DW_TAG_subprogram" and "DW_AT_abstract_origin" in d.attributes]
            assert "scale" in {elf._name(d) for d in dies}


# --- DWARF relocations in .o files ------------------------------------------------------
@pytest.mark.parametrize("tname", list(TARGETS))
def test_dwarf_relocations_match_pyelftools_where_it_can(tmp_path, tname):
    """For x86-64 and ARM our relocation of .debug_* equals pyelftools' own; for RISC-V
    pyelftools 0.33 refuses (ELFRelocationError), which is why utvm_host.elf.relocations applies them itself."""
    from elftools.common.exceptions import ELFRelocationError
    from elftools.elf.elffile import ELFFile

    t = TARGETS[tname]
    obj = build(t, "sigs.c", tmp_path / "sigs.o", "-O2")
    with ElfFile(obj) as elf, open(obj, "rb") as f:
        ours = elf._dwarf()
        try:
            theirs = ELFFile(f).get_dwarf_info()
        except ELFRelocationError:
            assert t.machine == "EM_RISCV"
            return
        for attr in ("debug_info_sec", "debug_line_sec", "debug_aranges_sec"):
            assert getattr(ours, attr).stream.getvalue() == \
                getattr(theirs, attr).stream.getvalue(), attr


@pytest.mark.parametrize("tname", ["rv32", "rv64", "cm3"])
def test_debug_frame_relocated(tmp_path, tname):
    """.debug_frame of a .o uses R_RISCV_ADD32/SUB32/SET6/SUB6/SET8 on RISC-V: once applied,
    every FDE covers exactly one function symbol."""
    from elftools.dwarf.callframe import FDE

    obj = build(TARGETS[tname], "sigs.c", tmp_path / "sigs.o", "-O0")
    with ElfFile(obj) as elf:
        funcs = {s.value & ~1: s.size for s in elf.iter_symbols() if s.type == "FUNC"}
        fdes = [e for e in elf._dwarf().CFI_entries() if isinstance(e, FDE)]
        assert len(fdes) == len(funcs) > 10
        for fde in fdes:
            start, size = fde.header["initial_location"], fde.header["address_range"]
            assert funcs[start] == size
            pcs = [row["pc"] for row in fde.get_decoded().table]
            assert pcs[0] == start and all(start <= pc < start + size for pc in pcs)


def test_riscv_uleb128_relocations():
    """R_RISCV_SET_ULEB128/SUB_ULEB128 (newer toolchains) rewrite a ULEB128 in its own width."""
    from utvm_host.elf import _apply_relocations

    class Rel(dict):
        def is_RELA(self):
            return True

    class Tab:
        def get_symbol(self, i):
            return {"st_value": {1: 0x40, 2: 0x10}[i]}

    class RelSec:
        name = ".rela.debug_loclists"

        def iter_relocations(self):
            for off, typ, sym in ((0, 60, 1), (0, 61, 2), (3, 54, 1), (4, 52, 2)):
                yield Rel(r_offset=off, r_info_type=typ, r_info_sym=sym, r_addend=0)

    buf = bytearray(b"\x80\x80\x00\x00\xff")     # a 3-byte ULEB128, a byte, a 6-bit field
    _apply_relocations(buf, RelSec(), Tab(), "EM_RISCV", True, 0)
    assert buf == bytearray(b"\xb0\x80\x00\x40\xef")   # 0x40-0x10; SET8 0x40; 0x3f-0x10


# --- struct layout -----------------------------------------------------------------------
@pytest.mark.parametrize("tname,layout", [
    ("rv32", {"c": (0, 1), "l": (4, 4), "s": (8, 2), "p": (12, 4), "tail": (16, 3)}),
    ("rv64", {"c": (0, 1), "l": (8, 8), "s": (16, 2), "p": (24, 8), "tail": (32, 3)}),
    ("host", {"c": (0, 1), "l": (8, 8), "s": (16, 2), "p": (24, 8), "tail": (32, 3)}),
    ("cm3", {"c": (0, 1), "l": (4, 4), "s": (8, 2), "p": (12, 4), "tail": (16, 3)}),
])
@pytest.mark.parametrize("opts", [("-O0",), ("-O2", "-gdwarf-4")], ids="_".join)
def test_struct_layout(tmp_path, tname, layout, opts):
    obj = build(TARGETS[tname], "layout.c", tmp_path / "layout.o", *opts)
    with ElfFile(obj) as elf:
        for name in ("padded", "padded_t", "struct padded"):
            got = elf.struct_layout(name)
            assert got == layout and list(got) == list(layout)
        with pytest.raises(KeyError):
            elf.struct_layout("no_such_struct")


# --- symbolize ---------------------------------------------------------------------------
@pytest.mark.parametrize("tname", list(TARGETS))
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_symbolize_linked(tmp_path, tname, opt):
    t = TARGETS[tname]
    exe = build(t, "sigs.c", tmp_path / "sigs.elf", opt, link=True)
    marker, vadd_line = source_line("MARKER_LINE"), source_line(r"^void vadd\(")
    with ElfFile(exe) as elf:
        assert elf.elf_type == "ET_EXEC"
        thumb = t.machine == "EM_ARM"
        sym = elf.get_symbol("vadd")
        start = sym.value & ~1 if thumb else sym.value
        assert not thumb or sym.value & 1                       # Thumb bit set on Arm
        loc = elf.symbolize(start)
        assert (loc.function, loc.offset, os.path.basename(loc.file)) == ("vadd", 0, "sigs.c")
        if opt == "-O0":
            assert loc.line == vadd_line
        addrs = list(range(start, start + sym.size, 2))
        locs = [elf.symbolize(a) for a in addrs]
        assert [(x.function, x.offset) for x in locs] == [("vadd", a - start) for a in addrs]
        assert marker in {x.line for x in locs}
        assert [x.line or 0 for x in locs] == addr2line(t, exe, addrs)
        x = locs[2]
        assert str(x) == f"vadd+0x4 (sigs.c:{x.line})" and x.address == start + 4
        assert elf.symbolize(0x10) is None
        end = elf.get_symbol("use_scale")
        last = elf.symbolize((end.value & ~1 if thumb else end.value) + end.size - 1)
        assert last.function == "use_scale"


@pytest.mark.parametrize("tname", list(TARGETS))
def test_symbolize_object(tmp_path, tname):
    obj = build(TARGETS[tname], "sigs.c", tmp_path / "sigs.o", "-O0")
    with ElfFile(obj) as elf:
        sym = elf.get_symbol("dot_i8")
        loc = elf.symbolize((sym.value & ~1 if tname == "cm3" else sym.value) + 6)
        assert (loc.function, loc.offset) == ("dot_i8", 6)
        assert loc.line is not None and source_line(r"^int32_t dot_i8\(") <= loc.line


def test_location_str():
    assert str(Location("vadd", 0x1c, "/src/vadd.c", 12, 0x8000101c)) == "vadd+0x1c (vadd.c:12)"
    assert str(Location("vadd", 0x1c, None, None, 0x8000101c)) == "vadd+0x1c"
    assert str(Location(None, 0, None, None, 0x80001234)) == "0x80001234"


# --- errors ------------------------------------------------------------------------------
def test_not_an_elf(tmp_path):
    bad = tmp_path / "x.o"
    bad.write_bytes(b"hello world")
    with pytest.raises(BuildError) as exc:
        ElfFile(bad)
    assert str(exc.value) == \
        f"'{bad}' is not an ELF file: bad magic number b'hell' (expected b'\\x7fELF')"
    bad.write_bytes(b"")
    with pytest.raises(BuildError, match="bad magic number b''"):
        ElfFile(str(bad))


def test_truncated_elf(tmp_path):
    obj = build(TARGETS["host"], "conform.c", tmp_path / "conform.o", "-O1")
    for n in (30, 200):
        cut = tmp_path / f"cut{n}.o"
        cut.write_bytes(obj.read_bytes()[:n])
        with pytest.raises(BuildError) as exc:
            ElfFile(cut)
        assert str(exc.value).startswith(f"'{cut}' is not an ELF file: ")


# --- the package ---------------------------------------------------------------------------
def test_package_layers_and_names():
    """utvm_host.elf re-exports what the rest of the library imports, and its modules form
    layers: each imports (relatively) only the modules listed before it, so there is no cycle."""
    import ast
    import utvm_host.elf as pkg

    assert pkg.__all__ == ["ElfFile", "CType", "Parameter", "Signature", "Symbol", "Section",
                           "Relocation", "Location"]
    assert all(getattr(pkg, name).__module__.startswith("utvm_host.elf.") for name in pkg.__all__)
    assert callable(pkg._apply_relocations)
    order = ["types", "malformed", "relocations", "reader", "dwarf_types", "lines", "signatures",
             "elffile"]
    root = Path(pkg.__file__).parent
    assert sorted(p.stem for p in root.glob("*.py")) == sorted(order + ["__init__"])
    for i, name in enumerate(order):
        tree = ast.parse((root / f"{name}.py").read_text())
        inner = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        assert inner <= set(order[:i]), (name, inner - set(order[:i]))
