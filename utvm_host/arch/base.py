"""What every architecture family tells the rest of utvm-host: the :class:`Arch` base class.

One subclass per family lives beside this file (:mod:`.riscv`, :mod:`.cortexm`, :mod:`.host`).
The upper layers (toolchain, link, launch, transport, session, debug, export) ask the family
of a device configuration (:func:`utvm_host.arch.for_config`) instead of comparing ELF machine
names themselves. This layer imports only :mod:`utvm_host.config` and :mod:`utvm_host.errors`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError

if TYPE_CHECKING:   # type hints only: the arch layer imports nothing above config
    from typing import Protocol

    from ..config import DeviceConfig

    class FaultReader(Protocol):
        """What :meth:`Arch.debug_fault` needs from a debugger stopped in the fault handler."""

        def evaluate(self, expression: str) -> str: ...

        def read_word(self, addr: int) -> int: ...

#: Flags every target shares: no PIC (code is linked at its placed address), no stack
#: protector or unwind tables (they need a libc the device does not have), DWARF for signatures.
COMMON_CFLAGS = ["-fno-pic", "-fno-common", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
                 "-fno-unwind-tables", "-fno-exceptions"]
#: The runtime implements memcpy/memset itself: keep gcc from turning their loops into calls to them.
RUNTIME_CFLAGS = ["-fno-builtin", "-fno-tree-loop-distribute-patterns"]


@dataclass(frozen=True)
class Fault:
    """A decoded device fault.

    Attributes
    ----------
    cause : str
        What went wrong, e.g. ``"store/AMO access fault (mcause 7)"``.
    pc : int or None
        Where the faulting code was (None when the core could not tell).
    address : int or None
        The faulting data address, when the core reports one.
    detail : str
        The fault registers as the message ends with them (``", mtval=0x0"``), or "".
    show_address : bool
        Whether the message names the address (``" accessing address 0x..."``).
    """
    cause: str
    pc: Optional[int]
    address: Optional[int]
    detail: str = ""
    show_address: bool = True

    def describe(self, where: str) -> str:
        """The message text: ``"<cause>[ accessing address 0x..] at <where><detail>"``.

        Parameters
        ----------
        where : str
            The symbolized pc (function, file and line).

        Returns
        -------
        str
            The sentence a :class:`~utvm_host.errors.DeviceFault` carries after ``crashed:``.
        """
        at = f" accessing address 0x{self.address:x}" if self.show_address and self.address is not None else ""
        return f"{self.cause}{at} at {where}{self.detail}"

    def as_dict(self) -> Dict[str, Any]:
        """``{"cause", "pc", "address"}``, as the debugger's :class:`~utvm_host.debug.Frame` keeps it."""
        return {"cause": self.cause, "pc": self.pc, "address": self.address}


@dataclass(frozen=True)
class GdbRegisters:
    """gdb register numbers of one architecture (as its target description numbers them).

    Attributes
    ----------
    pc, sp : int
        The program counter's and the stack pointer's numbers.
    results : tuple of int
        The registers the runtime's ``UTVMDone`` passes its summary in.
    size : int
        Bytes per register.
    """
    pc: int
    sp: int
    results: Tuple[int, ...]
    size: int


