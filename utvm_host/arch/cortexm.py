"""Arm Cortex-M (Armv7-M, Armv8-M Mainline; Thumb only): QEMU's MPS2 boards and real boards.

Cores and their compiler flags, the QEMU machines, gdb's view, the TVM LLVM target, and the
decoding of a fault (CFSR/HFSR/MMFAR/BFAR, the exception frame).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigError
from .base import COMMON_CFLAGS, RUNTIME_CFLAGS, Arch, Fault, GdbRegisters, first_bit

if TYPE_CHECKING:
    from ..config import DeviceConfig
    from .base import FaultReader

MiB = 1024 * 1024

#: core: (cflags, memory [(start, size, name)], QEMU machine)
CORES = {
    "cortex-m3": (["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"],
                  [(0x00000000, 4 * MiB, "code"), (0x20000000, 4 * MiB, "sram")], "mps2-an385"),
    "cortex-m33": (["-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"],
                   [(0x10000000, 4 * MiB, "code"), (0x38000000, 4 * MiB, "sram")], "mps2-an505"),
    # Boards only (no QEMU machine here): memory comes from devices.openocd(memory=...).
    "cortex-m4": (["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], [], None),
    "cortex-m7": (["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"], [], None),
}
#: UART0 of the QEMU MPS2 machines (an385: CMSDK APB UART; an505: the secure alias, the core
#: starts in secure state).
UART0 = {"cortex-m3": 0x40004000, "cortex-m33": 0x50200000}
#: The QEMU program of every Cortex-M machine.
QEMU_PROGRAM = "qemu-system-arm"
#: LLVM CPU settings for the cores (TVM target keys: mtriple, mfloat-abi).
LLVM = {
    "cortex-m3": ("thumbv7m-none-eabi", "soft"),
    "cortex-m4": ("thumbv7em-none-eabihf", "hard"),
    "cortex-m7": ("thumbv7em-none-eabihf", "hard"),
    "cortex-m33": ("thumbv8m.main-none-eabihf", "hard"),
}

#: Cortex-M CFSR bits (Armv7-M ARM B3.2.15; Armv8-M adds STKOF), first match names the cause.
CFSR_CAUSES = (
    (16, "undefined instruction"), (17, "invalid state (a jump to an address without the Thumb bit?)"),
    (18, "invalid exception return"), (19, "no coprocessor (is the FPU enabled?)"),
    (20, "stack overflow (stack limit)"), (24, "unaligned access"), (25, "integer divide by zero"),
    (0, "instruction access violation"), (1, "data access violation"), (4, "MemManage fault on exception entry"),
    (8, "instruction bus error"), (9, "precise data bus error"), (10, "imprecise data bus error"),
    (12, "bus fault on exception entry (stack overflow?)"), (11, "bus fault on exception return"),
)
CFSR_MMARVALID = 1 << 7
CFSR_BFARVALID = 1 << 15
#: The System Control Block's fault registers.
SCB_CFSR, SCB_HFSR, SCB_MMFAR, SCB_BFAR = 0xE000ED28, 0xE000ED2C, 0xE000ED34, 0xE000ED38
#: The registers an exception stacks (basic frame), in frame order, and what gdb names the rest.
_FRAME = ("r0", "r1", "r2", "r3", "r12", "lr", "pc")
_SHOWN = _FRAME + ("sp",)


def cortex_m_cause(cfsr: int, hfsr: int) -> str:
    """The cause of a fault in words.

    Parameters
    ----------
    cfsr, hfsr : int
        The Configurable and the HardFault Status Registers.

    Returns
    -------
    str
        ``"precise data bus error (HardFault)"``.
    """
    text = first_bit(cfsr, CFSR_CAUSES)
    if text is not None:
        return f"{text} (HardFault)" if hfsr >> 30 & 1 else text
    if hfsr >> 1 & 1:
        return "vector table read fault (HardFault)"
    if hfsr >> 30 & 1:   # forced with no configurable fault: a BKPT no debugger took
        return "breakpoint instruction (BKPT) (HardFault)"
    return f"HardFault (HFSR=0x{hfsr:08x})"


def fault_address(cfsr: int, mmfar: Optional[int], bfar: Optional[int]) -> Optional[int]:
    """BFAR or MMFAR when the CFSR says it holds the faulting address, else None."""
    return bfar if cfsr & CFSR_BFARVALID else mmfar if cfsr & CFSR_MMARVALID else None


class CortexM(Arch):
    """The Cortex-M family (see the module docstring)."""

    name = "cortexm"
    elf_machines = ("EM_ARM",)
    machine_names = {"EM_ARM": "Arm"}
    stubs = "cortexm"
    firmware_stubs = "cortexm"
    firmware_entry = "utvm_fw_reset"
    firmware_runner = "qemu-semihosting"
    # UTVMFaultRecord(frame, exc), which the handler branches to with the exception frame's
    # address (r4-r11 untouched)
    fault_symbol = "UTVMFaultRecord"
    fault_verb = "faulted"
    lost_pc = "an unknown pc (the exception frame could not be stacked)"
    result_registers = ("r0", "r1", "r2")

    # -- configurations --------------------------------------------------------------------

    @staticmethod
    def core(core: str) -> Tuple[List[str], list, Optional[str]]:
        """(cflags, memory, QEMU machine) of a core; :class:`ConfigError` for an unknown one."""
        if core not in CORES:
            raise ConfigError(f"unknown Arm core {core!r}; known: {', '.join(CORES)}")
        return CORES[core]

    def config_abi(self) -> Dict[str, Any]:
        """``cfg["abi"]`` of every Cortex-M core (AAPCS, Thumb)."""
        return {"name": "aapcs", "pointer_size": 4, "endian": "little", "elf_machine": "EM_ARM",
                "elf_class": 32, "stack_align": 8, "thumb": True}

    def config_toolchain(self, core: str) -> Dict[str, Any]:
        """``cfg["toolchain"]`` of ``core`` (arm-none-eabi-gcc, newlib-nano)."""
        cflags = self.core(core)[0]
        return {"prefix": "arm-none-eabi-", "cc": "gcc", "cflags": cflags + ["--specs=nano.specs"] + COMMON_CFLAGS,
                "runtime_cflags": list(RUNTIME_CFLAGS), "ldflags": cflags + ["--specs=nano.specs"],
                "libs": ["-lm", "-lc", "-lgcc"], "package": "gcc-arm-none-eabi libnewlib-arm-none-eabi"}

    # -- debugging -------------------------------------------------------------------------

    def gdb_arch(self, cfg: "DeviceConfig") -> Optional[str]:
        return "arm"

    def gdb_registers(self, cfg: "DeviceConfig") -> GdbRegisters:
        # r0-r15, sp = r13, pc = r15
        return GdbRegisters(pc=15, sp=13, results=(0, 1, 2), size=4)

    # -- compiling -------------------------------------------------------------------------

    def tvm_target(self, cfg: "DeviceConfig") -> Dict[str, Any]:
        if cfg["arch"] not in LLVM:
            raise ConfigError(f"no TVM LLVM target known for Arm core {cfg['arch']!r}; known: {', '.join(LLVM)}")
        triple, float_abi = LLVM[cfg["arch"]]
        return {"kind": "llvm", "mtriple": triple, "mcpu": cfg["arch"], "mfloat-abi": float_abi}

    def float_abi(self, cfg: "DeviceConfig") -> str:
        return "hard-float" if "-mfloat-abi=hard" in cfg["toolchain"].get("cflags", []) else "soft-float"

    def library_float_abi(self, elf: Any) -> Optional[str]:
        return "hard-float" if elf.attributes().get("ABI_VFP_ARGS") == 1 else "soft-float"

    # -- faults ----------------------------------------------------------------------------

    def decode_fault(self, record: Mapping[str, Optional[int]], pointer_size: int) -> Fault:
        cfsr, hfsr = record.get("cfsr", 0), record.get("hfsr", 0)
        return Fault(cause=cortex_m_cause(cfsr, hfsr),
                     pc=record.get("pc") or None,   # 0: the frame could not be stacked (stack overflow)
                     address=fault_address(cfsr, record.get("mmfar"), record.get("bfar")),
                     detail=f", CFSR=0x{cfsr:08x} HFSR=0x{hfsr:08x}")

    def debug_fault(self, reader: "FaultReader", pointer_size: int,
                    stop_pc: int) -> Tuple[Fault, Dict[str, int], Dict[str, int]]:
        """Show the faulting code by loading the exception frame's registers (UTVMFaultRecord's
        first argument, r0, is the frame's address; lr the EXC_RETURN value)."""
        regs = dict(zip(("cfsr", "hfsr", "mmfar", "bfar"),
                        (reader.read_word(a) for a in (SCB_CFSR, SCB_HFSR, SCB_MMFAR, SCB_BFAR))))
        now = {n: int(reader.evaluate(f"(unsigned int)${n}"), 0) for n in _SHOWN}
        exc_return, base = now["lr"], now["r0"]
        words = [reader.read_word(base + 4 * i) for i in range(8)]
        size = 0x20 if exc_return & 0x10 else 0x68   # basic frame, or with the FP context
        stacked = dict(zip(_FRAME, words[:7]))
        stacked["sp"] = base + size + (4 if words[7] & (1 << 9) else 0)   # xPSR bit 9: realigned
        pc = stacked["pc"] & ~1
        fault = self.decode_fault(dict(regs, pc=pc), pointer_size)
        if fault.pc != pc:   # a frame whose pc reads 0: shown as it is
            fault = Fault(fault.cause, pc, fault.address, fault.detail, fault.show_address)
        return fault, stacked, now


CORTEX_M = CortexM()
