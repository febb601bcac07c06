"""The device runtime built for this machine with AddressSanitizer and UndefinedBehaviorSanitizer:
its C unit tests (tests/device_c/unit) pass, and its libFuzzer harnesses (tests/device_c/fuzz)
run for a bounded time over their kept corpora without a finding."""
from __future__ import annotations

import os
import subprocess

import pytest

import checks
from conftest import require_tool

FUZZ_SECONDS = int(os.environ.get("UTVM_HOST_FUZZ_SECONDS", "20"))


@pytest.mark.parametrize("source", checks.units(), ids=lambda p: p.stem)
def test_unit(source, tmp_path):
    require_tool("gcc")
    exe = checks.build_unit(source, tmp_path)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("source", checks.fuzzers(), ids=lambda p: p.stem)
def test_fuzz(source, tmp_path):
    require_tool("clang")
    assert any(checks.corpus(source).iterdir()), f"{source.name} has no kept corpus in {checks.corpus(source)}"
    exe = checks.build_fuzzer(source, tmp_path)
    proc = checks.run_fuzzer(exe, source, FUZZ_SECONDS)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "Done" in proc.stderr and "stat::number_of_executed_units" in proc.stderr


def test_there_are_units_and_fuzzers():
    assert {p.stem for p in checks.units()} >= {"test_console", "test_runtime", "test_serial"}
    assert {p.stem for p in checks.fuzzers()} >= {"fuzz_console", "fuzz_workspace", "fuzz_cobs"}


def test_the_sanitizers_catch_an_overflow(tmp_path):
    """The build really is sanitized: an off-by-one write fails the program."""
    require_tool("gcc")
    src = tmp_path / "test_overflow.c"
    src.write_text("#include <string.h>\nint main(int argc, char **argv) {\n  char buf[8];\n"
                   "  (void)argv;\n  memset(buf, 0, sizeof buf + (size_t)argc);\n  return buf[0];\n}\n")
    proc = subprocess.run([str(checks.build_unit(src, tmp_path))], capture_output=True, text=True)
    assert proc.returncode != 0 and "stack-buffer-overflow" in proc.stderr
