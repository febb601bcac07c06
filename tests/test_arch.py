"""utvm_host.arch: one file per architecture family, the only place (with the ELF reader) that
knows ELF machine names; the fault decoder the session and the debugger share."""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from utvm_host import arch, devices
from utvm_host.errors import ConfigError

PACKAGE = Path(arch.__file__).resolve().parent.parent
#: What only utvm_host/arch/ (and the ELF reader) may say.
FORBIDDEN = re.compile(r'elf_machine\s*==|elf_machine"?\]?\s+in\b|"EM_RISCV"|"EM_ARM"|"EM_X86_64"|"EM_AARCH64"')


def test_no_machine_comparisons_outside_arch():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("arch", "elf"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                found.append(f"utvm_host/{rel}:{number}: {line.strip()}")
    assert not found, "ELF machine knowledge outside utvm_host/arch/:\n" + "\n".join(found)


# -- lookup ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", arch.FAMILIES, ids=lambda f: f.name)
def test_lookup_round_trip(family):
    assert family.elf_machines
    for machine in family.elf_machines:
        assert arch.for_machine(machine) is family
        assert arch.lookup(machine) is family
        assert arch.machine_name(machine) == family.machine_names[machine]
        if family.stubs:
            assert arch.stub_folders()[machine] == family.stubs
            assert (PACKAGE.parent / "device_stubs" / "ports" / family.stubs).is_dir()
    if family.firmware_stubs:
        assert (PACKAGE.parent / "device_stubs" / "programs" / "firmware" / family.firmware_stubs).is_dir()


@pytest.mark.parametrize("make, family", [
    (devices.host, arch.HOST),
    (lambda: devices.spike(isa="rv32imac"), arch.RISCV),
    (lambda: devices.spike(isa="rv64gc"), arch.RISCV),
    (lambda: devices.qemu("riscv32"), arch.RISCV),
    (lambda: devices.qemu("cortex-m3"), arch.CORTEX_M),
    (lambda: devices.qemu("cortex-m33", transport="serial"), arch.CORTEX_M),
], ids=["host", "spike-rv32", "spike-rv64gc", "qemu-riscv32", "qemu-cortex-m3", "qemu-cortex-m33-serial"])
def test_config_round_trip(make, family):
    cfg = make()
    assert arch.for_config(cfg) is family
    assert cfg.abi["elf_machine"] in family.elf_machines


def test_unknown_machine():
    assert arch.lookup("EM_MIPS") is None
    assert arch.machine_name("EM_MIPS") == "EM_MIPS"
    with pytest.raises(ConfigError, match="EM_MIPS"):
        arch.for_machine("EM_MIPS")


def test_family_facts():
    rv32, rv64 = devices.spike(isa="rv32imac"), devices.spike(isa="rv64im")
    m3, m33 = devices.qemu("cortex-m3"), devices.qemu("cortex-m33")
    assert (arch.RISCV.gdb_arch(rv32), arch.RISCV.gdb_arch(rv64), arch.CORTEX_M.gdb_arch(m3)) == \
        ("riscv:rv32", "riscv:rv64", "arm")
    assert arch.HOST.gdb_arch(devices.host()) is None
    assert (arch.RISCV.breakpoint_kind(rv32), arch.RISCV.breakpoint_kind(rv64), arch.CORTEX_M.breakpoint_kind(m3)) \
        == (2, 4, 2)
    assert arch.RISCV.gdb_registers(rv64) == arch.GdbRegisters(pc=32, sp=2, results=(10, 11, 12), size=8)
    assert arch.CORTEX_M.gdb_registers(m3) == arch.GdbRegisters(pc=15, sp=13, results=(0, 1, 2), size=4)
    assert (arch.RISCV.qemu_args(rv32), arch.CORTEX_M.qemu_args(m3)) == (["-bios", "none"], [])
    assert arch.RISCV.result_registers == ("a0", "a1", "a2") and arch.CORTEX_M.result_registers == ("r0", "r1", "r2")
    assert arch.CORTEX_M.tvm_target(m33) == {"kind": "llvm", "mtriple": "thumbv8m.main-none-eabihf",
                                             "mcpu": "cortex-m33", "mfloat-abi": "hard"}
    assert arch.RISCV.tvm_target(devices.spike(isa="rv32imafc")) == {
        "kind": "llvm", "mtriple": "riscv32-unknown-elf", "mattr": ["+m", "+a", "+f", "+c"], "mabi": "ilp32f"}
    assert (arch.RISCV.float_abi(rv32), arch.CORTEX_M.float_abi(m3), arch.CORTEX_M.float_abi(m33)) == \
        ("soft-float", "soft-float", "hard-float")


# -- the fault decoder (texts as tests/faults/test_kernel_faults.py expects them) ------------

@pytest.mark.parametrize("record, cause, address, text", [
    ({"mcause": 7, "mepc": 0x80000100, "mtval": 0}, "store/AMO access fault (mcause 7)", 0,
     "store/AMO access fault (mcause 7) at f (a.c:3), mtval=0x0"),
    ({"mcause": 5, "mepc": 0x80000100, "mtval": 0x90000000}, "load access fault (mcause 5)", 0x90000000,
     "load access fault (mcause 5) at f (a.c:3), mtval=0x90000000"),
    ({"mcause": 2, "mepc": 0x80000100, "mtval": 0x12345}, "illegal instruction (mcause 2)", None,
     "illegal instruction (mcause 2) at f (a.c:3), mtval=0x12345"),
    ({"mcause": 4, "mepc": 0x80000100, "mtval": 0x80001001}, "load address misaligned (mcause 4)", 0x80001001,
     "load address misaligned (mcause 4) at f (a.c:3), mtval=0x80001001"),
    ({"mcause": 3, "mepc": 0x80000100, "mtval": 0}, "breakpoint (mcause 3)", None,
     "breakpoint (mcause 3) at f (a.c:3), mtval=0x0"),
    # (an interrupt's code is looked up like an exception's for the address, as the session always did)
    ({"mcause": 0x80000007, "mepc": 0x80000100, "mtval": 0}, "unexpected interrupt 7 (mcause 0x80000007)", 0,
     "unexpected interrupt 7 (mcause 0x80000007) at f (a.c:3), mtval=0x0"),
])
def test_riscv_fault(record, cause, address, text):
    fault = arch.RISCV.decode_fault(record, 4)
    assert (fault.cause, fault.pc, fault.address) == (cause, 0x80000100, address)
    assert fault.describe("f (a.c:3)") == text


def test_riscv64_interrupt_bit():
    fault = arch.RISCV.decode_fault({"mcause": (1 << 63) | 11, "mepc": 4, "mtval": 0}, 8)
    assert fault.cause == f"unexpected interrupt 11 (mcause 0x{(1 << 63) | 11:x})"


@pytest.mark.parametrize("record, cause, address, text", [
    ({"cfsr": 0x8200, "hfsr": 0x40000000, "bfar": 0x90000000, "mmfar": 0, "pc": 0x401},
     "precise data bus error (HardFault)", 0x90000000,
     "precise data bus error (HardFault) accessing address 0x90000000 at f (a.c:3), CFSR=0x00008200 HFSR=0x40000000"),
    ({"cfsr": 0x10000, "hfsr": 0x40000000, "bfar": 0, "mmfar": 0, "pc": 0x401},
     "undefined instruction (HardFault)", None,
     "undefined instruction (HardFault) at f (a.c:3), CFSR=0x00010000 HFSR=0x40000000"),
    ({"cfsr": 0x82, "hfsr": 0x40000000, "bfar": 0, "mmfar": 0x20000010, "pc": 0x401},
     "data access violation (HardFault)", 0x20000010,
     "data access violation (HardFault) accessing address 0x20000010 at f (a.c:3), CFSR=0x00000082 HFSR=0x40000000"),
    ({"cfsr": 0x100000, "hfsr": 0x40000000, "pc": 0x401}, "stack overflow (stack limit) (HardFault)", None,
     "stack overflow (stack limit) (HardFault) at f (a.c:3), CFSR=0x00100000 HFSR=0x40000000"),
    ({"cfsr": 0, "hfsr": 0x40000000, "pc": 0x401}, "breakpoint instruction (BKPT) (HardFault)", None,
     "breakpoint instruction (BKPT) (HardFault) at f (a.c:3), CFSR=0x00000000 HFSR=0x40000000"),
    ({"cfsr": 0, "hfsr": 0x2, "pc": 0x401}, "vector table read fault (HardFault)", None,
     "vector table read fault (HardFault) at f (a.c:3), CFSR=0x00000000 HFSR=0x00000002"),
    ({"cfsr": 0x2000000, "hfsr": 0, "pc": 0x401}, "integer divide by zero", None,
     "integer divide by zero at f (a.c:3), CFSR=0x02000000 HFSR=0x00000000"),
])
def test_cortex_m_fault(record, cause, address, text):
    fault = arch.CORTEX_M.decode_fault(record, 4)
    assert (fault.cause, fault.pc, fault.address) == (cause, 0x401, address)
    assert fault.describe("f (a.c:3)") == text


def test_cortex_m_unstacked_frame():
    """pc 0: the exception frame could not be stacked; the session says so instead of a location."""
    fault = arch.CORTEX_M.decode_fault({"cfsr": 0x82, "hfsr": 0x40000000, "mmfar": 0x20001000, "pc": 0}, 4)
    assert fault.pc is None and fault.address == 0x20001000
    assert arch.CORTEX_M.lost_pc == "an unknown pc (the exception frame could not be stacked)"
    assert arch.RISCV.lost_pc is None


@pytest.mark.parametrize("signo, code, address, text", [
    (signal.SIGSEGV, 1, 0x90000000, "SIGSEGV (address not mapped) accessing address 0x90000000 at f"),
    (signal.SIGSEGV, 2, None, "SIGSEGV (invalid permissions for mapped object) at f"),
    (signal.SIGBUS, 1, 0x1001, "SIGBUS (invalid address alignment) accessing address 0x1001 at f"),
    (signal.SIGILL, 2, 0x401000, "SIGILL (illegal operand) at f"),
    (signal.SIGFPE, 1, None, "SIGFPE (integer divide by zero) at f"),
    (signal.SIGTRAP, 99, None, f"SIGTRAP ({signal.strsignal(signal.SIGTRAP)}) at f"),
])
def test_host_fault(signo, code, address, text):
    fault = arch.HOST.decode_fault({"signo": signo, "code": code, "address": address, "pc": 0x401000}, 8)
    assert fault.pc == 0x401000 and fault.address == address
    assert fault.describe("f") == text


class _Reader:
    """A debugger stopped in the fault handler, as the decoder sees it."""

    def __init__(self, values, memory=()):
        self.values, self.memory = values, dict(memory)

    def evaluate(self, expression):
        return self.values[expression]

    def read_word(self, addr):
        return self.memory[addr]


def test_riscv_debug_fault():
    reader = _Reader({"$mcause": "7", "$mepc": str(0x80000100 - (1 << 32)), "$mtval": "0"})
    fault, show, restore = arch.RISCV.debug_fault(reader, 4, 0x80000010)
    assert fault.as_dict() == {"cause": "store/AMO access fault (mcause 7)", "pc": 0x80000100, "address": 0}
    assert (show, restore) == ({"pc": 0x80000100}, {"pc": 0x80000010})


def test_cortex_m_debug_fault():
    base = 0x20000f00
    now = {"r0": base, "r1": 1, "r2": 2, "r3": 3, "r12": 12, "lr": 0xFFFFFFFD, "pc": 0x500, "sp": 0x20000ee0}
    frame = [10, 11, 12, 13, 112, 0x301, 0x401, 1 << 24 | 1 << 9]   # r0-r3, r12, lr, pc, xPSR (realigned)
    memory = {0xE000ED28: 0x8200, 0xE000ED2C: 0x40000000, 0xE000ED34: 0, 0xE000ED38: 0x90000000}
    memory.update({base + 4 * i: w for i, w in enumerate(frame)})
    reader = _Reader({f"(unsigned int)${n}": str(v) for n, v in now.items()}, memory)
    fault, show, restore = arch.CORTEX_M.debug_fault(reader, 4, 0x500)
    assert fault.as_dict() == {"cause": "precise data bus error (HardFault)", "pc": 0x400, "address": 0x90000000}
    assert show == {"r0": 10, "r1": 11, "r2": 12, "r3": 13, "r12": 112, "lr": 0x301, "pc": 0x401,
                    "sp": base + 0x20 + 4}
    assert restore == now
