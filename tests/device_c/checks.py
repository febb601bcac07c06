"""Static and dynamic checks of the C that runs on devices (device_stubs/).

Used by the tests in this folder and by hand:

    python tests/device_c/checks.py misra [CONFIG...]     # MISRA C:2012 findings per port configuration
    python tests/device_c/checks.py warnings [TARGET...]  # strict warnings + gcc -fanalyzer per target
    python tests/device_c/checks.py unit [NAME...]        # unit tests built with ASan/UBSan, run
    python tests/device_c/checks.py fuzz [NAME...] [--seconds N] [--grow]   # libFuzzer harnesses

Conventions:
- unit tests: tests/device_c/unit/test_NAME.c, a program with main() that returns 0 when every
  check passed (it #includes the device source it tests, to reach its static functions).
- fuzzers: tests/device_c/fuzz/fuzz_NAME.c defining LLVMFuzzerTestOneInput; the corpus lives in
  tests/device_c/corpus/NAME/ (kept in the repository; --grow merges new finds into it).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STUBS = ROOT / "device_stubs"
INCLUDE = STUBS / "include"
MISRA_MD = STUBS / "MISRA.md"

# ---- port configurations -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Port:
    """One configuration of device sources as a device builds them."""
    name: str
    sources: Tuple[str, ...]          # globs under device_stubs/
    defines: Tuple[str, ...]          # as -D arguments take them: "NAME" or "NAME=VALUE"
    platform: str                     # cppcheck's --platform (int/pointer sizes)
    target: str                       # the compiler target (TARGETS) for the warnings build

    def files(self) -> List[Path]:
        out: List[Path] = []
        for pattern in self.sources:
            out += sorted(STUBS.glob(pattern))
        return out


RISCV32 = ("__riscv", "__riscv_xlen=32")
RISCV64 = ("__riscv", "__riscv_xlen=64", "__riscv_flen=64")
ARMV7M = ("__arm__", "__thumb__", "__ARM_ARCH_7M__")
ARMV8M = ("__arm__", "__thumb__", "__ARM_ARCH_8M_MAIN__", "__ARM_FP=4")
RUNTIME = ("runtime/*.c", "runtime/on_demand/*.c")

PORTS: Dict[str, Port] = {p.name: p for p in [
    Port("host", RUNTIME + ("ports/linux/*.c",), ("__x86_64__", "UTVM_CONSOLE_FD=63"), "unix64", "host"),
    Port("spike-rv32", RUNTIME + ("ports/riscv/*.c",), RISCV32 + ("UTVM_CONSOLE_HTIF",), "unix32", "rv32"),
    Port("spike-rv64", RUNTIME + ("ports/riscv/*.c",), RISCV64 + ("UTVM_CONSOLE_HTIF", "UTVM_CONSOLE_FLOAT"),
         "unix64", "rv64"),
    Port("qemu-riscv32", RUNTIME + ("ports/riscv/*.c",), RISCV32 + ("UTVM_CONSOLE_NS16550=0x10000000",), "unix32", "rv32"),
    Port("serial-riscv32", RUNTIME + ("ports/riscv/*.c",), RISCV32, "unix32", "rv32"),   # console via the stub's hook
    Port("cortex-m3", RUNTIME + ("ports/cortexm/*.c",), ARMV7M + ("UTVM_CONSOLE_CMSDK=0x40004000",), "unix32", "m3"),
    Port("cortex-m33", RUNTIME + ("ports/cortexm/*.c",), ARMV8M + ("UTVM_CONSOLE_CMSDK=0x40004000", "UTVM_CONSOLE_FLOAT"),
         "unix32", "m33"),
    Port("serial-stub-riscv32", ("programs/serial/*.c",),
         RISCV32 + ("UTVM_SERIAL_NS16550=0x10000000", "UTVM_SERIAL_GUARD=0x80000000"), "unix32", "rv32"),
    Port("serial-stub-cortex-m3", ("programs/serial/*.c",), ARMV7M + ("UTVM_SERIAL_CMSDK=0x40004000",), "unix32", "m3"),
    Port("firmware-riscv32", ("programs/firmware/*.c", "programs/firmware/riscv/*.c"), RISCV32, "unix32", "rv32"),
    Port("firmware-cortex-m33", ("programs/firmware/*.c", "programs/firmware/cortexm/*.c"), ARMV8M, "unix32", "m33"),
]}

# ---- MISRA C:2012 ------------------------------------------------------------------------

# Rule categories (MISRA C:2012 with Amendments 1 and 2): Mandatory and Advisory; all others Required.
MANDATORY = {"9.1", "12.5", "13.6", "17.3", "17.4", "17.6", "19.1", "21.13", "21.17", "21.18", "21.19", "21.20",
             "22.2", "22.4", "22.5", "22.6"}
ADVISORY = {"1.2", "2.3", "2.4", "2.5", "2.6", "2.7", "4.2", "5.9", "8.7", "8.9", "8.11", "8.13", "10.5", "11.4",
            "11.5", "12.1", "12.3", "12.4", "13.3", "13.4", "15.1", "15.4", "15.5", "17.5", "17.8", "18.5",
            "19.2", "20.1", "20.5", "20.10", "21.12", "Dir 4.2", "Dir 4.5", "Dir 4.6", "Dir 4.8", "Dir 4.9",
            "Dir 4.13"}


def category(rule: str) -> str:
    return "Mandatory" if rule in MANDATORY else "Advisory" if rule in ADVISORY else "Required"


@dataclasses.dataclass(frozen=True)
class Finding:
    file: str     # relative to the repository
    line: int
    rule: str     # "17.1"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: MISRA C:2012 rule {self.rule} ({category(self.rule)})"


@dataclasses.dataclass(frozen=True)
class Deviation:
    ident: str
    rule: str
    where: str
    needed: str
    safe: str


def deviations(path: Path = MISRA_MD) -> Dict[str, Deviation]:
    """The deviation table rows of MISRA.md: | ID | Rule | Where | Why needed | Why safe |."""
    out: Dict[str, Deviation] = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"[A-Z]\d+", cells[0]):
            continue
        rule = re.search(r"\d+\.\d+", cells[1])
        out[cells[0]] = Deviation(cells[0], rule.group(0) if rule else cells[1], cells[2], cells[3], cells[4])
    return out


SUPPRESSION = re.compile(r"cppcheck-suppress\s+misra-c2012-(\d+\.\d+)\s*(?:;\s*deviation\s+([A-Z]\d+))?")


def suppressions(files: Sequence[Path]) -> List[Tuple[str, int, str, Optional[str]]]:
    """Every inline MISRA suppression: (file, line, rule, deviation id or None)."""
    out = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in SUPPRESSION.finditer(line):
                out.append((str(f.relative_to(ROOT)), n, m.group(1), m.group(2)))
    return out


def tool(name: str, why: str = "") -> str:
    """A program's path, or FileNotFoundError saying how to install it."""
    exe = shutil.which(name)
    if exe is None:
        raise FileNotFoundError(f"{name} is not installed{why}: apt-get install -y {name} (or run `make setup`)")
    return exe


