"""Factories for device configurations: ``devices.host()``, ``devices.spike(...)``, ``devices.qemu(...)``.

Each returns a validated :class:`~utvm_host.config.DeviceConfig`. Sizes and addresses may be
edited afterwards (``cfg["mem_layout"]["text"]["size"] = 64 * 1024``); the session validates again.
"""
from __future__ import annotations

import platform
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .arch import CORTEX_M, HOST, RISCV
from .arch import cortexm as _cortexm, host as _host, riscv as _riscv_arch
from .config import DeviceConfig
from .errors import ConfigError

KiB = 1024
MiB = 1024 * 1024

# Per-family knowledge (ABIs, compiler flags, cores, QEMU machines) lives in utvm_host.arch;
# these tables stay here by name (the registry lists the architectures from them).
_HOST_ABIS = _host.HOST_ABIS


def _layout(order: Sequence[Tuple[str, int]], starts: Optional[Dict[str, int]] = None) -> Dict[str, Dict[str, int]]:
    layout: Dict[str, Dict[str, int]] = {}
    for name, size in order:
        layout[name] = {"size": size}
        if starts and name in starts:
            layout[name]["start"] = starts[name]
    return layout


def _memory(regions: Iterable[Tuple[int, int]], names: Sequence[str] = ()) -> List[Dict[str, Any]]:
    out = []
    for i, (start, size) in enumerate(regions):
        out.append({"name": names[i] if i < len(names) else f"ram{i}" if i else "ram",
                    "start": int(start), "size": int(size), "attrs": "rwx"})
    return out


def host(memory_size: int = 128 * MiB, base_addr: int = 0x10000000, timeout: float = 10.0) -> DeviceConfig:
    """The embedded default: kernels run in a child process on this machine.

    The device memory is a shared-memory file mapped by Python and, at ``base_addr``, by the
    child; a crash in a kernel kills only the child. ``base_addr`` must stay below 2 GiB on
    x86_64 (kernels are compiled without PIC for the small code model).
    """
    machine = platform.machine()
    HOST.machine(machine)   # ConfigError on another machine
    if machine == "x86_64" and base_addr + memory_size > 1 << 31:
        raise ConfigError(f"the host device's memory (0x{base_addr:x}-0x{base_addr + memory_size:x}) must end below "
                          "2 GiB on x86_64: kernels are compiled for the small code model; lower base_addr "
                          "or memory_size")
    # The stack comes first so that it sits at the bottom of the mapping: an overflow runs into
    # unmapped memory and faults instead of silently overwriting another section.
    layout = _layout([("stack", 1 * MiB), ("text", 8 * MiB), ("rodata", 4 * MiB), ("data", 2 * MiB),
                      ("bss", 8 * MiB), ("args", 64 * KiB), ("workspace", 8 * MiB), ("heap", 64 * MiB)])
    layout["stack"]["align"] = 4096
    cfg = DeviceConfig({
        "name": "host",
        "arch": machine,
        "abi": HOST.config_abi(machine),
        "toolchain": HOST.config_toolchain(machine),
        "memory": _memory([(base_addr, memory_size)]),
        "mem_layout": layout,
        "transport": {"kind": "host"},
        "console": {"kind": "fd", "fd": 63},   # the host CPU process's console file
        "counter": {"name": "nanoseconds", "per_second": 1_000_000_000},
        "layout": "auto",
        "timeout": timeout,
        "clock_hz": None,
    })
    return cfg.validate().mark_defaults()


_RISCV_ISAS = _riscv_arch.ISAS


