"""Compile C for the device with the target's gcc, into relocatable libraries, cached by content.

``build(sources, cfg)`` compiles each source with the configuration's compiler and flags,
reads the kernels' signatures from DWARF, generates one C shim per kernel (so the compiler,
not Python, does the calling convention), and combines everything into one relocatable
object (``ld -r``): a :class:`Library`. Results are cached under ``$UTVM_HOST_CACHE`` (default
``~/.cache/utvm-host``) by a hash of the sources, every header they included, the flags and
the compiler's identity, so building the same thing again costs a few hashes.

The package's modules, bottom up: ``cache`` (hashes and cache entries), ``compiler`` (the
:class:`Toolchain` driver, :meth:`Toolchain.compile_and_link`), ``library`` (:class:`Library`,
signatures, shims, the target check), ``builder`` (:func:`build`, :func:`library_from_object`)
and ``runtime`` (the device runtime's builds).
"""
from __future__ import annotations

from ..arch.riscv import riscv_extensions
from .builder import PROGRESS_SOURCES, TVM_HINT, build, library_from_object, tvm_include_dirs
# The cache helpers stubs.py and export.py use (private names, kept where they were).
from .cache import CACHE_VERSION, PathLike, cached_entry, sha256_file, sha256_json, cache_root  # noqa: F401
from .compiler import DEVICE_PORTS, DEVICE_PROGRAMS, DEVICE_STUBS, LINKER_DIR, PACKAGE_ROOT, RUNTIME_INCLUDE, Toolchain, build_host_program, log
from .library import (SHIM_PREFIX, TVM_CONTEXT_FUNCTIONS, TVM_FFI_PREFIX, Library, check_target, context_source,
                      describe_machine, float_abi, kernel_signatures, shim_source, tvm_ffi_signature)
from .runtime import (ARCH_STUBS, RUNTIME_PARTS, build_runtime, build_runtime_parts, runtime_parts_needed,
                      runtime_sources)

__all__ = ["ARCH_STUBS", "CACHE_VERSION", "DEVICE_PORTS", "DEVICE_PROGRAMS", "DEVICE_STUBS", "LINKER_DIR", "PACKAGE_ROOT", "PROGRESS_SOURCES",
           "RUNTIME_INCLUDE", "RUNTIME_PARTS", "SHIM_PREFIX", "TVM_CONTEXT_FUNCTIONS", "TVM_FFI_PREFIX",
           "TVM_HINT", "Library", "PathLike", "Toolchain", "build", "build_host_program", "build_runtime",
           "build_runtime_parts", "cache_root", "check_target", "context_source", "describe_machine",
           "float_abi", "kernel_signatures", "library_from_object", "log", "riscv_extensions",
           "runtime_parts_needed", "runtime_sources", "shim_source", "tvm_ffi_signature", "tvm_include_dirs"]
