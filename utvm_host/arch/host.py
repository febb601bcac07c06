"""The host device: kernels run in a child process on this machine (x86-64 or AArch64 Linux).

Its ABIs and compiler flags, the TVM LLVM target, and the decoding of the signal that ended a
crashed kernel's process.
"""
from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from ..errors import ConfigError
from .base import COMMON_CFLAGS, RUNTIME_CFLAGS, Arch, Fault

if TYPE_CHECKING:
    from ..config import DeviceConfig

#: ``platform.machine()`` -> ABI name, ELF machine, extra compiler flags.
HOST_ABIS = {
    "x86_64": {"name": "sysv-x86_64", "elf_machine": "EM_X86_64", "extra": ["-fcf-protection=none"]},
    "aarch64": {"name": "aapcs64", "elf_machine": "EM_AARCH64", "extra": []},
}
#: ELF machine -> LLVM triple.
_TRIPLES = {"EM_X86_64": "x86_64-unknown-linux-gnu", "EM_AARCH64": "aarch64-unknown-linux-gnu"}

#: ``si_code`` texts of the signals a crashing kernel gets (siginfo.h).
SIGNAL_CODES = {
    signal.SIGSEGV: {1: "address not mapped", 2: "invalid permissions for mapped object"},
    signal.SIGBUS: {1: "invalid address alignment", 2: "nonexistent physical address",
                    3: "object-specific hardware error"},
    signal.SIGILL: {1: "illegal opcode", 2: "illegal operand", 3: "illegal addressing mode", 4: "illegal trap",
                    5: "privileged opcode", 6: "privileged register", 7: "coprocessor error",
                    8: "internal stack error"},
    signal.SIGFPE: {1: "integer divide by zero", 2: "integer overflow", 3: "floating-point divide by zero",
                    4: "floating-point overflow", 5: "floating-point underflow", 6: "floating-point inexact result",
                    7: "invalid floating-point operation", 8: "subscript out of range"},
}


def signal_cause(signo: int, code: Optional[int]) -> str:
    """``"SIGSEGV (address not mapped)"``: the signal and its ``si_code`` in words."""
    sig = signal.Signals(signo)
    detail = SIGNAL_CODES.get(sig, {}).get(code)
    return f"{sig.name} ({detail or signal.strsignal(sig)})"


class Host(Arch):
    """The host family (see the module docstring): x86-64 and AArch64 Linux processes."""

    name = "host"
    elf_machines = ("EM_X86_64", "EM_AARCH64")
    machine_names = {"EM_X86_64": "x86_64", "EM_AARCH64": "AArch64"}
    stubs = "linux"
    fault_verb = "crashed"

    @staticmethod
    def machine(machine: str) -> Dict[str, Any]:
        """The ABI entry of a ``platform.machine()``; :class:`ConfigError` for another machine."""
        if machine not in HOST_ABIS:
            raise ConfigError(f"the host device supports x86_64 and aarch64 machines; this one is {machine!r}")
        return HOST_ABIS[machine]

    def config_abi(self, machine: str) -> Dict[str, Any]:
        """``cfg["abi"]`` of the host device on ``machine``."""
        abi = self.machine(machine)
        return {"name": abi["name"], "pointer_size": 8, "endian": "little", "elf_machine": abi["elf_machine"],
                "elf_class": 64, "stack_align": 16, "thumb": False}

    def config_toolchain(self, machine: str) -> Dict[str, Any]:
        """``cfg["toolchain"]`` of the host device on ``machine`` (the system gcc, no PIE)."""
        return {"prefix": "", "cc": "gcc", "cflags": COMMON_CFLAGS + ["-fno-pie"] + self.machine(machine)["extra"],
                "runtime_cflags": list(RUNTIME_CFLAGS), "ldflags": ["-no-pie"], "libs": ["-lgcc"],
                "package": "gcc"}

    def tvm_target(self, cfg: "DeviceConfig") -> Dict[str, Any]:
        return {"kind": "llvm", "mtriple": _TRIPLES[cfg.abi["elf_machine"]]}

    def decode_fault(self, record: Mapping[str, Optional[int]], pointer_size: int) -> Fault:
        """The fault of a kernel's process from the signal that ended it: ``record`` holds
        ``signo``, ``code`` (si_code), ``address`` (si_addr) and ``pc``."""
        signo = record["signo"]
        cause = signal_cause(signo, record.get("code"))
        return Fault(cause=cause, pc=record.get("pc"), address=record.get("address"),
                     show_address=signo in (signal.SIGSEGV, signal.SIGBUS))


HOST = Host()
