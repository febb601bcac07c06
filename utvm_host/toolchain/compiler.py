"""The target's compiler driver: compile C to objects, combine them, link them with a script.

:class:`Toolchain` wraps one device configuration's gcc; :meth:`Toolchain.compile_and_link`
is the one loop that compiles a list of sources and links the objects (the device runtime,
firmware, stubs). :func:`build_host_program` compiles a small program for this machine.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from ..config import DeviceConfig
from ..errors import BuildError, ToolNotFoundError
from .cache import CACHE_VERSION, PathLike, sha256_file, sha256_json, cache_root

#: One logger for the whole package (compiler warnings are reported under this name).
log = logging.getLogger("utvm_host.toolchain")

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
DEVICE_STUBS = PACKAGE_ROOT / "device_stubs"
#: The runtime ports (one folder per architecture family, beside the portable runtime/).
DEVICE_PORTS = DEVICE_STUBS / "ports"
#: The standalone programs: the host CPU process, firmware startup, the serial stub.
DEVICE_PROGRAMS = DEVICE_STUBS / "programs"
LINKER_DIR = PACKAGE_ROOT / "linker"
RUNTIME_INCLUDE = DEVICE_STUBS / "include"
_DEFAULT_OPT = "-O2"


class Toolchain:
    """The compiler of one device configuration; every method raises :class:`BuildError` with
    the tool's diagnostics on failure and :class:`ToolNotFoundError` when it is not installed."""

    _identities: Dict[str, str] = {}

    def __init__(self, cfg: DeviceConfig):
        self.cfg = cfg
        tc = cfg["toolchain"]
        self.prefix = tc.get("prefix", "")
        self.cflags: List[str] = list(tc.get("cflags", []))
        self.runtime_cflags: List[str] = list(tc.get("runtime_cflags", []))
        self.ldflags: List[str] = list(tc.get("ldflags", []))
        self.libs: List[str] = list(tc.get("libs", []))
        self.package = tc.get("package", "")
        self.cc_name = self.prefix + tc.get("cc", "gcc")

    def tool(self, name: str) -> str:
        """Full path of a program, or :class:`ToolNotFoundError` with the package that has it."""
        path = shutil.which(name)
        if path is None:
            pkgs = self.package or "gcc"
            raise ToolNotFoundError(name, f"install the Debian package(s) {pkgs} "
                                          f"(apt-get install -y {pkgs}), or run `make setup`")
        return path

    @property
    def cc(self) -> str:
        return self.tool(self.cc_name)

    def identity(self) -> str:
        """A string that changes when the compiler changes (version, binary), for cache keys."""
        cc = self.cc
        if cc not in self._identities:
            out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()
            st = os.stat(os.path.realpath(cc))
            self._identities[cc] = f"{out[0] if out else cc}|{os.path.realpath(cc)}|{st.st_size}|{st.st_mtime_ns}"
        return self._identities[cc]

    def run(self, cmd: Sequence[str], what: str) -> subprocess.CompletedProcess:
        log.debug("run: %s", " ".join(cmd))
        # errors="replace": a tool quoting a malformed file's bytes must not turn into UnicodeDecodeError
        proc = subprocess.run(list(cmd), capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            raise BuildError(f"{what} failed (exit {proc.returncode})",
                             diagnostics=(proc.stderr + proc.stdout).strip(), command=cmd)
        return proc

    def compile(self, source: PathLike, out: PathLike, *, cflags: Sequence[str] = (),
                include_dirs: Sequence[PathLike] = (), defines: Optional[Mapping[str, object]] = None,
                depfile: Optional[PathLike] = None, runtime: bool = False) -> str:
        """Compile one C file to an object. Returns the compiler's warnings (may be empty)."""
        cmd = [self.cc, "-c", "-g"] + self.cflags + (self.runtime_cflags if runtime else [])
        if not any(f.startswith("-O") for f in cflags):
            cmd.append(_DEFAULT_OPT)
        cmd += list(cflags)
        for d in list(include_dirs) + [RUNTIME_INCLUDE]:
            cmd += ["-I", str(d)]
        for key, value in (defines or {}).items():
            cmd.append(f"-D{key}" if value is None else f"-D{key}={value}")
        if depfile:
            cmd += ["-MD", "-MF", str(depfile), "-fstack-usage"]
        cmd += [str(source), "-o", str(out)]
        return self.run(cmd, f"compiling {Path(source).name} for {self.cfg['arch']}").stderr.strip()

    def relocatable(self, objects: Sequence[PathLike], out: PathLike) -> None:
        """Combine objects into one relocatable object (``ld -r`` through the driver)."""
        # Only the flags that pick the multilib/emulation: specs would add their own linker script.
        cmd = [self.cc, "-r", "-nostdlib"] + [f for f in self.ldflags if not f.startswith(("-Wl,", "--specs="))]
        cmd += [str(o) for o in objects] + ["-o", str(out)]
        self.run(cmd, f"combining {len(objects)} object(s) with ld -r")

    def link_command(self, inputs: Sequence[PathLike], out: PathLike, *, script: Optional[PathLike] = None,
                     flags: Sequence[str] = ()) -> List[str]:
        """The driver command of a static link of ``inputs`` into ``out``.

        Parameters
        ----------
        inputs : sequence of path-like
            Objects, archives and implicit linker scripts, in link order.
        out : path-like
            The ELF to write.
        script : path-like, optional
            The linker script (``-T``).
        flags : sequence of str
            Further driver flags (``-Wl,...``), after the target's ``ldflags`` and the script.

        Returns
        -------
        list of str
            ``cc -nostdlib -nostartfiles -static LDFLAGS [-T script] FLAGS INPUTS LIBS -o out``.
        """
        cmd = [self.cc, "-nostdlib", "-nostartfiles", "-static"] + self.ldflags
        if script is not None:
            cmd += ["-T", str(script)]
        cmd += list(flags) + [str(i) for i in inputs]
        return cmd + self.libs + ["-o", str(out)]

    def compile_and_link(self, sources: Sequence[PathLike], work: PathLike, out: PathLike, *,
                         cflags: Sequence[str] = (), include_dirs: Sequence[PathLike] = (),
                         defines: Optional[Mapping[str, object]] = None, runtime: bool = False,
                         script: Optional[PathLike] = None, ldflags: Sequence[str] = (),
                         inputs: Sequence[PathLike] = (), what: str = "") -> List[Path]:
        """Compile each of ``sources`` to an object in ``work`` and link them into ``out``.

        Parameters
        ----------
        sources : sequence of path-like
            C and assembly files, compiled in order to ``work/{i}_{stem}.o``.
        work : path-like
            An existing folder for the objects.
        out : path-like
            The linked file.
        cflags, include_dirs, defines, runtime
            As :meth:`compile` takes them, the same for every source.
        script : path-like, optional
            Without one, the objects (then ``inputs``) are combined into one relocatable object
            (:meth:`relocatable`); with one, they are linked statically by it
            (:meth:`link_command`, the target's ``libs`` last).
        ldflags : sequence of str
            Flags of the scripted link (e.g. ``-Wl,--gc-sections``).
        inputs : sequence of path-like
            Further objects linked after the compiled ones (a library, the runtime).
        what : str
            The scripted link in an error message: ``"<what> failed (exit N)"``.

        Returns
        -------
        list of Path
            The compiled objects, in the order of ``sources``.

        Raises
        ------
        BuildError
            A source does not compile or the link fails, with the tool's diagnostics.
        ToolNotFoundError
            The target's compiler is not installed.
        """
        objects = []
        for i, src in enumerate(sources):
            obj = Path(work) / f"{i}_{Path(src).stem}.o"
            self.compile(src, obj, cflags=cflags, include_dirs=include_dirs, defines=defines, runtime=runtime)
            objects.append(obj)
        if script is None:
            self.relocatable(objects + [Path(p) for p in inputs], out)
        else:
            self.run(self.link_command(objects + list(inputs), out, script=script, flags=ldflags),
                     what or f"linking {Path(out).name} for {self.cfg['arch']}")
        return objects


def _parse_depfile(path: Path) -> List[str]:
    """Dependencies from a gcc ``-MD`` file (make syntax: ``target: dep dep \\``)."""
    text = path.read_text().replace("\\\n", " ")
    _, _, deps = text.partition(":")
    out, token = [], ""
    for ch in deps.split(" "):  # spaces in paths arrive escaped as "\ "
        if token.endswith("\\"):
            token = token[:-1] + " " + ch
            continue
        if token:
            out.append(token)
        token = ch.strip()
    if token:
        out.append(token)
    return [d for d in (t.strip() for t in out) if d]


def build_host_program(source: PathLike, cflags: Sequence[str] = ("-O2",)) -> str:
    """Compile a small C program for this machine (e.g. the host device's CPU process).
    Cached by source content and compiler; returns the executable's path."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise ToolNotFoundError("gcc", "install the Debian package gcc (apt-get install -y gcc), or run `make setup`")
    src = Path(source)
    key = sha256_json({"version": CACHE_VERSION, "cc": os.path.realpath(cc), "cflags": list(cflags),
                        "source": sha256_file(src)})
    exe = cache_root() / "bin" / f"{src.stem}-{key[:16]}"
    if not exe.is_file():
        exe.parent.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_name(exe.name + f".{os.getpid()}.tmp")
        cmd = [cc, *cflags, "-Wall", "-o", str(tmp), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"compiling {src.name} for this machine failed (exit {proc.returncode})",
                             diagnostics=proc.stderr, command=cmd)
        os.replace(tmp, exe)
    return str(exe)