def misra(port: Port, files: Optional[Sequence[Path]] = None) -> List[Finding]:
    """MISRA findings cppcheck reports for one port configuration (inline suppressions applied);
    ``files`` instead of the port's own sources (to check the checker)."""
    cmd = [tool("cppcheck"), "--addon=misra", "--inline-suppr", "--std=c99", f"--platform={port.platform}",
           "--quiet", "--error-exitcode=0", "--template={file}\t{line}\t{id}\t{message}", f"-I{INCLUDE}"]
    cmd += [f"-D{d}" for d in port.defines]
    with tempfile.TemporaryDirectory() as build_dir:
        cmd += [f"--cppcheck-build-dir={build_dir}"] + [str(f) for f in (files or port.files())]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    findings = []
    for line in proc.stderr.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[2].startswith("misra-c2012-"):
            path = (ROOT / parts[0]).resolve()
            rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
            findings.append(Finding(rel, int(parts[1]), parts[2][len("misra-c2012-"):], parts[3]))
        elif len(parts) == 4 and parts[2] in ("syntaxError", "internalError", "preprocessorErrorDirective"):
            raise RuntimeError(f"cppcheck could not check {parts[0]}:{parts[1]}: {parts[3]}")
    return sorted(set(findings), key=lambda f: (f.file, f.line, f.rule))


# ---- compilers: strict warnings and the analyzer ---------------------------------------------

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wshadow", "-Wcast-align",
          "-Wmissing-prototypes", "-Werror", "-fanalyzer"]


def target_configs() -> Dict[str, object]:
    """The device configurations whose compilers build device code: host, rv32, rv64, M3, M33."""
    sys.path.insert(0, str(ROOT))
    from utvm_host import devices
    return {"host": devices.host(), "rv32": devices.spike(isa="rv32imac"), "rv64": devices.spike(isa="rv64gc"),
            "m3": devices.qemu("cortex-m3"), "m33": devices.qemu("cortex-m33")}