class Arch:
    """One architecture family. Subclasses set the class attributes and override the methods
    whose default does not fit them.

    Attributes
    ----------
    name : str
        The family's short name (``"riscv"``, ``"cortexm"``, ``"host"``).
    elf_machines : tuple of str
        ELF ``e_machine`` names (pyelftools spelling) of the family.
    machine_names : dict
        ``e_machine`` name -> how messages call it (``"RISC-V"``).
    stubs : str or None
        The runtime port's folder under ``device_stubs/ports/``.
    firmware_stubs : str or None
        The standalone firmware's startup folder under ``device_stubs/programs/firmware/``; None: the
        family has no standalone firmware nor serial stub.
    firmware_entry : str
        The firmware's entry symbol.
    firmware_runner : str or None
        What runs an exported firmware: ``"spike"`` or ``"qemu-semihosting"``.
    serial_stub_sources : tuple of str
        Further sources of the serial stub, relative to ``device_stubs/``.
    fault_symbol : str or None
        Where a debugger breaks to see a kernel's fault.
    fault_verb : str
        How the recovery log names the fault (``"trapped"``, ``"faulted"``).
    lost_pc : str or None
        The location text when the fault left no pc (None: symbolize whatever was recorded).
    result_registers : tuple of str
        The ``UTVMDone`` summary registers by name (OpenOCD).
    """

    name = "?"
    elf_machines: Tuple[str, ...] = ()
    machine_names: Dict[str, str] = {}
    stubs: Optional[str] = None
    firmware_stubs: Optional[str] = None
    firmware_entry = "_start"
    firmware_runner: Optional[str] = None
    serial_stub_sources: Tuple[str, ...] = ()
    fault_symbol: Optional[str] = None
    fault_verb = "crashed"
    lost_pc: Optional[str] = None
    result_registers: Tuple[str, ...] = ()

    # -- debugging -------------------------------------------------------------------------

    def gdb_arch(self, cfg: "DeviceConfig") -> Optional[str]:
        """gdb's ``set architecture`` name for ``cfg``'s core (None: gdb cannot attach)."""
        return None

    def gdb_registers(self, cfg: "DeviceConfig") -> GdbRegisters:
        """gdb register numbers of ``cfg``'s core."""
        raise ConfigError(f"device '{cfg.name}' ({cfg['arch']}) is not reached through gdb")

    def breakpoint_kind(self, cfg: "DeviceConfig") -> int:
        """Bytes of a software breakpoint (gdb's ``Z0`` kind): 2 on compressed/Thumb code."""
        return 2 if cfg.abi.get("thumb") or cfg["arch"].endswith("gc") else 4

    def qemu_args(self, cfg: "DeviceConfig") -> List[str]:
        """QEMU arguments the machine needs besides ``-machine`` (e.g. no firmware of its own)."""
        return []

    # -- compiling -------------------------------------------------------------------------

    def tvm_target(self, cfg: "DeviceConfig") -> Dict[str, Any]:
        """The TVM LLVM target (JSON dict) whose objects load on ``cfg``'s device."""
        raise ConfigError(f"no TVM LLVM target known for {cfg.abi['elf_machine']}")

    def float_abi(self, cfg: "DeviceConfig") -> str:
        """How the device passes floats ("soft-float", "hard-float", ...); "" where it does not matter."""
        return ""

    def library_float_abi(self, elf: Any) -> Optional[str]:
        """How an object of this family passes floats, from its ELF header or attributes;
        None: not checked."""
        return None

    def missing_extensions(self, elf: Any, cfg: "DeviceConfig") -> Tuple[List[str], str]:
        """Instruction set extensions an object uses that ``cfg``'s core lacks, and the
        object's ISA string ("" when it records none)."""
        return [], ""

    # -- standalone firmware ---------------------------------------------------------------

    def firmware_problem(self, cfg: "DeviceConfig") -> Optional[str]:
        """Why a standalone firmware cannot be exported for ``cfg`` beyond the family (None: it can)."""
        return None

    # -- faults ----------------------------------------------------------------------------

    def decode_fault(self, record: Mapping[str, Optional[int]], pointer_size: int) -> Fault:
        """A :class:`Fault` from the fault registers the device runtime (or a debugger) read.

        Parameters
        ----------
        record : mapping
            Register name -> value, as the runtime's ``UTVMFault`` record names them.
        pointer_size : int
            Bytes per pointer (the register width).

        Returns
        -------
        Fault
        """
        raise ConfigError(f"the {self.name} family decodes no fault records")

    def debug_fault(self, reader: "FaultReader", pointer_size: int,
                    stop_pc: int) -> Tuple[Fault, Dict[str, int], Dict[str, int]]:
        """From a debugger stopped at :attr:`fault_symbol`: the fault, the registers that show
        the faulting code's frame, and the registers to put back before the core runs on.

        Parameters
        ----------
        reader : FaultReader
            Evaluates gdb expressions and reads 32-bit device words.
        pointer_size : int
            Bytes per pointer.
        stop_pc : int
            The pc where the debugger stopped.

        Returns
        -------
        tuple
            ``(fault, registers to set, registers to restore)``.
        """
        raise ConfigError(f"the {self.name} family has no fault breakpoint")

    def __repr__(self) -> str:
        return f"<Arch {self.name}: {', '.join(self.elf_machines)}>"


def first_bit(value: int, table: Sequence[Tuple[int, str]]) -> Optional[str]:
    """The text of the first ``(bit, text)`` entry whose bit is set in ``value``."""
    for bit, text in table:
        if value >> bit & 1:
            return text
    return None
