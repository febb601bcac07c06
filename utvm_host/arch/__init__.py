"""Architecture families: everything utvm-host knows per CPU family, one file each.

- :mod:`.riscv`: RISC-V (Spike, QEMU virt, boards);
- :mod:`.cortexm`: Arm Cortex-M (QEMU MPS2 boards, boards);
- :mod:`.host`: the host device (x86-64 and AArch64 Linux processes).

Each file holds one :class:`~.base.Arch` subclass: gdb's architecture name and register
numbers, the breakpoint kind, fault decoding (used by the session and the debugger alike),
its ``device_stubs`` folders, QEMU arguments, the TVM LLVM target and compiler flags. Code
above this layer asks :func:`for_config` (or :func:`for_machine`) instead of comparing ELF
machine names. Adding an architecture is adding one file here (and its ``device_stubs/ports/`` folder)
and naming its instance in :data:`FAMILIES`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional

from ..errors import ConfigError
from .base import Arch, Fault, GdbRegisters
from .cortexm import CORTEX_M, CortexM
from .host import HOST, Host
from .riscv import RISCV, RiscV

if TYPE_CHECKING:
    from ..config import DeviceConfig

#: Every family utvm-host knows.
FAMILIES = (RISCV, CORTEX_M, HOST)

_BY_MACHINE: Dict[str, Arch] = {machine: family for family in FAMILIES for machine in family.elf_machines}


def lookup(machine: str) -> Optional[Arch]:
    """The family of an ELF machine name (``"EM_RISCV"``), or None for one utvm-host does not know."""
    return _BY_MACHINE.get(machine)


def for_machine(machine: str) -> Arch:
    """The family of an ELF machine name.

    Parameters
    ----------
    machine : str
        ``e_machine`` as pyelftools names it (``"EM_RISCV"``, ``"EM_ARM"``, ...).

    Returns
    -------
    Arch

    Raises
    ------
    ConfigError
        For a machine no family covers.
    """
    family = _BY_MACHINE.get(machine)
    if family is None:
        raise ConfigError(f"no architecture known for ELF machine {machine!r}; known: {', '.join(_BY_MACHINE)}")
    return family


def for_config(cfg: "DeviceConfig") -> Arch:
    """The family of a device configuration (by ``cfg["abi"]["elf_machine"]``).

    Raises
    ------
    ConfigError
        For a machine no family covers.
    """
    return for_machine(cfg["abi"]["elf_machine"])


def machine_name(machine: str) -> str:
    """How messages call an ELF machine (``"RISC-V"``); the name itself for an unknown one."""
    family = _BY_MACHINE.get(machine)
    return family.machine_names.get(machine, machine) if family is not None else machine


def stub_folders() -> Dict[str, str]:
    """ELF machine -> the runtime port's folder under ``device_stubs/ports/``."""
    return {machine: family.stubs for machine, family in _BY_MACHINE.items() if family.stubs}


__all__ = ["Arch", "Fault", "GdbRegisters", "RiscV", "CortexM", "Host", "RISCV", "CORTEX_M", "HOST", "FAMILIES",
           "lookup", "for_machine", "for_config", "machine_name", "stub_folders"]
