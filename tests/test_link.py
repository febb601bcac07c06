"""Linking at allocated addresses, for the host and every cross target; link errors."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, require_tool
from utvm_host import LinkError, build, devices
from utvm_host.elf import ElfFile
from utvm_host.layout import MemoryLayout
from utvm_host.link import Linker
from utvm_host.toolchain import SHIM_PREFIX, Toolchain, build_runtime

# The float add helper each soft-float target pulls from libgcc.
SOFT_FLOAT_ADD = {"rv32imac": "__addsf3", "rv64imac": "__addsf3", "cortex-m3": "__aeabi_fadd"}


def _layout(cfg) -> MemoryLayout:
    return MemoryLayout([(r.name, r.start, r.size, r.align) for r in cfg.resolved_layout()])


def _place_runtime_and_vadd(cfg, tmp_path):
    layout = _layout(cfg)
    linker = Linker(cfg, layout, tmp_path)
    runtime = linker.place(build_runtime(cfg), "runtime", {})
    lib = build([EXAMPLES / "vadd.c", EXAMPLES / "dot.c"], cfg)
    image = linker.place(lib, "vadd+dot", runtime.symbols)
    return layout, runtime, image


class TestPlacement:
    def test_cross_targets_link_at_allocated_addresses(self, cross_cfg, tmp_path):
        layout, runtime, image = _place_runtime_and_vadd(cross_cfg, tmp_path)
        text = next(b for b in image.blocks if b.what == ".text")
        rt_text = next(b for b in runtime.blocks if b.what == ".text")
        assert text.region == "text" and text.start >= rt_text.end          # after the runtime
        thumb = 1 if cross_cfg.abi["thumb"] else 0
        for name in ("vadd", "dot_i8", SHIM_PREFIX + "vadd"):
            addr = image.symbols[name]
            assert text.start <= addr - (addr & thumb) < text.end
            assert addr & 1 == thumb                                          # Thumb bit on Cortex-M
        for name in ("UTVMMain", "UTVMDone", "UTVMFillShim", "memcpy"):
            assert rt_text.start <= runtime.symbols[name] - thumb < rt_text.end
        # the parts linked on demand are not in the resident runtime
        assert not {"TVMAPISetLastError", "TVMBackendAllocWorkspace"} & set(runtime.symbols)
        helper = SOFT_FLOAT_ADD.get(cross_cfg["arch"])
        if helper:                                                            # libgcc came along
            assert text.start <= image.symbols[helper] - thumb < text.end
        # What we wrote equals what the target's own readelf reports for the linked file.
        readelf = require_tool(cross_cfg["toolchain"]["prefix"] + "readelf")
        out = subprocess.run([readelf, "-S", "-W", image.elf_path], capture_output=True, text=True).stdout
        for addr, data in image.segments:
            assert f"{addr:08x}" in out
        with ElfFile(image.elf_path) as elf:
            assert elf.elf_type == "ET_EXEC"
            for addr, data in image.segments:
                assert elf.read(addr, len(data)) == data

    def test_runtime_task_layout_follows_the_abi(self, cross_cfg, tmp_path):
        layout = _layout(cross_cfg)
        runtime = Linker(cross_cfg, layout, tmp_path).place(build_runtime(cross_cfg), "runtime", {})
        with ElfFile(runtime.elf_path) as elf:
            task = elf.struct_layout("UTVMTask")
        p = cross_cfg.pointer_size
        assert task == {"func": (0, p), "args": (p, p), "ret": (2 * p, p), "status": (3 * p, 4),
                        "error": (3 * p + 4, 4)}

    def test_host_layout_and_memory_map_after_linking(self, host_cfg, tmp_path):
        layout, runtime, image = _place_runtime_and_vadd(host_cfg, tmp_path)
        rows = [(r.owner, r.what) for r in layout.memory_map().rows]
        assert ("runtime", ".text") in rows and ("vadd+dot", ".text") in rows

    def test_failed_placement_frees_everything(self, host_cfg, tmp_path):
        cfg = host_cfg.copy()
        runtime = build_runtime(cfg)
        big = build([EXAMPLES / "matmul.c"], cfg, cflags=["-O3", "-funroll-all-loops"])
        # the runtime fits, matmul -O3 unrolled does not
        rt_text, big_text = (sum(s.size for s in lib.elf().sections if s.alloc and s.name.startswith(".text"))
                             for lib in (runtime, big))
        cfg["mem_layout"]["text"]["size"] = rt_text + big_text // 2
        layout = _layout(cfg)
        linker = Linker(cfg, layout, tmp_path)
        linker.place(runtime, "runtime", {})
        used = {a.name: a.used for a in layout}
        from utvm_host import LayoutError
        with pytest.raises(LayoutError):
            linker.place(big, "big", {})
        assert {a.name: a.used for a in layout} == used


class TestLinkErrors:
    def test_undefined_symbols_are_named(self, sess, cfg):
        lib = build([KERNELS / "undefined.c"], cfg)
        with pytest.raises(LinkError) as e:
            sess.load(lib)
        assert e.value.undefined == ["also_missing", "nowhere_defined"]
        assert str(e.value) == (
            "cannot load 'undefined': undefined symbols also_missing, nowhere_defined (defined neither by the "
            "library, the device runtime, the C library nor any loaded library); add the source that defines "
            "them to build(), or load the library that exports it first")
        assert [m.name for m in sess.modules if m.name == "undefined"] == []

    def test_library_for_another_target_is_refused(self, sess, cfg, host_cfg):
        require_tool("riscv64-unknown-elf-gcc")
        other = devices.spike(isa="rv32imac") if cfg.abi["elf_class"] == 64 else host_cfg
        lib = build([EXAMPLES / "vadd.c"], other)
        with pytest.raises(LinkError) as e:
            sess.load(lib)
        names = {("EM_X86_64", 64): "x86_64 64-bit (EM_X86_64, ELFCLASS64)",
                 ("EM_RISCV", 32): "RISC-V 32-bit (EM_RISCV, ELFCLASS32)",
                 ("EM_RISCV", 64): "RISC-V 64-bit (EM_RISCV, ELFCLASS64)",
                 ("EM_ARM", 32): "Arm 32-bit (EM_ARM, ELFCLASS32)"}
        built = names[(other.abi["elf_machine"], other.abi["elf_class"])]
        device = names[(cfg.abi["elf_machine"], cfg.abi["elf_class"])]
        assert str(e.value) == (f"cannot load 'vadd': it was built for {built}, but the device '{cfg.name}' is "
                                f"{device}; build it for this device: build(sources, cfg), or with TVM's LLVM "
                                "backend target=tvm_target(cfg)")

    def test_object_file_from_elsewhere_loads(self, sess, cfg, tmp_path):
        # An object compiled by hand (as TVM's LLVM backend or a makefile would): load() adds shims.
        tc = Toolchain(cfg)
        obj = tmp_path / "handmade.o"
        subprocess.run([tc.cc, "-c", "-g", "-O2", *tc.cflags, str(EXAMPLES / "dot.c"), "-o", str(obj)], check=True)
        mod = sess.load(str(obj))
        x = np.arange(-5, 5, dtype=np.int8)
        assert mod.name == "handmade"
        assert mod["dot_i8"](x, x, 10) == int((x.astype(np.int32) ** 2).sum())
        mod.unload()

    def test_load_refuses_sources(self, sess):
        with pytest.raises(TypeError) as e:
            sess.load("vadd.c")
        assert str(e.value) == "load() takes a Library from build() or an object file (.o), got 'vadd.c'"


class TestRuntimePortability:
    def test_runtime_compiles_warning_free_for_every_target(self, cross_cfg, host_cfg, tmp_path):
        from utvm_host.toolchain import DEVICE_STUBS
        for cfg in (host_cfg, cross_cfg):
            tc = Toolchain(cfg)
            for src in sorted((DEVICE_STUBS / "runtime").glob("*.c")):
                warnings = tc.compile(src, tmp_path / f"{src.stem}.o", cflags=["-Os", "-Wall", "-Wextra",
                                      "-Wpedantic", "-Wconversion", "-Werror"], runtime=True)
                assert warnings == ""
