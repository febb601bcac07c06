"""RISC-V (RV32/RV64, machine mode): Spike, QEMU virt and boards.

ISA strings and their ABIs, compiler flags, gdb's view, QEMU's arguments, the TVM LLVM
target, and the decoding of a trap (``mcause``/``mepc``/``mtval``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigError
from .base import COMMON_CFLAGS, RUNTIME_CFLAGS, Arch, Fault, GdbRegisters

if TYPE_CHECKING:
    from ..config import DeviceConfig
    from .base import FaultReader

#: ISA string -> (ABI, pointer size) of the configurations utvm-host makes.
ISAS = {
    "rv32imac": ("ilp32", 4), "rv32imc": ("ilp32", 4), "rv32im": ("ilp32", 4), "rv32i": ("ilp32", 4),
    "rv32imafc": ("ilp32f", 4), "rv32gc": ("ilp32d", 4),
    "rv64imac": ("lp64", 8), "rv64imc": ("lp64", 8), "rv64im": ("lp64", 8),
    "rv64imafdc": ("lp64d", 8), "rv64gc": ("lp64d", 8),
}
#: RISC-V code is linked --no-relax, so gp-relative small data never pays; with the runtime's
#: globals all in .bss gcc addresses them from fewer auipc's (66 bytes less code on rv32 -Os).
RUNTIME_CFLAGS_RISCV = RUNTIME_CFLAGS + ["-msmall-data-limit=0"]
#: QEMU's RISC-V machine and its 16550 UART.
QEMU_MACHINE = "virt"
QEMU_UART = 0x10000000

#: RISC-V mcause exception codes (privileged spec, table "Machine cause register values").
RISCV_CAUSES = {
    0: "instruction address misaligned", 1: "instruction access fault", 2: "illegal instruction",
    3: "breakpoint", 4: "load address misaligned", 5: "load access fault", 6: "store/AMO address misaligned",
    7: "store/AMO access fault", 8: "environment call from U-mode", 9: "environment call from S-mode",
    11: "environment call from M-mode", 12: "instruction page fault", 13: "load page fault",
    15: "store/AMO page fault",
}
#: Causes whose mtval is the faulting data or instruction address.
RISCV_ADDRESS_CAUSES = frozenset({0, 1, 4, 5, 6, 7, 12, 13, 15})
#: e_flags float ABI bits (EF_RISCV_FLOAT_ABI) -> name.
_FLOAT_ABIS = {0: "soft-float", 2: "single-float", 4: "double-float", 6: "quad-float"}


def riscv_cause(mcause: int, xlen: int) -> str:
    """The cause of a trap in words.

    Parameters
    ----------
    mcause : int
        The ``mcause`` CSR.
    xlen : int
        Register width in bits.

    Returns
    -------
    str
        ``"illegal instruction (mcause 2)"``; interrupts say so.
    """
    interrupt = mcause >> (xlen - 1) & 1
    code = mcause & ((1 << (xlen - 1)) - 1)
    if interrupt:
        return f"unexpected interrupt {code} (mcause 0x{mcause:x})"
    return f"{RISCV_CAUSES.get(code, 'exception')} (mcause {code})"


def riscv_extensions(arch: str) -> set:
    """Single-letter extensions of a RISC-V ISA string.

    Parameters
    ----------
    arch : str
        ``"rv32imac"``, or an object's ``"rv32i2p1_m2p0_a2p1_c2p0_zicsr2p0"``.

    Returns
    -------
    set of str
        The letters; ``"g"`` stands for imafd. Empty for a string that is no RISC-V ISA.
    """
    arch = arch.lower()
    if not arch.startswith(("rv32", "rv64")):
        return set()
    first, *rest = arch[4:].split("_")
    # "imac" lists letters; "i2p1" (an object's attribute) is one letter with its version
    letters = {first[0]} if any(ch.isdigit() for ch in first) else set(first)
    letters |= {part[0] for part in rest if part and part[0] not in "zsx"}   # zicsr, zca, ... are not letters
    if "g" in letters:
        letters |= set("imafd")
    return letters


class RiscV(Arch):
    """The RISC-V family (see the module docstring)."""

    name = "riscv"
    elf_machines = ("EM_RISCV",)
    machine_names = {"EM_RISCV": "RISC-V"}
    stubs = "riscv"
    firmware_stubs = "riscv"
    firmware_entry = "_start"
    firmware_runner = "spike"
    # the startup's fault path writes through HTIF: its mailboxes and write
    serial_stub_sources = ("ports/riscv/utvm_riscv.c",)
    # the trap vector's first instruction: every register but pc is the faulting code's
    fault_symbol = "UTVMTrapEntry"
    fault_verb = "trapped"
    result_registers = ("a0", "a1", "a2")

    # -- configurations --------------------------------------------------------------------

    @staticmethod
    def isa(isa: str) -> Tuple[str, int]:
        """(ABI, pointer size) of an ISA string; :class:`ConfigError` for an unknown one."""
        if isa not in ISAS:
            raise ConfigError(f"unknown RISC-V isa {isa!r}; known: {', '.join(ISAS)}")
        return ISAS[isa]

    def config_abi(self, isa: str) -> Dict[str, Any]:
        """``cfg["abi"]`` of a core with ISA ``isa``."""
        mabi, ptr = self.isa(isa)
        return {"name": mabi, "pointer_size": ptr, "endian": "little", "elf_machine": "EM_RISCV",
                "elf_class": 8 * ptr, "stack_align": 16, "thumb": False}

    def config_toolchain(self, isa: str) -> Dict[str, Any]:
        """``cfg["toolchain"]`` of a core with ISA ``isa`` (riscv64-unknown-elf-gcc, picolibc)."""
        mabi, _ = self.isa(isa)
        return {"prefix": "riscv64-unknown-elf-", "cc": "gcc",
                "cflags": [f"-march={isa}", f"-mabi={mabi}", "-mcmodel=medany", "--specs=picolibc.specs"]
                + COMMON_CFLAGS,
                "runtime_cflags": list(RUNTIME_CFLAGS_RISCV),
                "ldflags": [f"-march={isa}", f"-mabi={mabi}", "-Wl,--no-relax", "--specs=picolibc.specs"],
                "libs": ["-lm", "-lc", "-lgcc"],
                "package": "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"}

    # -- debugging -------------------------------------------------------------------------

    def gdb_arch(self, cfg: "DeviceConfig") -> Optional[str]:
        return f"riscv:rv{8 * cfg.pointer_size}"

    def gdb_registers(self, cfg: "DeviceConfig") -> GdbRegisters:
        # x0-x31 are 0-31 (sp = x2, a0-a2 = x10-x12), pc is 32
        return GdbRegisters(pc=32, sp=2, results=(10, 11, 12), size=cfg.pointer_size)

    def breakpoint_kind(self, cfg: "DeviceConfig") -> int:
        compressed = cfg.abi.get("thumb") or "c" in cfg["arch"][4:] or cfg["arch"].endswith("gc")
        return 2 if compressed else 4

    def qemu_args(self, cfg: "DeviceConfig") -> List[str]:
        return ["-bios", "none"]   # no OpenSBI: the runtime runs in machine mode from the ELF's entry

    # -- compiling -------------------------------------------------------------------------

    def tvm_target(self, cfg: "DeviceConfig") -> Dict[str, Any]:
        letters = riscv_extensions(cfg["arch"])
        mattr = [f"+{c}" for c in "mafdc" if c in letters]
        return {"kind": "llvm", "mtriple": f"riscv{8 * cfg.pointer_size}-unknown-elf", "mattr": mattr,
                "mabi": cfg.abi["name"]}

    def float_abi(self, cfg: "DeviceConfig") -> str:
        return {"f": "single-float", "d": "double-float"}.get(cfg.abi["name"][-1], "soft-float")

    def library_float_abi(self, elf: Any) -> Optional[str]:
        return _FLOAT_ABIS.get(elf.flags & 0x6, "unknown")

    def missing_extensions(self, elf: Any, cfg: "DeviceConfig") -> Tuple[List[str], str]:
        arch = str(elf.attributes().get("ARCH", ""))
        return sorted(riscv_extensions(arch) - riscv_extensions(cfg["arch"])), arch

    def firmware_problem(self, cfg: "DeviceConfig") -> Optional[str]:
        if cfg["transport"].get("launch") != "spike":
            return (f"standalone RISC-V firmware ends through Spike's HTIF; '{cfg.name}' is not a Spike "
                    "device: export for devices.spike(isa=...)")
        return None

    # -- faults ----------------------------------------------------------------------------

    def decode_fault(self, record: Mapping[str, Optional[int]], pointer_size: int) -> Fault:
        mcause, mepc, mtval = record.get("mcause", 0), record.get("mepc"), record.get("mtval", 0)
        xlen = 8 * pointer_size
        code = mcause & ((1 << (xlen - 1)) - 1)
        return Fault(cause=riscv_cause(mcause, xlen), pc=mepc,
                     address=mtval if code in RISCV_ADDRESS_CAUSES else None,
                     detail=f", mtval=0x{mtval:x}", show_address=False)

    def debug_fault(self, reader: "FaultReader", pointer_size: int,
                    stop_pc: int) -> Tuple[Fault, Dict[str, int], Dict[str, int]]:
        mask = (1 << (8 * pointer_size)) - 1   # gdb shows CSRs as signed longs
        regs = {r: int(reader.evaluate(f"${r}"), 0) & mask for r in ("mcause", "mepc", "mtval")}
        fault = self.decode_fault(regs, pointer_size)
        # Until the core resumes, pc shows the faulting instruction; the trap handler's goes back after.
        return fault, {"pc": regs["mepc"]}, {"pc": stop_pc}


RISCV = RiscV()
