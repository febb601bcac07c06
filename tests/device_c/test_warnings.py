"""Every device source builds without a warning under -std=c99 -Wall -Wextra -Wpedantic
-Wconversion -Wshadow -Wcast-align -Wmissing-prototypes -Werror, and gcc -fanalyzer finds
nothing, with the compilers of host, rv32, rv64, Cortex-M3 and Cortex-M33."""
from __future__ import annotations

import pytest

import checks
from conftest import require_tool

CASES = [(port.name, src.relative_to(checks.STUBS)) for port in checks.PORTS.values() for src in port.files()]
TARGET_TOOLS = {"host": "gcc", "rv32": "riscv64-unknown-elf-gcc", "rv64": "riscv64-unknown-elf-gcc",
                "m3": "arm-none-eabi-gcc", "m33": "arm-none-eabi-gcc"}


@pytest.fixture(scope="module")
def targets():
    return checks.target_configs()


@pytest.mark.parametrize("port, source", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_builds_clean(port, source, targets, tmp_path):
    port = checks.PORTS[port]
    require_tool(TARGET_TOOLS[port.target])
    proc = checks.compile_strict(port, checks.STUBS / source, targets[port.target], tmp_path)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_every_target_is_covered():
    assert {p.target for p in checks.PORTS.values()} == set(TARGET_TOOLS)


def test_the_check_catches_a_warning(targets, tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int no_prototype(void) { return 1; }\n")
    proc = checks.compile_strict(checks.PORTS["cortex-m3"], bad, targets["m3"], tmp_path)
    assert proc.returncode != 0 and "-Werror=missing-prototypes" in proc.stderr
