"""Standalone device programs: what the firmware and the serial stub share, and the serial stub.

The serial stub (``device_stubs/programs/serial/``) is an ELF a user flashes once (``utvm-host firmware``);
sessions over a UART then talk to it. It keeps ``STUB_CODE`` bytes of code memory and
``STUB_RAM`` of RAM for itself (and, with one memory region, a ``STUB_BOOT`` page):
:mod:`utvm_host.devices` takes those sizes out of the memory a session may use.

The standalone firmware of a whole graph (:mod:`utvm_host.export`) uses the same startup code
(``device_stubs/programs/firmware/``) and linker script template (``linker/firmware.ld.in``), given here by
:data:`FIRMWARE_STUBS`, :func:`firmware_family` and :func:`firmware_linker_script`.

This module imports only config, errors, arch, elf and toolchain.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from . import arch
from .config import DeviceConfig
from .errors import ConfigError
from .toolchain import DEVICE_PROGRAMS, DEVICE_STUBS, LINKER_DIR, Toolchain, cached_entry, sha256_file, sha256_json

#: The standalone programs' common C (``utvm_firmware.c``) and each family's startup folder.
FIRMWARE_STUBS = DEVICE_PROGRAMS / "firmware"

#: Device memory the serial stub keeps for itself (code, data, its stack), at the start of RAM and,
#: on Cortex-M, of the code region: sessions over serial use the rest (devices.qemu(transport="serial")).
STUB_RAM = 16 * 1024
STUB_CODE = 16 * 1024
#: With one memory region (RISC-V): the page at its start the core boots from (a jump to the stub
#: at the region's end), locked by the stub with a PMP entry as a guard below the session's stack.
STUB_BOOT = 4096

_UART_DEFINES = {"ns16550": "UTVM_SERIAL_NS16550", "cmsdk-uart": "UTVM_SERIAL_CMSDK"}


def firmware_family(cfg: DeviceConfig) -> Optional[arch.Arch]:
    """The family of ``cfg``'s core when it has a standalone firmware.

    Parameters
    ----------
    cfg : DeviceConfig
        The device.

    Returns
    -------
    Arch or None
        The family, when it has a startup folder under ``device_stubs/programs/firmware/``; None otherwise.
    """
    family = arch.lookup(cfg.abi["elf_machine"])
    return family if family is not None and family.firmware_stubs else None


def firmware_linker_script(cfg: DeviceConfig, entry: str) -> str:
    """The linker script of a standalone program for ``cfg``'s memory.

    Parameters
    ----------
    cfg : DeviceConfig
        The device: code goes to its first memory region and data to its last (one region:
        both there); the stack size is ``cfg["mem_layout"]["stack"]["size"]`` (16 KiB if unset).
    entry : str
        The entry symbol.

    Returns
    -------
    str
        ``linker/firmware.ld.in`` with its memory, entry and stack filled in.
    """
    mem = cfg["memory"]
    code, ram = mem[0], mem[-1]
    if code is ram or len(mem) == 1:
        memory = (f"MEMORY\n{{\n  RAM (rwx) : ORIGIN = 0x{ram['start']:x}, LENGTH = 0x{ram['size']:x}\n}}\n"
                  'REGION_ALIAS("CODE", RAM);')
    else:
        memory = (f"MEMORY\n{{\n  CODE (rx) : ORIGIN = 0x{code['start']:x}, LENGTH = 0x{code['size']:x}\n"
                  f"  RAM (rwx) : ORIGIN = 0x{ram['start']:x}, LENGTH = 0x{ram['size']:x}\n}}")
    stack = cfg["mem_layout"].get("stack", {}).get("size", 16 * 1024)
    text = (LINKER_DIR / "firmware.ld.in").read_text()
    return text.replace("@MEMORY@", memory).replace("@ENTRY@", entry).replace("@STACK@", f"0x{stack:x}")


def _stub_family(cfg: DeviceConfig) -> arch.Arch:
    """The family of ``cfg``'s core, which must have a serial stub."""
    family = firmware_family(cfg)
    if family is None:
        raise ConfigError(f"the serial stub is built for RISC-V and Cortex-M devices; '{cfg.name}' is "
                          f"{cfg.abi['elf_machine']}")
    return family


def _stub_uart(cfg: DeviceConfig) -> Dict[str, str]:
    """The preprocessor define that selects and places the stub's UART driver."""
    uart = cfg.get("transport", {}).get("uart") or cfg.get("console", {})
    kind = _UART_DEFINES.get(uart.get("kind"))
    if kind is None or "base" not in uart:
        raise ConfigError(f"the serial stub needs the device's UART: cfg['transport']['uart'] = "
                          f"{{'kind': 'ns16550' | 'cmsdk-uart', 'base': address}} (got {uart!r})")
    return {kind: f"0x{uart['base']:x}"}