def compile_strict(port: Port, source: Path, cfg, out_dir: Path) -> subprocess.CompletedProcess:
    from utvm_host.toolchain import Toolchain
    tc = Toolchain(cfg)
    cmd = [tc.cc, "-c", "-Os"] + tc.cflags + tc.runtime_cflags + STRICT + [f"-I{INCLUDE}"]
    # the arch macros come from the compiler itself; only the configuration's own defines are passed
    cmd += [f"-D{d}" for d in port.defines if d.startswith("UTVM_")]
    cmd += [str(source), "-o", str(out_dir / (source.name + ".o"))]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


# ---- sanitizers: unit tests and fuzzers ------------------------------------------------------

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]


def _build(cmd: List[str], source: Path, exe: Path) -> Path:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{proc.stderr}")
    return exe


def units() -> List[Path]:
    return sorted((HERE / "unit").glob("test_*.c"))


def fuzzers() -> List[Path]:
    return sorted((HERE / "fuzz").glob("fuzz_*.c"))


def build_unit(source: Path, out_dir: Path) -> Path:
    exe = out_dir / source.stem
    cc = shutil.which("gcc") or "cc"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", *SANITIZE, f"-I{INCLUDE}", str(source), "-o", str(exe)]
    return _build(cmd, source, exe)


def build_fuzzer(source: Path, out_dir: Path) -> Path:
    exe = out_dir / source.stem
    cmd = [tool("clang", " (libFuzzer)"), "-std=c99", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-g", "-O1",
           f"-I{INCLUDE}", str(source), "-o", str(exe)]
    return _build(cmd, source, exe)


def corpus(source: Path) -> Path:
    return HERE / "corpus" / source.stem[len("fuzz_"):]


def run_fuzzer(exe: Path, source: Path, seconds: int, grow: bool = False) -> subprocess.CompletedProcess:
    """Run a fuzzer for ``seconds`` over a copy of its corpus (the repository's stays as it is
    unless ``grow``: then new inputs that add coverage are merged into it)."""
    kept = corpus(source)
    kept.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        live = Path(work) / "corpus"
        shutil.copytree(kept, live)
        cmd = [str(exe), f"-max_total_time={seconds}", "-timeout=5", "-rss_limit_mb=1024", "-print_final_stats=1",
               f"-artifact_prefix={work}/", str(live)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        crashes = sorted(Path(work).glob("crash-*")) + sorted(Path(work).glob("leak-*")) + \
            sorted(Path(work).glob("timeout-*"))
        if crashes:
            proc.stderr += "\n" + "\n".join(f"reproducer {c.name}: {c.read_bytes()[:256]!r}" for c in crashes)
        if grow and proc.returncode == 0:
            subprocess.run([str(exe), "-merge=1", str(kept), str(live)], capture_output=True, cwd=work)
    return proc


# ---- command line ----------------------------------------------------------------------------

def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["misra", "warnings", "unit", "fuzz"])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--grow", action="store_true")
    args = ap.parse_args(argv)
    bad = 0
    if args.what == "misra":
        for name in args.names or list(PORTS):
            found = misra(PORTS[name])
            print(f"{name}: {len(found)} findings")
            for f in found:
                print(f"  {f}")
            bad += len(found)
    elif args.what == "warnings":
        cfgs = target_configs()
        with tempfile.TemporaryDirectory() as out:
            for port in PORTS.values():
                if args.names and port.target not in args.names and port.name not in args.names:
                    continue
                for src in port.files():
                    proc = compile_strict(port, src, cfgs[port.target], Path(out))
                    if proc.returncode != 0 or proc.stderr.strip():
                        bad += 1
                        print(f"{port.name} {src.relative_to(ROOT)}:\n{proc.stderr}")
            print(f"{bad} sources with warnings")
    elif args.what == "unit":
        with tempfile.TemporaryDirectory() as out:
            for src in units():
                if args.names and not any(src.stem.startswith(("test_" + n, "fuzz_" + n, n)) for n in args.names):
                    continue
                proc = subprocess.run([str(build_unit(src, Path(out)))], capture_output=True, text=True)
                print(f"{src.name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
                bad += proc.returncode != 0
    else:
        with tempfile.TemporaryDirectory() as out:
            for src in fuzzers():
                if args.names and not any(src.stem.startswith(("test_" + n, "fuzz_" + n, n)) for n in args.names):
                    continue
                proc = run_fuzzer(build_fuzzer(src, Path(out)), src, args.seconds, args.grow)
                tail = "\n".join(proc.stderr.splitlines()[-12:])
                print(f"{src.name}: exit {proc.returncode}\n{tail}")
                bad += proc.returncode != 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
