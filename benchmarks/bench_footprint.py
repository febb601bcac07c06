"""Footprint of the device runtime: text/data/bss per component, for the five targets, built as
devices build it (-Os, the device's flags and defines), and the core runtime's ratio to the 2020
µTVM runtime (1,086 B: 610 text + 476 bss on rv32imac -Os).

Components: core (the resident runtime: utvm_runtime.c and the architecture port,
configuration-sized buffers excluded), the parts linked on demand (device_stubs/runtime/on_demand/:
the error API and the workspace allocator, which a session places the first time a library calls
into them) and the core with both, the console without and with %f (cfg["console_float"]), the soft-float helpers %f pulls in from
libgcc on devices without an FPU, and the configuration-sized buffers (cfg["runtime"] tables,
error text, console line, handler/trap stacks) on their own.

    python benchmarks/bench_footprint.py [--markdown]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from utvm_host import devices  # noqa: E402
from utvm_host.toolchain import DEVICE_STUBS, RUNTIME_PARTS, Toolchain, runtime_sources  # noqa: E402

ANCHOR = 1086   # bytes: the 2020 µTVM runtime on rv32imac -Os
TARGETS = {
    "host x86_64": devices.host,
    "rv32imac": lambda: devices.spike(isa="rv32imac"),
    "rv64imac": lambda: devices.spike(isa="rv64imac"),
    "cortex-m3": lambda: devices.qemu("cortex-m3"),
    "cortex-m33": lambda: devices.qemu("cortex-m33"),
}
# Buffers whose size is configuration: counted apart from the code that uses them.
CONFIGURED = ("utvm_tasks", "utvm_counts", "utvm_task_counts", "utvm_last_error", "utvm_last_error_kind",
              "utvm_console_line", "line_buf", "utvm_handler_stack", "utvm_trap_stack")
SOFT_FLOAT_PREFIXES = ("__aeabi_d", "__aeabi_ul2d", "__aeabi_l2d", "__aeabi_i2d", "__aeabi_ui2d", "__adddf",
                       "__subdf", "__muldf", "__divdf", "__fix", "__float", "__ltdf", "__gtdf", "__ledf", "__gedf",
                       "__eqdf", "__nedf", "__unorddf", "__cmpdf", "__extendsfdf", "__truncdfsf")


def sizes(obj: Path) -> Tuple[Dict[str, int], Dict[str, int]]:
    """({text, data, bss} of the object's allocated sections with configured buffers removed,
    {configured buffer: size})."""
    out = {"text": 0, "data": 0, "bss": 0}
    configured: Dict[str, int] = {}
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC:
                continue
            kind = "bss" if sec["sh_type"] == "SHT_NOBITS" else \
                "text" if not sec["sh_flags"] & SH_FLAGS.SHF_WRITE else "data"
            out[kind] += sec["sh_size"]
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols():
            if sym.name in CONFIGURED and sym["st_size"] and sym.name not in configured:
                sec = elf.get_section(sym["st_shndx"])
                kind = "bss" if sec["sh_type"] == "SHT_NOBITS" else "data"
                out[kind] -= sym["st_size"]
                configured[sym.name] = sym["st_size"]
    return out, configured


def undefined(obj: Path) -> List[str]:
    with open(obj, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return sorted(s.name for s in symtab.iter_symbols() if s["st_shndx"] == "SHN_UNDEF" and s.name)


def soft_float_bytes(tc: Toolchain, obj: Path, work: Path) -> int:
    """Bytes of libgcc's soft-float helpers the object pulls in: link it alone (entry printf,
    unused sections dropped) with and without libgcc's helpers resolved."""
    helpers = [s for s in undefined(obj) if s.startswith(SOFT_FLOAT_PREFIXES)]
    if not helpers:
        return 0
    exe = work / (obj.stem + ".elf")
    cmd = [tc.cc, *tc.ldflags, "-nostartfiles", "-nostdlib", "-Wl,--gc-sections", "-Wl,-e,printf",
           "-Wl,--unresolved-symbols=ignore-all", str(obj), "-lgcc", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    total = 0
    with open(exe, "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and sym.name.startswith(("__", "_")) and \
                    sym.name not in ("printf", "vprintf") and sym["st_size"]:
                total += sym["st_size"]
    return total


def measure(name: str, make) -> Dict[str, object]:
    cfg = make()
    tc = Toolchain(cfg)
    stubs = runtime_sources(cfg)
    console = DEVICE_STUBS / "runtime" / "utvm_console.c"
    core_sources = [s for s in stubs if s != console]
    row: Dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def build(src: Path, float_console: bool = False) -> Path:
            c = cfg.copy()
            c["console_float"] = float_console
            obj = work / f"{src.stem}{'-f' if float_console else ''}{src.suffix.replace('.', '_')}.o"
            tc.compile(src, obj, cflags=["-Os"], runtime=True, defines=c.runtime_defines())
            return obj

        core = {"text": 0, "data": 0, "bss": 0}
        configured: Dict[str, int] = {}
        for src in core_sources:
            part, conf = sizes(build(src))
            for k in core:
                core[k] += part[k]
            configured.update(conf)
        parts = {src.stem.replace("utvm_", ""): sizes(build(src))[0] for src in sorted(RUNTIME_PARTS.glob("*.c"))}
        con, conf = sizes(build(console))
        configured.update(conf)
        float_obj = build(console, True)
        con_f, _ = sizes(float_obj)
        row.update(core=core, parts=parts, console=con, console_float=con_f, configured=configured,
                   soft_float=soft_float_bytes(tc, float_obj, work) if name != "host x86_64" else 0)
    return row


def total(part: Dict[str, int]) -> int:
    return part["text"] + part["data"] + part["bss"]


def main(argv: List[str]) -> None:
    rows = {name: measure(name, make) for name, make in TARGETS.items()}
    md = "--markdown" in argv
    parts = list(rows["rv32imac"]["parts"])
    head = ["target", "core runtime (text+data+bss)", "÷ µTVM 1,086 B", *(f"+ {p} (on demand)" for p in parts),
            "core + all parts", "console", "console with %f",
            "soft-float for %f", "configured buffers"]
    lines = []
    for name, r in rows.items():
        core, con, conf = r["core"], r["console"], r["configured"]
        lines.append([name, f"{total(core):,} ({core['text']:,}+{core['data']:,}+{core['bss']:,})",
                      f"{total(core) / ANCHOR:.2f}", *(f"{total(r['parts'][p]):,}" for p in parts),
                      f"{total(core) + sum(total(v) for v in r['parts'].values()):,}", f"{total(con):,}", f"{total(r['console_float']):,}",
                      f"{r['soft_float']:,}",
                      f"{sum(conf.values()):,}"])
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    print("\nconfigured buffers (cfg['runtime'] defaults), rv32imac:",
          ", ".join(f"{k} {v:,}" for k, v in rows["rv32imac"]["configured"].items()))


if __name__ == "__main__":
    main(sys.argv[1:])
