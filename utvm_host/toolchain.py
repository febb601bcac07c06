"""Compile C for the device with the target's gcc, into relocatable libraries, cached by content.

``build(sources, cfg)`` compiles each source with the configuration's compiler and flags,
reads the kernels' signatures from DWARF, generates one C shim per kernel (so the compiler,
not Python, does the calling convention), and combines everything into one relocatable
object (``ld -r``): a :class:`Library`. Results are cached under ``$UTVM_HOST_CACHE`` (default
``~/.cache/utvm-host``) by a hash of the sources, every header they included, the flags and
the compiler's identity, so building the same thing again costs a few hashes.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Container, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import abi, arch
from .arch.riscv import riscv_extensions  # noqa: F401  (public here too)
from .config import DeviceConfig
from .elf import CType, ElfFile, Parameter, Signature
from .errors import BuildError, LinkError, ToolNotFoundError

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Bump when the build products change shape, so old cache entries are not reused.
CACHE_VERSION = "utvm-host-build-7"
SHIM_PREFIX = "__utvm_shim_"
#: Functions on the TVM FFI ABI (TVM >= 0.20: C codegen and LLVM objects) are named this + name.
TVM_FFI_PREFIX = "__tvm_ffi_"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEVICE_STUBS = PACKAGE_ROOT / "device_stubs"
LINKER_DIR = PACKAGE_ROOT / "linker"
RUNTIME_INCLUDE = DEVICE_STUBS / "include"
_DEFAULT_OPT = "-O2"
#: Builds of at least this many sources show a progress bar.
PROGRESS_SOURCES = 4


def cache_root() -> Path:
    """Where build products are cached: ``$UTVM_HOST_CACHE`` or ``~/.cache/utvm-host``."""
    root = os.environ.get("UTVM_HOST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "utvm-host"


def _sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@dataclass
class Library:
    """A relocatable library for one target: kernels plus their generated shims.

    ``path`` is the combined ``.o``; ``name`` names it in messages and memory maps.
    """
    path: str
    name: str
    arch: str
    sources: Tuple[str, ...] = ()
    warnings: str = ""
    _signatures: Optional[Dict[str, Signature]] = field(default=None, repr=False)
    _elf: Optional[ElfFile] = field(default=None, repr=False)

    @property
    def stack_usage(self) -> Dict[str, int]:
        """Bytes of stack each function's own frame takes, as gcc measured it (-fstack-usage);
        empty when unknown (an object built elsewhere)."""
        path = Path(self.path).with_name("stack_usage.json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def elf(self) -> ElfFile:
        """The object, parsed once and kept (symbols and DWARF are cached in it)."""
        if self._elf is None:
            self._elf = ElfFile(self.path)
        return self._elf

    def signatures(self) -> Dict[str, Signature]:
        """Kernel signatures read from the library's DWARF (shims excluded); TVM FFI functions
        (``__tvm_ffi_NAME``) have their ABI's fixed signature."""
        if self._signatures is None:
            self._signatures = {n: s for n, s in kernel_signatures(self.elf()).items() if not n.startswith(SHIM_PREFIX)}
        return self._signatures

    def tvm_functions(self) -> Dict[str, str]:
        """TVM FFI functions by the name TVM gave them: ``{"vadd": "__tvm_ffi_vadd"}``."""
        return {n[len(TVM_FFI_PREFIX):]: n for n in self.signatures() if n.startswith(TVM_FFI_PREFIX)}

    @property
    def size(self) -> int:
        """Bytes of allocatable sections in the object (before linking pulls in helpers)."""
        return sum(s.size for s in self.elf().sections if s.alloc)


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


def tvm_ffi_signature(name: str, pointer_size: int) -> Signature:
    """``int32_t NAME(void *self, void *args, int32_t num_args, void *result)``: the TVM FFI
    ABI every TVM-generated function has (tvm/ffi/c_api.h, ``TVMFFISafeCallType``)."""
    void = CType("void", "void", None, False, False, None)
    ptr = CType("pointer", "void *", pointer_size, False, False, void)
    i32 = CType("int", "int32_t", 4, True, False, None)
    params = (Parameter("self", ptr), Parameter("args", ptr), Parameter("num_args", i32), Parameter("result", ptr))
    return Signature(name, i32, params, False, None, None)