def _stub_sources(family: arch.Arch) -> List[Path]:
    """The stub's C and assembly: its loop, the firmware's common code and the family's startup."""
    startup = FIRMWARE_STUBS / family.firmware_stubs
    return [DEVICE_PROGRAMS / "serial" / "utvm_serial_stub.c", FIRMWARE_STUBS / "utvm_firmware.c"] + \
        sorted(startup.glob("*.c")) + sorted(startup.glob("*.S")) + \
        [DEVICE_STUBS / extra for extra in family.serial_stub_sources]   # e.g. RISC-V's HTIF write


def _stub_memory(mem: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The regions the stub is linked into: the start of the first and of the last region, or,
    with one region, its end."""
    code, ram = mem[0], mem[-1]
    if len(mem) > 1:
        return [dict(code, size=STUB_CODE), dict(ram, size=STUB_RAM)]
    return [dict(code, start=code["start"] + code["size"] - STUB_CODE - STUB_RAM, size=STUB_CODE + STUB_RAM)]


def _stub_script(cfg: DeviceConfig, family: arch.Arch, mem: List[Dict[str, Any]], defines: Dict[str, str]) -> str:
    """The stub's linker script; with one memory region also its boot page (and the guard's
    define in ``defines``)."""
    stub_cfg = DeviceConfig(dict(cfg))
    stub_cfg["memory"] = _stub_memory(mem)
    stub_cfg["mem_layout"] = dict(cfg["mem_layout"], stack={"size": 4096})
    script = firmware_linker_script(stub_cfg, family.firmware_entry)
    if len(mem) == 1:
        code = mem[0]
        script = script.replace("MEMORY\n{\n", f"MEMORY\n{{\n  BOOT (rx) : ORIGIN = 0x{code['start']:x}, LENGTH = "
                                f"0x{STUB_BOOT:x}\n", 1)
        boot = "SECTIONS\n{\n  .boot : { KEEP(*(.text.utvm_boot)) } > BOOT\n}\n"   # first: before .text takes it
        script = script.replace("SECTIONS\n{", boot + "SECTIONS\n{", 1)
        defines["UTVM_SERIAL_GUARD"] = f"0x{code['start']:x}"
    return script


def serial_stub(cfg: DeviceConfig, path: Optional[Union[str, Path]] = None) -> Path:
    """The serial stub firmware for ``cfg``'s device (``device_stubs/programs/serial/``), cached by content.

    A user flashes it once (``utvm-host firmware``). It uses ``STUB_CODE`` bytes from the start
    of the device's first memory region and ``STUB_RAM`` from the start of RAM, or, with a single
    region, both at its end (its entry is the ELF's: QEMU and loaders start there).

    Parameters
    ----------
    cfg : DeviceConfig
        A RISC-V or Cortex-M device with a UART (``cfg["transport"]["uart"]`` or ``cfg["console"]``:
        ``{"kind": "ns16550" | "cmsdk-uart", "base": address}``).
    path : str or Path, optional
        Where to copy the ELF; by default the cached file is returned.

    Returns
    -------
    Path
        The stub's ELF (``path`` when given).

    Raises
    ------
    ConfigError
        The device's family has no serial stub, or the device has no UART the stub drives.
    """
    family = _stub_family(cfg)
    defines = _stub_uart(cfg)
    tc = Toolchain(cfg)
    sources = _stub_sources(family)
    script = _stub_script(cfg, family, cfg.get("transport", {}).get("stub_memory") or cfg["memory"], defines)
    key = sha256_json({"compiler": tc.identity(), "target": [cfg["arch"], tc.cflags], "script": script,
                       "defines": defines, "sources": [[p.name, sha256_file(p)] for p in sources]})

    def make(work: Path) -> None:
        (work / "stub.ld").write_text(script)
        tc.compile_and_link(sources, work, work / "lib.o", cflags=["-Os", "-Wall"], include_dirs=[FIRMWARE_STUBS],
                            defines=defines, runtime=True, script=work / "stub.ld",
                            ldflags=["-Wl,--build-id=none", "-Wl,--gc-sections"],
                            what=f"linking the serial stub for {cfg['arch']}")

    elf = cached_entry("stub", key, make) / "lib.o"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(elf.read_bytes())
        return Path(path)
    return elf


__all__ = ["serial_stub", "firmware_family", "firmware_linker_script", "FIRMWARE_STUBS", "STUB_RAM", "STUB_CODE",
           "STUB_BOOT"]
