"""``build()``: C sources to a cached relocatable :class:`Library` with a shim per kernel, and
``library_from_object()``: the same for an object compiled elsewhere (TVM's LLVM backend)."""
from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..config import DeviceConfig
from ..elf import ElfFile
from ..errors import BuildError
from .cache import CACHE_VERSION, PathLike, cached_entry, _lookup, sha256_file, sha256_json, _store, _workdir, \
    cache_root
from .compiler import RUNTIME_INCLUDE, Toolchain, _parse_depfile, log
from .library import SHIM_PREFIX, TVM_CONTEXT_FUNCTIONS, Library, check_target, context_source, kernel_signatures, \
    shim_source

#: Builds of at least this many sources show a progress bar.
PROGRESS_SOURCES = 4
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


def _source_paths(sources: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    """The sources as resolved paths; :class:`BuildError` when there are none or one is missing."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(s).resolve() for s in sources]
    if not paths:
        raise BuildError("build() needs at least one source file")
    for p in paths:
        if not p.is_file():
            raise BuildError(f"source file '{p}' not found")
    return paths


def _include_dirs(paths: Sequence[Path], include_dirs: Sequence[PathLike]) -> List[str]:
    """The include folders, resolved; with the TVM wheels' headers when a source includes TVM's."""
    incs = [str(Path(d).resolve()) for d in include_dirs]
    if any(_TVM_INCLUDE.search(p.read_bytes()) for p in paths):   # TVM's C code generator's output
        incs += [d for d in tvm_include_dirs() if d not in incs]
    return incs


def _build_key(tc: Toolchain, paths: Sequence[Path], cflags: Sequence[str], incs: Sequence[str],
               defines: Optional[Mapping[str, object]]) -> str:
    """Cache key of a build: compiler, target, options, sources and the runtime's headers."""
    return sha256_json({
        "version": CACHE_VERSION, "compiler": tc.identity(), "target": [tc.cfg["arch"], tc.cflags],
        "cflags": list(cflags), "include_dirs": list(incs), "defines": {k: repr(v) for k, v in (defines or {}).items()},
        "sources": [[str(p), sha256_file(p)] for p in paths],
        "stubs": [[h.name, sha256_file(h)] for h in sorted(RUNTIME_INCLUDE.glob("*.h"))],
    })


def _compile_sources(tc: Toolchain, jobs: Sequence[Tuple[Path, Path, Path]], lib_name: str, *,
                     cflags: Sequence[str], include_dirs: Sequence[str],
                     defines: Optional[Mapping[str, object]]) -> str:
    """Compile ``(source, object, depfile)`` jobs in parallel (a progress bar for many);
    returns their warnings, joined."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(tc.compile, src, obj, cflags=cflags, include_dirs=include_dirs, defines=defines,
                               depfile=dep) for src, obj, dep in jobs]
        if len(futures) >= PROGRESS_SOURCES:   # a bar on a terminal or in a notebook
            from tqdm.auto import tqdm
            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), leave=False,
                          desc=f"compile {lib_name}", unit="file", disable=None):
                pass
        return "\n".join(w for w in (f.result() for f in futures) if w)


def _dependencies(depfiles: Sequence[Path]) -> Dict[str, str]:
    """``{real path: sha256}`` of every file the compiler read, from its ``-MD`` files."""
    deps: Dict[str, str] = {}
    for dep in depfiles:
        for d in _parse_depfile(dep):
            full = os.path.realpath(d)
            deps[full] = sha256_file(full)
    return deps


def _stack_usage(objects: Sequence[Path]) -> Dict[str, int]:
    """Frame bytes per function from gcc's ``.su`` files beside ``objects`` (deleted once read)."""
    usage: Dict[str, int] = {}
    for obj in objects:   # gcc's NAME.su: "file:line:col:function<TAB>bytes<TAB>qualifier" per line
        su = obj.with_suffix(".su")
        if su.is_file():
            for line in su.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1].strip().isdigit():
                    usage[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
            su.unlink()
    return usage


def _build_into(tc: Toolchain, work: Path, paths: Sequence[Path], lib_name: str, *, cflags: Sequence[str],
                include_dirs: Sequence[str], defines: Optional[Mapping[str, object]]) -> Tuple[str, Dict[str, str]]:
    """Make a build's cache entry in ``work`` (lib.o, warnings.txt, stack_usage.json); returns
    the warnings and the dependencies to record."""
    objects = [work / f"{i}_{p.stem}.o" for i, p in enumerate(paths)]
    depfiles = [work / f"{i}_{p.stem}.d" for i, p in enumerate(paths)]
    warnings = _compile_sources(tc, list(zip(paths, objects, depfiles)), lib_name, cflags=cflags,
                                include_dirs=include_dirs, defines=defines)
    if warnings:
        log.warning("compiler warnings for %s:\n%s", lib_name, warnings)
        (work / "warnings.txt").write_text(warnings)
    _add_shims(tc, objects, work)
    deps = _dependencies(depfiles)
    (work / "stack_usage.json").write_text(json.dumps(_stack_usage(objects), indent=1, sort_keys=True))
    for tmp in objects + depfiles:
        tmp.unlink()
    return warnings, deps


def build(sources: Union[PathLike, Sequence[PathLike]], cfg: DeviceConfig, *, cflags: Sequence[str] = (),
          include_dirs: Sequence[PathLike] = (), defines: Optional[Mapping[str, object]] = None,
          name: Optional[str] = None) -> Library:
    """Compile C sources for ``cfg``'s device into a relocatable :class:`Library`.

    Parameters
    ----------
    sources : path-like or sequence of path-like
        The C files (one path or several).
    cfg : DeviceConfig
        The device whose compiler and flags are used.
    cflags : sequence of str
        Added after the target's own (``-O2`` unless you pass an ``-O`` flag).
    include_dirs : sequence of path-like
        Extra ``-I`` folders (TVM's headers are added when a source includes them).
    defines : mapping, optional
        Macro names to values (None for a bare ``-DNAME``).
    name : str, optional
        The library's name in messages and memory maps (default: the sources' stems).

    Returns
    -------
    Library
        Cached by a hash of the sources, every header they included, the flags and the compiler.

    Raises
    ------
    BuildError
        With the compiler's diagnostics.
    ToolNotFoundError
        When the target's compiler is not installed.
    """
    paths = _source_paths(sources)
    tc = Toolchain(cfg)
    incs = _include_dirs(paths, include_dirs)
    entries = cache_root() / "lib" / _build_key(tc, paths, cflags, incs, defines)[:32]
    lib_name = name or _library_name(paths)
    hit = _lookup(entries)
    if hit is not None:
        log.debug("build cache hit for %s: %s", lib_name, hit)
        return Library(str(hit / "lib.o"), lib_name, cfg["arch"], tuple(map(str, paths)),
                       (hit / "warnings.txt").read_text() if (hit / "warnings.txt").exists() else "")
    work = _workdir("build-")
    try:
        warnings, deps = _build_into(tc, work, paths, lib_name, cflags=cflags, include_dirs=incs, defines=defines)
        final = _store(entries, work, deps)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Library(str(final / "lib.o"), lib_name, cfg["arch"], tuple(map(str, paths)), warnings)


def library_from_object(path: PathLike, cfg: DeviceConfig, name: Optional[str] = None) -> Library:
    """Wrap an existing relocatable object (e.g. from TVM's LLVM backend) as a :class:`Library`,
    adding shims for its kernels.

    Parameters
    ----------
    path : path-like
        The object file.
    cfg : DeviceConfig
        The device it must have been built for (checked before anything is linked).
    name : str, optional
        The library's name (default: the file's stem).

    Returns
    -------
    Library
        Cached by the object's content.

    Raises
    ------
    BuildError
        When the file is missing or cannot be combined; :class:`LinkError` when it was built
        for another target.
    """
    src = Path(path)
    if not src.is_file():
        raise BuildError(f"object file '{src}' not found")
    check_target(Library(str(src), name or src.stem, cfg["arch"]), cfg)   # before ld -r chokes on it
    tc = Toolchain(cfg)
    key = sha256_json({"version": CACHE_VERSION, "compiler": tc.identity(), "target": [cfg["arch"], tc.cflags],
                        "object": sha256_file(src)})
    entry = cached_entry("obj", key, lambda work: _add_shims(tc, [src.resolve()], work))
    return Library(str(entry / "lib.o"), name or src.stem, cfg["arch"], (str(src),))