def kernel_signatures(elf: ElfFile) -> Dict[str, Signature]:
    """Signatures of the functions a library defines: from DWARF, and for TVM FFI functions
    (whose objects from TVM's LLVM backend carry no usable DWARF) from their ABI."""
    sigs = elf.signatures()
    for name, sym in elf.defined_symbols().items():
        if name.startswith(TVM_FFI_PREFIX) and sym.type == "FUNC":
            sigs[name] = tvm_ffi_signature(name, elf.elf_class // 8)
    return sigs


#: Runtime functions TVM's LLVM backend calls through a pointer variable ``__NAME`` that TVM's
#: own loader fills in (weak and zero in the object): the library's shims define them instead.
TVM_CONTEXT_FUNCTIONS = ("TVMBackendAllocWorkspace", "TVMBackendFreeWorkspace", "TVMBackendParallelLaunch",
                         "TVMBackendParallelBarrier", "TVMAPISetLastError")


def context_source(names: Sequence[str]) -> str:
    """C defining each ``__TVMName`` pointer (weak in a TVM LLVM object) as the runtime's
    ``TVMName``: a strong definition wins over the object's weak one when combined."""
    lines = [f"extern char {n[2:]}[];\nvoid *{n} = (void *){n[2:]};" for n in names]
    return ("\n/* TVM LLVM context pointers, set to the device runtime's functions */\n" + "\n".join(lines) + "\n"
            if lines else "")


def shim_source(signatures: Iterable[Signature]) -> str:
    """C for one shim per supported signature: ``int32_t __utvm_shim_NAME(const unsigned char
    *args, unsigned char *ret)`` reads each argument from its 8-byte slot and calls the kernel."""
    lines = ["/* generated by utvm-host: argument block -> kernel call; the compiler does the ABI */",
             "#include <stdint.h>", ""]
    for sig in signatures:
        if sig.name.startswith(SHIM_PREFIX) or abi.unsupported_reason(sig) is not None:
            continue
        params = [abi.c_type_name(p.type) for p in sig.params]
        ret = abi.c_type_name(sig.return_type)
        lines.append(f"extern {ret} {sig.name}({', '.join(params) or 'void'});")
        loads = [f"*({t} const *)(args + {abi.SLOT_SIZE * i})" for i, t in enumerate(params)]
        call = f"{sig.name}({', '.join(loads)})"
        lines.append(f"int32_t {SHIM_PREFIX}{sig.name}(const unsigned char *args, unsigned char *ret) {{")
        lines.append("  (void)args;")
        lines.append(f"  {call};" if ret == "void" else f"  *({ret} *)ret = {call};")
        lines.append("  (void)ret;\n  return 0;\n}\n")
    return "\n".join(lines)


#: An ``#include`` of a TVM or DLPack header: such sources get the TVM wheels' include folders.
_TVM_INCLUDE = re.compile(rb'^\s*#\s*include\s*[<"](?:tvm/|dlpack/)', re.M)
TVM_HINT = "install the optional extra: pip install 'utvm-host[tvm]' (apache-tvm and apache-tvm-ffi)"


def tvm_include_dirs() -> List[str]:
    """The C headers of the installed TVM wheels (``tvm_ffi/include`` with DLPack, and
    ``tvm/include``), found without importing TVM. :class:`BuildError` when TVM is missing."""
    dirs = []
    for package in ("tvm_ffi", "tvm"):
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        inc = next((Path(f) / "include" for f in folders if (Path(f) / "include").is_dir()), None)
        if inc is None:
            raise BuildError(f"compiling TVM-generated C needs the headers of the Python package '{package}', "
                             f"which is not installed; {TVM_HINT}")
        dirs.append(str(inc))
    return dirs


def _library_name(sources: Sequence[Path]) -> str:
    return "+".join(p.stem for p in sources)


def _lookup(entries: Path) -> Optional[Path]:
    """A cache entry whose recorded dependencies are all unchanged, or None."""
    if not entries.is_dir():
        return None
    for entry in sorted(entries.iterdir()):
        manifest = entry / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            deps = json.loads(manifest.read_text())["deps"]
            if all(os.path.isfile(p) and _sha256_file(p) == h for p, h in deps.items()):
                return entry
        except (OSError, ValueError, KeyError):
            continue
    return None


def _store(entries: Path, work: Path, deps: Dict[str, str]) -> Path:
    (work / "manifest.json").write_text(json.dumps({"deps": deps}, indent=1, sort_keys=True))
    entries.mkdir(parents=True, exist_ok=True)
    final = entries / _sha256_json(deps)[:16]
    try:
        os.rename(work, final)
    except OSError:  # another process stored the same entry first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    return final


def _add_shims(tc: Toolchain, objects: List[Path], work: Path) -> None:
    """Compile the shims for the kernels in ``objects`` and combine all into work/lib.o."""
    combined = work / "kernels.o"
    tc.relocatable(objects, combined)
    with ElfFile(combined) as elf:
        defined = elf.defined_symbols()   # an object that has its shims already (a built lib.o) keeps them
        sigs = [s for s in kernel_signatures(elf).values() if SHIM_PREFIX + s.name not in defined]
        contexts = sorted(n for n, sym in elf.defined_symbols().items()
                          if sym.bind == "WEAK" and n[2:] in TVM_CONTEXT_FUNCTIONS and n.startswith("__"))
    shim_c = work / "shims.c"
    shim_c.write_text(shim_source(sigs) + context_source(contexts))
    tc.compile(shim_c, work / "shims.o", cflags=["-O1", "-fno-strict-aliasing"])
    tc.relocatable([combined, work / "shims.o"], work / "lib.o")


def build(sources: Union[PathLike, Sequence[PathLike]], cfg: DeviceConfig, *, cflags: Sequence[str] = (),
          include_dirs: Sequence[PathLike] = (), defines: Optional[Mapping[str, object]] = None,
          name: Optional[str] = None) -> Library:
    """Compile C sources for ``cfg``'s device into a relocatable :class:`Library`.

    ``cflags`` are added after the target's own (``-O2`` unless you pass an ``-O`` flag);
    ``defines`` maps macro names to values (None for a bare ``-DNAME``). Raises
    :class:`BuildError` with the compiler's diagnostics, :class:`ToolNotFoundError` when the
    target's compiler is not installed.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(s).resolve() for s in sources]
    if not paths:
        raise BuildError("build() needs at least one source file")
    for p in paths:
        if not p.is_file():
            raise BuildError(f"source file '{p}' not found")
    tc = Toolchain(cfg)
    incs = [str(Path(d).resolve()) for d in include_dirs]
    if any(_TVM_INCLUDE.search(p.read_bytes()) for p in paths):   # TVM's C code generator's output
        incs += [d for d in tvm_include_dirs() if d not in incs]
    key = _sha256_json({
        "version": CACHE_VERSION, "compiler": tc.identity(), "target": [cfg["arch"], tc.cflags],
        "cflags": list(cflags), "include_dirs": incs, "defines": {k: repr(v) for k, v in (defines or {}).items()},
        "sources": [[str(p), _sha256_file(p)] for p in paths],
        "stubs": [[h.name, _sha256_file(h)] for h in sorted(RUNTIME_INCLUDE.glob("*.h"))],
    })
    entries = cache_root() / "lib" / key[:32]
    lib_name = name or _library_name(paths)
    hit = _lookup(entries)
    if hit is not None:
        log.debug("build cache hit for %s: %s", lib_name, hit)
        return Library(str(hit / "lib.o"), lib_name, cfg["arch"], tuple(map(str, paths)),
                       (hit / "warnings.txt").read_text() if (hit / "warnings.txt").exists() else "")
    cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_root()))
    try:
        objects = [work / f"{i}_{p.stem}.o" for i, p in enumerate(paths)]
        depfiles = [work / f"{i}_{p.stem}.d" for i, p in enumerate(paths)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            futures = [pool.submit(tc.compile, src, obj, cflags=cflags, include_dirs=incs, defines=defines,
                                   depfile=dep) for src, obj, dep in zip(paths, objects, depfiles)]
            if len(futures) >= PROGRESS_SOURCES:   # a bar on a terminal or in a notebook
                from tqdm.auto import tqdm
                for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), leave=False,
                              desc=f"compile {lib_name}", unit="file", disable=None):
                    pass
            warnings = "\n".join(w for w in (f.result() for f in futures) if w)
        if warnings:
            log.warning("compiler warnings for %s:\n%s", lib_name, warnings)
            (work / "warnings.txt").write_text(warnings)
        _add_shims(tc, objects, work)
        deps: Dict[str, str] = {}
        for dep in depfiles:
            for d in _parse_depfile(dep):
                full = os.path.realpath(d)
                deps[full] = _sha256_file(full)
        usage: Dict[str, int] = {}
        for obj in objects:   # gcc's NAME.su: "file:line:col:function<TAB>bytes<TAB>qualifier" per line
            su = obj.with_suffix(".su")
            if su.is_file():
                for line in su.read_text().splitlines():
                    parts = line.split("\t")
                    if len(parts) >= 2 and parts[1].strip().isdigit():
                        usage[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
                su.unlink()
        (work / "stack_usage.json").write_text(json.dumps(usage, indent=1, sort_keys=True))
        for tmp in objects + depfiles:
            tmp.unlink()
        final = _store(entries, work, deps)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Library(str(final / "lib.o"), lib_name, cfg["arch"], tuple(map(str, paths)), warnings)


def _cached_entry(kind: str, key: str, make: Callable[[Path], None]) -> Path:
    """The cache entry ``kind/key``, made by ``make(workdir)`` in a private folder and renamed
    into place (atomic: a concurrent builder of the same entry loses the race harmlessly)."""
    entry = cache_root() / kind / key[:32]
    if not (entry / "lib.o").is_file():
        cache_root().mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=cache_root()))
        try:
            make(work)
            entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(work, entry)
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return entry


def describe_machine(machine: str, elf_class: int) -> str:
    """``"RISC-V 32-bit (EM_RISCV, ELFCLASS32)"``."""
    return f"{arch.machine_name(machine)} {elf_class}-bit ({machine}, ELFCLASS{elf_class})"


_FIX = "build it for this device: build(sources, cfg), or with TVM's LLVM backend target=tvm_target(cfg)"


def float_abi(cfg: DeviceConfig) -> str:
    """How the device passes floats: RISC-V "soft-float"/"single-float"/"double-float" (from
    -mabi), Arm "hard-float" (VFP registers) or "soft-float"; "" where it does not matter."""
    family = arch.lookup(cfg.abi["elf_machine"])
    return family.float_abi(cfg) if family is not None else ""


def check_target(lib: Library, cfg: DeviceConfig) -> None:
    """Refuse a library built for another machine, word size, byte order, float ABI or (RISC-V)
    for extensions the device lacks, with a message saying which and how to rebuild."""
    elf = lib.elf()
    elf.validate()
    want = (cfg.abi["elf_machine"], cfg.abi["elf_class"], cfg.little_endian)
    got = (elf.machine, elf.elf_class, elf.little_endian)
    if want != got:
        raise LinkError(
            f"cannot load '{lib.name}': it was built for {describe_machine(got[0], got[1])}"
            f"{'' if got[2] else ', big-endian'}, but the device '{cfg.name}' is "
            f"{describe_machine(want[0], want[1])}; {_FIX}")
    device_abi = float_abi(cfg)
    family = arch.lookup(elf.machine)
    if family is None:
        return
    lib_abi = family.library_float_abi(elf)
    missing, isa = family.missing_extensions(elf, cfg)
    if missing:
        raise LinkError(f"cannot load '{lib.name}': its code uses the {family.machine_names[elf.machine]} extension"
                        f"{'s' if len(missing) > 1 else ''} {', '.join(m.upper() for m in missing)} ({isa}), "
                        f"which the device '{cfg.name}' ({cfg['arch']}) does not have; {_FIX}")
    if lib_abi is None:
        return
    if lib_abi != device_abi:
        raise LinkError(f"cannot load '{lib.name}': it passes floats by the {lib_abi} ABI, but the device "
                        f"'{cfg.name}' ({cfg['arch']}, {cfg.abi['name']}) uses the {device_abi} ABI; {_FIX}")


def library_from_object(path: PathLike, cfg: DeviceConfig, name: Optional[str] = None) -> Library:
    """Wrap an existing relocatable object (e.g. from TVM's LLVM backend) as a :class:`Library`,
    adding shims for its kernels. Cached by the object's content."""
    src = Path(path)
    if not src.is_file():
        raise BuildError(f"object file '{src}' not found")
    check_target(Library(str(src), name or src.stem, cfg["arch"]), cfg)   # before ld -r chokes on it
    tc = Toolchain(cfg)
    key = _sha256_json({"version": CACHE_VERSION, "compiler": tc.identity(), "target": [cfg["arch"], tc.cflags],
                        "object": _sha256_file(src)})
    entry = _cached_entry("obj", key, lambda work: _add_shims(tc, [src.resolve()], work))
    return Library(str(entry / "lib.o"), name or src.stem, cfg["arch"], (str(src),))


#: Per-architecture device code (entry, trap handler, HTIF), beside the portable runtime:
#: ELF machine -> folder under device_stubs/ (from utvm_host.arch).
ARCH_STUBS = arch.stub_folders()


def runtime_sources(cfg: DeviceConfig) -> List[Path]:
    """The C and assembly files of the device runtime for ``cfg``: portable ones first."""
    sources = sorted((DEVICE_STUBS / "runtime").glob("*.c"))
    port = ARCH_STUBS.get(cfg.abi["elf_machine"])
    if port:
        folder = DEVICE_STUBS / port
        sources += sorted(folder.glob("*.c")) + sorted(folder.glob("*.S"))
    return sources


#: Parts of the runtime linked on demand: placed when a loaded library calls into them.
RUNTIME_PARTS = DEVICE_STUBS / "runtime" / "on_demand"


def _runtime_key(tc: "Toolchain", cfg: DeviceConfig, sources: Sequence[Path], defines: Mapping[str, object]) -> str:
    """Cache key of runtime objects: the compiler, target, defines and every runtime source and header."""
    headers = sorted(RUNTIME_INCLUDE.glob("*.h")) + sorted((DEVICE_STUBS / "runtime").glob("*.h"))
    return _sha256_json({"version": CACHE_VERSION, "compiler": tc.identity(), "target": [cfg["arch"], tc.cflags],
                         "runtime_cflags": tc.runtime_cflags, "defines": {k: str(v) for k, v in defines.items()},
                         "sources": [[p.name, _sha256_file(p)] for p in list(sources) + headers]})


def build_runtime(cfg: DeviceConfig) -> Library:
    """The resident device runtime (device_stubs/runtime and the architecture's port) for
    ``cfg``, as a relocatable object; :func:`build_runtime_parts` has the rest."""
    tc = Toolchain(cfg)
    sources = runtime_sources(cfg)
    defines = cfg.runtime_defines()
    key = _runtime_key(tc, cfg, sources, defines)

    def make(work: Path) -> None:
        objects = []
        for src in sources:
            obj = work / (src.name.replace(".", "_") + ".o")
            tc.compile(src, obj, cflags=["-Os", "-Wall", "-Wextra"], runtime=True, defines=defines)
            objects.append(obj)
        tc.relocatable(objects, work / "lib.o")

    entry = _cached_entry("runtime", key, make)
    return Library(str(entry / "lib.o"), "runtime", cfg["arch"], tuple(map(str, sources)))


def build_runtime_parts(cfg: DeviceConfig) -> List[Library]:
    """The parts of the device runtime linked on demand (device_stubs/runtime/on_demand/: the
    error API, the workspace allocator), one relocatable object each, named ``runtime (NAME)``.
    A session places a part the first time a library it loads calls into it
    (:func:`runtime_parts_needed`); a firmware link takes the ones its kernels call."""
    tc = Toolchain(cfg)
    sources = sorted(RUNTIME_PARTS.glob("*.c"))
    defines = cfg.runtime_defines()
    key = _runtime_key(tc, cfg, sources, defines)

    def make(work: Path) -> None:
        for src in sources:
            tc.compile(src, work / f"{src.stem}.o", cflags=["-Os", "-Wall", "-Wextra"], runtime=True,
                       defines=defines)

    entry = _cached_entry("runtime-parts", key, make)
    return [Library(str(entry / f"{src.stem}.o"), f"runtime ({src.stem.replace('utvm_', '')})", cfg["arch"],
                    (str(src),)) for src in sources]


def runtime_parts_needed(parts: Sequence[Library], wanted: Iterable[str], present: Container[str]) -> List[Library]:
    """The parts (of :func:`build_runtime_parts`) to link for code that calls the names in
    ``wanted`` where the names in ``present`` are on the device already: those defining a
    wanted name, and those they call in turn, ordered so that each comes after the parts it
    calls (link them in this order)."""
    defines = {p.path: set(p.elf().defined_symbols()) for p in parts}
    calls = {p.path: set(p.elf().undefined_symbols()) for p in parts}
    want = {n for n in wanted if n not in present}
    chosen: List[Library] = []
    grew = True
    while grew:
        grew = False
        for part in parts:
            if part not in chosen and defines[part.path] & want:
                chosen.append(part)
                want |= {n for n in calls[part.path] if n not in present}
                grew = True
    ordered: List[Library] = []
    while chosen:
        ready = [p for p in chosen
                 if not any(calls[p.path] & defines[q.path] for q in chosen if q is not p)]
        if not ready:
            raise BuildError("the device runtime's parts call each other in a circle: "
                             + ", ".join(p.name for p in chosen) + "; please report this")
        ordered += ready
        chosen = [p for p in chosen if p not in ready]
    return ordered


def build_host_program(source: PathLike, cflags: Sequence[str] = ("-O2",)) -> str:
    """Compile a small C program for this machine (e.g. the host device's CPU process).
    Cached by source content and compiler; returns the executable's path."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise ToolNotFoundError("gcc", "install the Debian package gcc (apt-get install -y gcc), or run `make setup`")
    src = Path(source)
    key = _sha256_json({"version": CACHE_VERSION, "cc": os.path.realpath(cc), "cflags": list(cflags),
                        "source": _sha256_file(src)})
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