def _riscv(name: str, isa: str, memory: List[Dict[str, Any]], transport: Dict[str, Any],
           timeout: float, clock_hz: Optional[int]) -> DeviceConfig:
    RISCV.isa(isa)   # ConfigError on an unknown ISA
    ram = memory[0]["size"]
    # Small regions for code, the rest split between tensors and workspace.
    fixed = [("text", 256 * KiB), ("rodata", 128 * KiB), ("data", 64 * KiB), ("bss", 128 * KiB),
             ("args", 4 * KiB), ("stack", 64 * KiB)]
    rest = ram - sum(s for _, s in fixed)
    if rest < 64 * KiB:
        fixed = [(n, max(s // 8, 1 * KiB)) for n, s in fixed]
        rest = ram - sum(s for _, s in fixed)
    workspace = max((rest // 8) & ~0xFFF, 4 * KiB)
    heap = (rest - workspace) & ~0xFFF
    # The stack comes first: an overflow runs below the start of RAM and faults (an access
    # fault on Spike) instead of silently overwriting code or tensors.
    order = [fixed[5]] + fixed[:5] + [("heap", heap), ("workspace", workspace)]
    cfg = DeviceConfig({
        "name": name,
        "arch": isa,
        "abi": RISCV.config_abi(isa),
        "toolchain": RISCV.config_toolchain(isa),
        "memory": memory,
        "mem_layout": _layout(order),
        "transport": transport,
        # printf: Spike's HTIF, QEMU virt's 16550 UART; boards: set cfg["console"] to their UART
        "console": {"kind": "htif"} if transport.get("launch") == "spike" else
        {"kind": "ns16550", "base": _riscv_arch.QEMU_UART} if transport.get("launch") == "qemu" else {"kind": "none"},
        # Spike models no pipeline: mcycle == minstret, so it counts instructions (FACTS.md);
        # QEMU's mcycle follows the host's clock. Seconds need cfg["clock_hz"].
        "counter": {"name": "instructions", "per_second": None} if transport.get("launch") == "spike"
        else {"name": "cycles", "per_second": None},
        "layout": "auto",
        "timeout": timeout,
        "clock_hz": clock_hz,
    })
    return cfg.validate().mark_defaults()


def spike(isa: str = "rv32imac", *, base_addr: int = 0x80000000, memory_size: int = 16 * MiB,
          memory: Optional[Sequence[Tuple[int, int]]] = None, server_addr: Optional[str] = None,
          server_port: Optional[int] = None, timeout: float = 10.0) -> DeviceConfig:
    """Spike (the RISC-V ISA simulator) behind OpenOCD. With ``server_addr``/``server_port`` the
    session attaches to an OpenOCD someone already runs; otherwise it starts both itself."""
    mem = _memory(memory if memory else [(base_addr, memory_size)])
    transport = {"kind": "openocd", "launch": None if server_port else "spike", "isa": isa,
                 "server_addr": server_addr or "127.0.0.1", "server_port": server_port}
    # Spike counts instructions; 100 MHz at one instruction a cycle turns them into seconds
    # (set cfg["clock_hz"] to model another core).
    return _riscv(f"spike-{isa}", isa, mem, transport, timeout, 100_000_000)


#: core: (cflags, memory [(start, size, name)], QEMU machine); see utvm_host.arch.cortexm.
_ARM_CORES = _cortexm.CORES
#: UART0 of the QEMU MPS2 machines.
_ARM_UART0 = _cortexm.UART0


def _cortex_m(name: str, core: str, memory: List[Dict[str, Any]], transport: Dict[str, Any],
              timeout: float) -> DeviceConfig:
    CORTEX_M.core(core)   # ConfigError on an unknown core
    code, ram = memory[0], memory[-1]
    if code is not ram:
        code["attrs"] = "rx"      # where code goes; data, tensors and the stack live in RAM
    code["reserve"] = 1 * KiB     # the reset vector table the core reads at its start
    # Sizes follow the memory the device has: code (after the 1 KiB vector table) in the code
    # region, everything else in RAM with the stack first. One region: code takes its first 3/8.
    def part(total: int, num: int, den: int, lo: int, hi: int) -> int:
        return max(lo, min(hi, total * num // den)) & ~0xFF
    if code is not ram:
        text = part(code["size"] - 1 * KiB, 2, 3, 1 * KiB, 4 * MiB)
        rodata = (code["size"] - 1 * KiB - text) & ~0xFF
        ram_size = ram["size"]
        starts = {"text": code["start"] + 1 * KiB, "stack": ram["start"]}
        order = [("text", text), ("rodata", rodata)]
    else:
        text = part(ram["size"], 1, 4, 1 * KiB, 4 * MiB)
        rodata = part(ram["size"], 1, 8, 1 * KiB, 2 * MiB)
        ram_size = ram["size"] - text - rodata - 64 - code["reserve"]   # the vector table comes first
        starts = {}
        order = [("text", text), ("rodata", rodata)]
    stack = part(ram_size, 1, 16, 1 * KiB, 64 * KiB)
    data = part(ram_size, 1, 32, 256, 64 * KiB)
    bss = part(ram_size, 1, 32, 256, 64 * KiB)
    args = min(4 * KiB, ram_size // 64) & ~0xFF or 256
    workspace = part(ram_size - stack - data - bss - args, 1, 5, 256, 512 * KiB)
    heap = (ram_size - stack - data - bss - args - workspace - 256) & ~0xFF
    # The stack first in RAM: an overflow runs below RAM and faults instead of corrupting data.
    order += [("stack", stack), ("data", data), ("bss", bss), ("args", args), ("heap", heap),
              ("workspace", workspace)]
    mem_layout = _layout(order, starts)
    mem_layout["stack"]["align"] = 4096   # the v7-M MPU guard covers the stack's first 4 KiB
    cfg = DeviceConfig({
        "name": name,
        "arch": core,
        "abi": CORTEX_M.config_abi(),
        "toolchain": CORTEX_M.config_toolchain(core),
        "memory": memory,
        "mem_layout": mem_layout,
        "transport": transport,
        # printf: the MPS2 boards' UART0 under QEMU; boards: set cfg["console"] to their UART
        "console": {"kind": "cmsdk-uart", "base": _ARM_UART0[core]} if transport.get("launch") == "qemu" and core in
        _ARM_UART0 else {"kind": "none"},
        # DWT CYCCNT where the core has one, else SysTick at the core clock (QEMU: 25 MHz, driven
        # by the host's clock unless QEMU runs with -icount)
        "counter": {"name": "cycles", "per_second": None},
        "layout": "auto",
        "timeout": timeout,
        "clock_hz": None,
    })
    return cfg.validate().mark_defaults()


def _stub_shift(memory: List[Dict[str, Any]], transport: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The memory a session over the serial stub may use: the regions without what the stub
    keeps (its code at the start of the first region and its RAM at the start of the last; with
    one region, both at its end and a boot page at its start, which the stub then locks as a
    guard: a stack overflow below the session's stack still faults).
    The stub's own build uses the original regions, kept in the transport."""
    from .stubs import STUB_BOOT, STUB_CODE, STUB_RAM   # sizes only; stubs builds the stub
    transport["stub_memory"] = [dict(m) for m in memory]
    shifted = [dict(m) for m in memory]
    if len(shifted) == 1:   # one region: a boot page (then a guard) at its start, the stub at its end
        shifted[0]["start"] += STUB_BOOT
        shifted[0]["size"] -= STUB_BOOT + STUB_CODE + STUB_RAM
        return shifted
    for index, size in ((0, STUB_CODE), (len(shifted) - 1, STUB_RAM)):
        shifted[index]["start"] += size
        shifted[index]["size"] -= size
    return shifted


def _serial_transport(launch: Optional[str], uart: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    return dict({"kind": "serial", "launch": launch, "uart": dict(uart), "baudrate": 115200}, **extra)


def qemu(machine: str = "riscv32", *, icount: bool = False, timeout: float = 10.0,
         transport: str = "gdb") -> DeviceConfig:
    """A QEMU system emulator driven over its gdbstub: ``riscv32``, ``riscv64`` (virt),
    ``cortex-m3`` (mps2-an385) or ``cortex-m33`` (mps2-an505). ``icount=True`` runs QEMU with
    ``-icount shift=0``: one instruction a tick, so timing counts repeat exactly.
    ``transport="serial"`` reaches it instead through its UART and the serial stub (as a board
    without a debug probe), the stub booted by QEMU."""
    if transport not in ("gdb", "serial"):
        raise ConfigError(f"devices.qemu(transport=...) is 'gdb' or 'serial', got {transport!r}")
    serial_link = transport == "serial"
    suffix = "-serial" if serial_link else ""
    if machine in ("riscv32", "riscv64"):
        isa = "rv32imac" if machine == "riscv32" else "rv64imac"
        t = {"kind": "gdb", "launch": "qemu", "machine": _riscv_arch.QEMU_MACHINE, "qemu": f"qemu-system-{machine}",
             "icount": icount}
        mem = _memory([(0x80000000, 16 * MiB)])
        if serial_link:
            t = _serial_transport("qemu", {"kind": "ns16550", "base": _riscv_arch.QEMU_UART},
                                  machine=_riscv_arch.QEMU_MACHINE, qemu=t["qemu"], icount=icount)
            mem = _stub_shift(mem, t)
        cfg = _riscv(f"qemu-{machine}{suffix}", isa, mem, t, timeout, None)
    elif machine in _ARM_CORES and _ARM_CORES[machine][2]:
        regions = _ARM_CORES[machine][1]
        t = {"kind": "gdb", "launch": "qemu", "machine": _ARM_CORES[machine][2], "qemu": _cortexm.QEMU_PROGRAM,
             "icount": icount}
        mem = _memory([(s, n) for s, n, _ in regions], [name for _, _, name in regions])
        if serial_link:
            t = _serial_transport("qemu", {"kind": "cmsdk-uart", "base": _ARM_UART0[machine]},
                                  machine=t["machine"], qemu=t["qemu"], icount=icount)
            mem = _stub_shift(mem, t)
        cfg = _cortex_m(f"qemu-{machine}{suffix}", machine, mem, t, timeout)
        cfg["clock_hz"] = 25_000_000   # the MPS2 boards' system clock
    else:
        raise ConfigError(f"unknown QEMU machine {machine!r}; known: riscv32, riscv64, cortex-m3, cortex-m33")
    if serial_link:
        cfg["console"] = {"kind": "none"}   # printf travels in the stub's console frames
        cfg.validate().mark_defaults()
    return cfg


def serial(url: str, *, arch: str, memory: Sequence[Tuple[int, int]], uart: Optional[Dict[str, Any]] = None,
           baudrate: int = 115200, timeout: float = 10.0) -> DeviceConfig:
    """A board reached only through a UART (``/dev/ttyUSB0``, any pyserial URL such as
    ``socket://host:port``, or ``unix:///path/to/socket``), running the serial stub
    (``utvm-host firmware --arch ... --memory ... --uart ...`` builds it; flash it once). ``memory`` is the board's, as given to the
    firmware command: the stub's part is kept out of the session's. ``uart`` (the UART the
    stub drives, ``{"kind": "ns16550" | "cmsdk-uart", "base": address}``) lets the session
    check the stub against its own build; without it the session asks the stub where its
    hooks are."""
    _check_board_memory(memory)
    t = _serial_transport(None, uart or {}, url=url, baudrate=int(baudrate))
    mem = _stub_shift(_memory(memory), t)
    if arch in _ARM_CORES:
        cfg = _cortex_m(f"serial-{arch}", arch, mem, t, timeout)
    else:
        cfg = _riscv(f"serial-{arch}", arch, mem, t, timeout, None)
    cfg["console"] = {"kind": "none"}   # printf travels in the stub's console frames
    return cfg.validate().mark_defaults()


def _check_board_memory(memory: Sequence[Tuple[int, int]]) -> None:
    if not memory:
        raise ConfigError("a board needs its memory: pass memory=[(start, size), ...] (e.g. the SRAM)")


def gdb_remote(host: str, port: Optional[int] = None, *, arch: str, memory: Sequence[Tuple[int, int]],
               timeout: float = 10.0) -> DeviceConfig:
    """Any GDB server (OpenOCD's gdb port, J-Link, pyOCD, QEMU) someone already runs: at
    ``host:port``, or, with ``port`` None, on the Unix socket ``host`` (e.g. QEMU's
    ``-gdb unix:/path,server=on,wait=off``, which only users allowed into its folder reach)."""
    if port is None:
        transport = {"kind": "gdb", "launch": None, "server_socket": str(host)}
    else:
        transport = {"kind": "gdb", "launch": None, "server_addr": host, "server_port": int(port)}
    _check_board_memory(memory)
    if arch in _ARM_CORES:
        return _cortex_m(f"gdb-{arch}", arch, _memory(memory), transport, timeout)
    return _riscv(f"gdb-{arch}", arch, _memory(memory), transport, timeout, None)


def openocd(config_files: Sequence[str], *, arch: str, memory: Sequence[Tuple[int, int]],
            commands: Sequence[str] = (), timeout: float = 10.0, private_network: bool = True) -> DeviceConfig:
    """A board behind a debug probe, reached through an OpenOCD started with ``config_files``.

    OpenOCD runs in a network namespace of the session's own (its Tcl and gdb ports are
    reachable by nobody else; USB probes work as usual). An adapter OpenOCD reaches over the
    network (remote_bitbang, jtag_vpi, a probe server) needs ``private_network=False``: then its
    ports listen on 127.0.0.1, where other local users can connect (commands that run programs or
    touch files are removed)."""
    transport = {"kind": "openocd", "launch": "openocd", "config_files": list(config_files),
                 "commands": list(commands), "private_network": bool(private_network)}
    _check_board_memory(memory)
    if arch in _ARM_CORES:
        return _cortex_m(f"openocd-{arch}", arch, _memory(memory), transport, timeout)
    return _riscv(f"openocd-{arch}", arch, _memory(memory), transport, timeout, None)


#: Short device names the command line and the benchmarks accept.
NAMED = ("host", "spike-rv32", "spike-rv64", "spike-<isa>", "qemu-riscv32", "qemu-riscv64", "qemu-cortex-m3",
         "qemu-cortex-m33", "qemu-<machine>-serial")


def by_name(name: str) -> DeviceConfig:
    """A device config from a short name: ``host``, ``spike-rv32`` (rv32imac), ``spike-rv64``
    (rv64imac), ``spike-<isa>`` (e.g. ``spike-rv32imafc``) or ``qemu-<machine>``."""
    if name == "host":
        return host()
    if name in ("spike", "spike-rv32"):
        return spike(isa="rv32imac")
    if name == "spike-rv64":
        return spike(isa="rv64imac")
    if name.startswith("spike-"):
        return spike(isa=name[len("spike-"):])
    if name.startswith("qemu-") and name.endswith("-serial"):
        return qemu(name[len("qemu-"):-len("-serial")], transport="serial")
    if name.startswith("qemu-"):
        return qemu(name[len("qemu-"):])
    raise ConfigError(f"unknown device {name!r}; known: {', '.join(NAMED)}")
