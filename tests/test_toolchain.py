"""build(): compiling for every target, diagnostics, the content-hash cache, generated shims."""
from __future__ import annotations

import time

import pytest

from helpers import EXAMPLES, KERNELS
from utvm_host import BuildError, ToolNotFoundError, build, devices
from utvm_host.elf import ElfFile
from utvm_host.toolchain import SHIM_PREFIX, shim_source


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty build cache."""
    monkeypatch.setenv("UTVM_HOST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class TestBuild:
    def test_host_library_has_kernels_and_shims(self, host_cfg, cache):
        lib = build([EXAMPLES / "vadd.c", EXAMPLES / "dot.c"], host_cfg, cflags=["-O2"])
        assert lib.name == "vadd+dot"
        with ElfFile(lib.path) as elf:
            assert elf.elf_type == "ET_REL" and elf.machine == host_cfg.abi["elf_machine"]
            defined = elf.defined_symbols()
        for name in ("vadd", "dot_i8", SHIM_PREFIX + "vadd", SHIM_PREFIX + "dot_i8"):
            assert name in defined
        sigs = lib.signatures()
        assert sorted(sigs) == ["dot_i8", "vadd"]
        assert [p.type.spelling for p in sigs["vadd"].params] == ["const float *", "const float *", "float *",
                                                                  "int32_t"]

    def test_cross_targets(self, cross_cfg, cache):
        lib = build([EXAMPLES / "vadd.c", EXAMPLES / "matmul.c"], cross_cfg)
        with ElfFile(lib.path) as elf:
            assert (elf.machine, elf.elf_class) == (cross_cfg.abi["elf_machine"], cross_cfg.abi["elf_class"])
            assert elf.elf_type == "ET_REL"
            assert SHIM_PREFIX + "matmul_i8" in elf.defined_symbols()
        sig = lib.signatures()["matmul_i8"]
        assert [p.type.spelling for p in sig.params] == ["const int8_t *", "const int8_t *", "int32_t *", "int32_t"]

    def test_defines_reach_the_compiler(self, host_cfg, cache, tmp_path):
        src = tmp_path / "k.c"
        src.write_text("#include <stdint.h>\nint32_t k(void) { return VALUE; }\n")
        lib = build([src], host_cfg, defines={"VALUE": 42})
        with ElfFile(lib.path) as elf:
            assert "k" in elf.defined_symbols()
        with pytest.raises(BuildError) as e:
            build([src], host_cfg)                       # VALUE undefined without the define
        assert "VALUE" in e.value.diagnostics and "undeclared" in e.value.diagnostics


class TestDiagnostics:
    def test_compiler_errors_reach_the_user(self, host_cfg, cache):
        with pytest.raises(BuildError) as e:
            build([KERNELS / "broken.c"], host_cfg)
        err = e.value
        assert str(err).startswith("compiling broken.c for x86_64 failed (exit 1)\n")
        assert "broken.c:2:" in err.diagnostics and "expected expression" in err.diagnostics
        assert err.command[0].endswith("gcc")

    def test_missing_source(self, host_cfg, tmp_path):
        with pytest.raises(BuildError) as e:
            build([tmp_path / "nope.c"], host_cfg)
        assert str(e.value) == f"source file '{tmp_path / 'nope.c'}' not found"

    def test_missing_compiler_names_the_package(self, cache):
        cfg = devices.spike(isa="rv32imac")
        cfg["toolchain"]["prefix"] = "nonexistent-"
        with pytest.raises(ToolNotFoundError) as e:
            build([EXAMPLES / "vadd.c"], cfg)
        assert str(e.value) == ("nonexistent-gcc not found: install the Debian package(s) gcc-riscv64-unknown-elf "
                                "picolibc-riscv64-unknown-elf (apt-get install -y gcc-riscv64-unknown-elf "
                                "picolibc-riscv64-unknown-elf), or run `make setup`")


class TestCache:
    def test_rebuild_is_free_and_header_edits_invalidate(self, host_cfg, cache, tmp_path):
        inc = tmp_path / "inc"
        inc.mkdir()
        (inc / "k.h").write_text("#define K 1\n")
        src = tmp_path / "k.c"
        src.write_text('#include <stdint.h>\n#include "k.h"\nint32_t k(void) { return K; }\n')
        t0 = time.perf_counter()
        first = build([src], host_cfg, include_dirs=[inc])
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build([src], host_cfg, include_dirs=[inc])
        warm = time.perf_counter() - t0
        assert again.path == first.path
        assert warm < cold
        (inc / "k.h").write_text("#define K 2\n")        # a header changes: a new entry
        third = build([src], host_cfg, include_dirs=[inc])
        assert third.path != first.path
        (inc / "k.h").write_text("#define K 1\n")        # and back: the first entry is valid again
        assert build([src], host_cfg, include_dirs=[inc]).path == first.path

    def test_flags_and_targets_are_part_of_the_key(self, host_cfg, cache):
        a = build([EXAMPLES / "vadd.c"], host_cfg, cflags=["-O1"])
        b = build([EXAMPLES / "vadd.c"], host_cfg, cflags=["-O2"])
        assert a.path != b.path

    def test_failed_build_leaves_no_entry(self, host_cfg, cache):
        with pytest.raises(BuildError):
            build([KERNELS / "broken.c"], host_cfg)
        assert not (cache / "lib").exists() or not any((cache / "lib").iterdir())
        assert not [p for p in cache.iterdir() if p.name.startswith("build-")]


class TestShims:
    def test_generated_source(self, host_cfg, cache):
        lib = build([KERNELS / "mixed.c"], host_cfg)
        text = shim_source([lib.signatures()["mixed"], lib.signatures()["nothing"]])
        assert text == (
            "/* generated by utvm-host: argument block -> kernel call; the compiler does the ABI */\n"
            "#include <stdint.h>\n\n"
            "extern double mixed(int8_t, uint16_t, int32_t, int64_t, float, double);\n"
            "int32_t __utvm_shim_mixed(const unsigned char *args, unsigned char *ret) {\n"
            "  (void)args;\n"
            "  *(double *)ret = mixed(*(int8_t const *)(args + 0), *(uint16_t const *)(args + 8), "
            "*(int32_t const *)(args + 16), *(int64_t const *)(args + 24), *(float const *)(args + 32), "
            "*(double const *)(args + 40));\n"
            "  (void)ret;\n  return 0;\n}\n\n"
            "extern void nothing(void);\n"
            "int32_t __utvm_shim_nothing(const unsigned char *args, unsigned char *ret) {\n"
            "  (void)args;\n  nothing();\n  (void)ret;\n  return 0;\n}\n")

    def test_unsupported_kernels_get_no_shim(self, host_cfg, cache):
        lib = build([KERNELS / "structs.c"], host_cfg)
        with ElfFile(lib.path) as elf:
            names = set(elf.defined_symbols())
        assert SHIM_PREFIX + "sum_pair_ptr" in names
        assert SHIM_PREFIX + "sum_pair" not in names and SHIM_PREFIX + "sum_var" not in names
