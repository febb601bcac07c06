"""The device runtime, built for a configuration: the resident part and the parts linked on demand."""
from __future__ import annotations

from pathlib import Path
from typing import Container, Dict, Iterable, List, Mapping, Sequence, Set

from .. import arch
from ..config import DeviceConfig
from ..errors import BuildError
from .cache import CACHE_VERSION, cached_entry, sha256_file, sha256_json
from .compiler import DEVICE_PORTS, DEVICE_STUBS, RUNTIME_INCLUDE, Toolchain
from .library import Library

#: Per-architecture device code (entry, trap handler, HTIF), beside the portable runtime:
#: ELF machine -> folder under device_stubs/ports/ (from utvm_host.arch).
ARCH_STUBS = arch.stub_folders()
#: Parts of the runtime linked on demand: placed when a loaded library calls into them.
RUNTIME_PARTS = DEVICE_STUBS / "runtime" / "on_demand"
#: How every runtime source is compiled (besides the target's runtime_cflags).
_RUNTIME_CFLAGS = ("-Os", "-Wall", "-Wextra")


def runtime_sources(cfg: DeviceConfig) -> List[Path]:
    """The C and assembly files of the device runtime for ``cfg``: portable ones first."""
    sources = sorted((DEVICE_STUBS / "runtime").glob("*.c"))
    port = ARCH_STUBS.get(cfg.abi["elf_machine"])
    if port:
        folder = DEVICE_PORTS / port
        sources += sorted(folder.glob("*.c")) + sorted(folder.glob("*.S"))
    return sources


def _runtime_key(tc: "Toolchain", cfg: DeviceConfig, sources: Sequence[Path], defines: Mapping[str, object]) -> str:
    """Cache key of runtime objects: the compiler, target, defines and every runtime source and header."""
    headers = sorted(RUNTIME_INCLUDE.glob("*.h")) + sorted((DEVICE_STUBS / "runtime").glob("*.h"))
    return sha256_json({"version": CACHE_VERSION, "compiler": tc.identity(), "target": [cfg["arch"], tc.cflags],
                         "runtime_cflags": tc.runtime_cflags, "defines": {k: str(v) for k, v in defines.items()},
                         "sources": [[p.name, sha256_file(p)] for p in list(sources) + headers]})


def build_runtime(cfg: DeviceConfig) -> Library:
    """The resident device runtime (device_stubs/runtime and the architecture's port under device_stubs/ports/) for
    ``cfg``, as a relocatable object; :func:`build_runtime_parts` has the rest.

    Parameters
    ----------
    cfg : DeviceConfig
        The device to build for.

    Returns
    -------
    Library
        Named ``runtime``; cached by compiler, target, defines and every runtime file.
    """
    tc = Toolchain(cfg)
    sources = runtime_sources(cfg)
    defines = cfg.runtime_defines()
    key = _runtime_key(tc, cfg, sources, defines)

    def make(work: Path) -> None:
        tc.compile_and_link(sources, work, work / "lib.o", cflags=_RUNTIME_CFLAGS, runtime=True, defines=defines)

    entry = cached_entry("runtime", key, make)
    return Library(str(entry / "lib.o"), "runtime", cfg["arch"], tuple(map(str, sources)))


def build_runtime_parts(cfg: DeviceConfig) -> List[Library]:
    """The parts of the device runtime linked on demand (device_stubs/runtime/on_demand/: the
    error API, the workspace allocator), one relocatable object each, named ``runtime (NAME)``.

    A session places a part the first time a library it loads calls into it
    (:func:`runtime_parts_needed`); a firmware link takes the ones its kernels call.

    Parameters
    ----------
    cfg : DeviceConfig
        The device to build for.

    Returns
    -------
    list of Library
        One per source of the on-demand folder, in name order.
    """
    tc = Toolchain(cfg)
    sources = sorted(RUNTIME_PARTS.glob("*.c"))
    defines = cfg.runtime_defines()
    key = _runtime_key(tc, cfg, sources, defines)

    def make(work: Path) -> None:
        for src in sources:
            tc.compile(src, work / f"{src.stem}.o", cflags=list(_RUNTIME_CFLAGS), runtime=True, defines=defines)

    entry = cached_entry("runtime-parts", key, make)
    return [Library(str(entry / f"{src.stem}.o"), f"runtime ({src.stem.replace('utvm_', '')})", cfg["arch"],
                    (str(src),)) for src in sources]


def _parts_wanted(parts: Sequence[Library], defines: Mapping[str, Set[str]], calls: Mapping[str, Set[str]],
                  want: Set[str], present: Container[str]) -> List[Library]:
    """The parts defining a name of ``want``, and those they call in turn (transitively)."""
    chosen: List[Library] = []
    grew = True
    while grew:
        grew = False
        for part in parts:
            if part not in chosen and defines[part.path] & want:
                chosen.append(part)
                want |= {n for n in calls[part.path] if n not in present}
                grew = True
    return chosen


def _callees_first(chosen: List[Library], defines: Mapping[str, Set[str]],
                   calls: Mapping[str, Set[str]]) -> List[Library]:
    """``chosen`` ordered so that each part comes after the parts it calls."""
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


def runtime_parts_needed(parts: Sequence[Library], wanted: Iterable[str], present: Container[str]) -> List[Library]:
    """The parts (of :func:`build_runtime_parts`) to link for code that calls ``wanted``.

    Parameters
    ----------
    parts : sequence of Library
        The runtime's parts, from :func:`build_runtime_parts`.
    wanted : iterable of str
        Names the code calls.
    present : container of str
        Names on the device already.

    Returns
    -------
    list of Library
        Those defining a wanted name, and those they call in turn, ordered so that each comes
        after the parts it calls (link them in this order).

    Raises
    ------
    BuildError
        When the parts call each other in a circle.
    """
    defines: Dict[str, Set[str]] = {p.path: set(p.elf().defined_symbols()) for p in parts}
    calls: Dict[str, Set[str]] = {p.path: set(p.elf().undefined_symbols()) for p in parts}
    want = {n for n in wanted if n not in present}
    return _callees_first(_parts_wanted(parts, defines, calls, want, present), defines, calls)
