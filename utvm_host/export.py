"""Standalone firmware: a whole graph compiled into one ELF that runs with no host attached.

``export_firmware(graph, cfg, "model.elf")`` links startup code, the device runtime, the
graph's kernels, a generated program that calls them in order (the same memory plan as the
host-driven :class:`~utvm_host.graph.GraphExecutor`) and the params into one ELF. It reads
each input from the symbol ``utvm_input_<name>`` (initialised from ``inputs=``, or patched in
the file later with :meth:`Firmware.set_input`) and writes each output to
``utvm_output_<name>``; it also prints the outputs in hex and the device counter's count on
the console, then exits with status 0 (1 if a kernel reported an error, 3 on a fault):

- on Spike through HTIF (``write`` system call; ``tohost`` = status << 1 | 1);
- on Cortex-M through semihosting (``SYS_WRITE``; ``SYS_EXIT_EXTENDED``), e.g. QEMU's MPS2
  boards with ``-semihosting-config enable=on``.

:meth:`Firmware.run` starts the simulator on the ELF and parses what it printed.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import abi, arch, launch
from .config import DeviceConfig
from .elf import ElfFile
from .errors import ConfigError
from .graph import Graph
from .toolchain import DEVICE_STUBS, LINKER_DIR, TVM_FFI_PREFIX, Toolchain, build_runtime, build_runtime_parts

FIRMWARE_STUBS = DEVICE_STUBS / "firmware"


def _firmware_family(cfg: DeviceConfig) -> Optional[arch.Arch]:
    """The family of ``cfg`` when it has a standalone firmware (a folder under device_stubs/firmware/)."""
    family = arch.lookup(cfg.abi["elf_machine"])
    return family if family is not None and family.firmware_stubs else None


def _c_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _literal(value: Any, ctype) -> str:
    """A C expression of the parameter's type for a scalar attribute."""
    if ctype.kind == "float":
        return f"({abi.c_type_name(ctype)}){float(value).hex()}"
    return f"({abi.c_type_name(ctype)}){int(value)}{'LL' if ctype.size == 8 else ''}"


@dataclass
class FirmwareRun:
    """What one run of the firmware printed: exit ``status``, ``count`` of the device counter
    around the graph (``counter`` names the unit), ``outputs`` by name, and the console text."""
    status: int
    count: Optional[int]
    counter: str
    outputs: Dict[str, np.ndarray]
    console: str


@dataclass
class Firmware:
    """An exported ELF (``path``) for ``cfg``'s device; ``memory`` gives its sizes in bytes."""
    path: Path
    graph: Graph
    cfg: DeviceConfig
    memory: Dict[str, int] = field(default_factory=dict)

    def set_input(self, name: str, value: Any) -> None:
        """Overwrite input ``name`` inside the ELF file (its initial contents)."""
        spec = self.graph.tensors.get(name)
        if spec is None or name not in self.graph.inputs:
            raise KeyError(f"'{name}' is not an input of graph '{self.graph.name}'; its inputs: {self.graph.inputs}")
        arr = np.ascontiguousarray(value)
        if arr.shape != spec.shape or arr.dtype != spec.dtype:
            raise TypeError(f"input '{name}' needs a {spec.dtype.name} array of shape {spec.shape}, got "
                            f"{arr.dtype.name} {arr.shape}")
        with ElfFile(self.path) as elf:
            sym = elf.get_symbol(f"utvm_input_{_c_name(name)}")
            sec = next(s for s in elf.sections if s.addr <= sym.value < s.addr + s.size and s.alloc)
            offset = sec.offset + sym.value - sec.addr
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(arr.tobytes())

    def command(self) -> List[str]:
        """The simulator command line that runs this firmware."""
        t = self.cfg["transport"]
        if self._runner() == "spike":
            mem = ",".join(f"0x{m['start']:x}:0x{m['size']:x}" for m in self.cfg["memory"])
            return [launch.find_spike(), f"--isa={t.get('isa', self.cfg['arch'])}", f"-m{mem}", str(self.path)]
        qemu = launch.require_program(t["qemu"], "qemu-system-arm")
        return [qemu, "-machine", t["machine"], "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native", "-kernel", str(self.path)]

    def _runner(self) -> Optional[str]:
        """What runs this firmware: "spike" or "qemu-semihosting" (see utvm_host.arch)."""
        family = _firmware_family(self.cfg)
        return family.firmware_runner if family is not None else None

    def run(self, timeout: float = 120.0) -> FirmwareRun:
        """Run the firmware in its simulator (Spike, or QEMU for Cortex-M) with no session."""
        if self._runner() == "spike":
            launch.require_program("dtc", "device-tree-compiler", "Spike runs dtc to build its device tree")
        try:
            proc = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"the firmware {self.path} did not exit within {timeout:g} s") from None
        return self.parse(proc.stdout, proc.returncode, proc.stderr)

    def parse(self, console: str, status: int, stderr: str = "") -> FirmwareRun:
        outputs: Dict[str, np.ndarray] = {}
        count = None
        for line in console.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "utvm-output" and parts[1] in self.graph.tensors:
                spec = self.graph.tensors[parts[1]]
                outputs[parts[1]] = np.frombuffer(bytes.fromhex(parts[2]), spec.dtype).reshape(spec.shape).copy()
            elif len(parts) >= 2 and parts[0] == "utvm-count":
                count = int(parts[1])
        if status == 0 and set(outputs) != set(self.graph.outputs):
            raise ConfigError(f"the firmware {self.path} exited with status 0 but printed outputs "
                              f"{sorted(outputs)} instead of {self.graph.outputs}; console:\n{console}{stderr}")
        return FirmwareRun(status, count, self.cfg["counter"]["name"], outputs, console + stderr)


def graph_program(graph: Graph, library, workspace_size: int, inputs: Dict[str, np.ndarray]) -> Dict[str, str]:
    """The generated sources of the graph program: ``graph_main.c`` and ``graph_data.S``
    (params and inputs, by .incbin of the ``.bin`` files the caller writes)."""
    plan = graph.plan()
    sigs = library.signatures()
    tvm = library.tvm_functions()
    lines = ['/* generated by utvm-host: the graph program of a standalone firmware */',
             '#include "utvm_firmware.h"', "",
             "extern const unsigned char utvm_params[];"]
    where: Dict[str, str] = {}
    for name in graph.inputs:
        c = _c_name(name)
        lines.append(f"extern unsigned char utvm_input_{c}[];")
        where[name] = f"utvm_input_{c}"
    for name in graph.outputs:
        c = _c_name(name)
        lines.append(f"unsigned char utvm_output_{c}[{max(graph.tensors[name].nbytes, 1)}] "
                     "__attribute__((aligned(16)));")
        where[name] = f"utvm_output_{c}"
    lines.append(f"static unsigned char utvm_arena[{max(plan.arena_size, 1)}] __attribute__((aligned(16)));")
    if workspace_size:
        lines.append(f"static unsigned char utvm_workspace[{workspace_size}] __attribute__((aligned(16)));")
    for name, off in plan.param_offsets.items():
        where[name] = f"(utvm_params + {off})"
    for name, off in plan.arena_offsets.items():
        where[name] = f"(utvm_arena + {off})"
    if tvm:
        lines += ["typedef struct { void *data; int32_t device_type, device_id; int32_t ndim;",
                  "  uint8_t code, bits; uint16_t lanes; int64_t *shape; int64_t *strides; uint64_t byte_offset;",
                  "} utvm_dltensor;   /* DLTensor (the device type is an enum of one byte with short enums:",
                  "                      the value 1 stored as int32 reads the same) */",
                  "typedef struct { int32_t type_index; uint32_t zero_padding;",
                  "  union { int64_t v_int64; double v_float64; void *v_ptr; } v; } utvm_any;   /* TVMFFIAny */",
                  "static utvm_any utvm_result;"]
    declared = set()
    calls: List[str] = []
    for i, node in enumerate(graph.nodes):
        label = f"node '{node.name}' (kernel '{node.kernel}')".replace('"', "'")
        if node.kernel in tvm:
            symbol = tvm[node.kernel]
            if symbol not in declared:
                lines.append(f"extern int32_t {symbol}(void *, void *, int32_t, void *);")
                declared.add(symbol)
            anys = []
            for j, arg in enumerate(node.args):
                if isinstance(arg, str) and arg in graph.tensors:
                    spec = graph.tensors[arg]
                    code, bits, lanes = abi.dl_dtype(spec.dtype)
                    shape = ", ".join(str(d) for d in spec.shape) or "0"
                    lines.append(f"static int64_t utvm_shape_{i}_{j}[] = {{{shape}}};")
                    lines.append(f"static utvm_dltensor utvm_tensor_{i}_{j} = {{{where[arg]}, 1, 0, {len(spec.shape)}, "
                                 f"{code}, {bits}, {lanes}, utvm_shape_{i}_{j}, 0, 0}};")
                    anys.append(f"{{{abi.FFI_DLTENSOR_PTR}, 0, {{.v_ptr = &utvm_tensor_{i}_{j}}}}}")
                elif isinstance(arg, bool):
                    anys.append(f"{{{abi.FFI_BOOL}, 0, {{.v_int64 = {int(arg)}}}}}")
                elif isinstance(arg, int):
                    anys.append(f"{{{abi.FFI_INT}, 0, {{.v_int64 = {arg}LL}}}}")
                elif isinstance(arg, float):
                    anys.append(f"{{{abi.FFI_FLOAT}, 0, {{.v_float64 = {arg.hex()}}}}}")
                else:
                    raise ConfigError(f"node '{node.name}': cannot pass {arg!r} to TVM function '{node.kernel}'")
            lines.append(f"static utvm_any utvm_args_{i}[] = {{{', '.join(anys) or '{0}'}}};")
            calls.append(f"  if ({symbol}(0, utvm_args_{i}, {len(anys)}, &utvm_result) != 0 || utvm_error_set) "
                         f"return utvm_failed(\"{label}\");")
            continue
        sig = sigs.get(node.kernel)
        if sig is None or node.kernel.startswith(TVM_FFI_PREFIX):
            raise ConfigError(f"graph '{graph.name}': node '{node.name}' calls kernel '{node.kernel}', which its "
                              f"sources do not define")
        if len(sig.params) != len(node.args):
            raise ConfigError(f"graph '{graph.name}': node '{node.name}' passes {len(node.args)} arguments to "
                              f"{node.kernel}(), which takes {len(sig.params)}")
        if node.kernel not in declared:
            params = ", ".join(abi.c_type_name(p.type) for p in sig.params) or "void"
            lines.append(f"extern {abi.c_type_name(sig.return_type)} {node.kernel}({params});")
            declared.add(node.kernel)
        args = []
        for p, arg in zip(sig.params, node.args):
            if p.type.kind == "pointer":
                args.append(f"(void *){where[arg]}" if isinstance(arg, str) else "(void *)0")
            else:
                args.append(_literal(arg, p.type))
        calls.append(f"  {node.kernel}({', '.join(args)});")
        calls.append(f"  if (utvm_error_set) return utvm_failed(\"{label}\");")
    lines += ["", "static int utvm_failed(const char *where) {",
              '  utvm_fw_puts("utvm-error "); utvm_fw_puts(where); utvm_fw_puts(": ");',
              '  utvm_fw_put_error(utvm_last_error, utvm_ws_bad); utvm_fw_puts("\\n");', "  return 1;", "}", "",
              "int utvm_graph_run(void) {"] + calls + ["  return 0;", "}", "",
              "int main(void) {"]
    if workspace_size:
        lines += ["  utvm_workspace_base = (uintptr_t)utvm_workspace;",
                  "  utvm_workspace_size = sizeof utvm_workspace;"]
    lines += ["  uint64_t start = UTVMCounter();", "  int status = utvm_graph_run();",
              "  uint64_t count = UTVMCounter() - start;",
              f'  utvm_fw_puts("utvm-graph {graph.name} status "); utvm_fw_put_i64(status); utvm_fw_puts("\\n");',
              '  utvm_fw_puts("utvm-count "); utvm_fw_put_u64(count); utvm_fw_puts("\\n");']
    for name in graph.outputs:
        lines.append(f'  utvm_fw_puts("utvm-output {name} "); utvm_fw_put_hex({where[name]}, '
                     f'{graph.tensors[name].nbytes}); utvm_fw_puts("\\n");')
    lines += ["  return status;", "}", ""]
    data = ['/* generated by utvm-host: params (read-only) and inputs (initial contents) */',
            '  .section .rodata.utvm_params, "a"', "  .balign 16", "  .globl utvm_params",
            "utvm_params:", '  .incbin "params.bin"', "  .balign 16", '  .section .data.utvm_inputs, "aw"']
    for name in graph.inputs:
        c = _c_name(name)
        data += ["  .balign 16", f"  .globl utvm_input_{c}", f"utvm_input_{c}:", f'  .incbin "input_{c}.bin"']
    return {"graph_main.c": "\n".join(lines), "graph_data.S": "\n".join(data) + "\n"}


def export_firmware(graph: Graph, cfg: DeviceConfig, path: Union[str, Path], *,
                    inputs: Optional[Dict[str, Any]] = None, workspace_size: Optional[int] = None) -> Firmware:
    """Build ``graph`` into a standalone ELF at ``path`` for ``cfg``'s device (Spike or a
    Cortex-M). ``inputs`` sets the inputs' initial contents (zeros otherwise);
    ``workspace_size`` the TVMBackendAllocWorkspace pool (default: the device's workspace
    size when a kernel uses it, else none)."""
    family = _firmware_family(cfg)
    if family is None:
        raise ConfigError(f"standalone firmware is built for RISC-V (run on Spike) and Cortex-M (semihosting) "
                          f"devices; '{cfg.name}' is {cfg.abi['elf_machine']}: run the graph there with GraphExecutor")
    problem = family.firmware_problem(cfg)
    if problem is not None:
        raise ConfigError(problem)
    path = Path(path)
    tc = Toolchain(cfg)
    library = graph.build(cfg)
    runtime = build_runtime(cfg)
    needs_ws = "TVMBackendAllocWorkspace" in library.elf().undefined_symbols()
    if workspace_size is None:
        workspace_size = cfg["mem_layout"].get("workspace", {}).get("size", 64 * 1024) if needs_ws else 0
    arrays = {}
    for name in graph.inputs:
        spec = graph.tensors[name]
        value = np.zeros(spec.shape, spec.dtype) if not inputs or name not in inputs else np.asarray(inputs[name])
        if value.shape != spec.shape or value.dtype != spec.dtype:
            raise TypeError(f"input '{name}' needs a {spec.dtype.name} array of shape {spec.shape}, got "
                            f"{value.dtype.name} {value.shape}")
        arrays[name] = np.ascontiguousarray(value)
    plan = graph.plan()
    with tempfile.TemporaryDirectory(prefix="utvm-firmware-") as tmp:
        work = Path(tmp)
        blob = bytearray(plan.params_size)
        for name, off in plan.param_offsets.items():
            raw = graph.params[name].tobytes()
            blob[off:off + len(raw)] = raw
        (work / "params.bin").write_bytes(bytes(blob))
        for name, arr in arrays.items():
            (work / f"input_{_c_name(name)}.bin").write_bytes(arr.tobytes())
        for fname, text in graph_program(graph, library, workspace_size, arrays).items():
            (work / fname).write_text(text)
        startup = FIRMWARE_STUBS / family.firmware_stubs
        sources = [work / "graph_main.c", work / "graph_data.S", FIRMWARE_STUBS / "utvm_firmware.c"] + \
            sorted(startup.glob("*.c")) + sorted(startup.glob("*.S"))
        objects = []
        for i, src in enumerate(sources):
            obj = work / f"{i}_{src.stem}.o"
            tc.compile(src, obj, cflags=["-O2", "-Wall"], include_dirs=[FIRMWARE_STUBS, work], runtime=True)
            objects.append(obj)
        # the runtime's parts linked on demand: --gc-sections drops those no kernel calls
        parts = [part.path for part in build_runtime_parts(cfg)]
        script = work / "firmware.ld"
        script.write_text(_linker_script(cfg, family.firmware_entry))
        out = work / "firmware.elf"
        cmd = [tc.cc, "-nostdlib", "-nostartfiles", "-static"] + tc.ldflags + \
              ["-T", str(script), "-Wl,--build-id=none", "-Wl,--gc-sections"] + \
              [str(o) for o in objects] + [library.path, runtime.path] + parts + tc.libs + ["-o", str(out)]
        tc.run(cmd, f"linking the firmware of '{graph.name}' for {cfg['arch']}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out.read_bytes())
    with ElfFile(path) as elf:
        size = {s.name: s.size for s in elf.sections if s.alloc}
    memory = {"code": size.get(".text", 0), "rodata": size.get(".rodata", 0), "data": size.get(".data", 0),
              "bss": size.get(".bss", 0), "stack": size.get(".stack", 0), "params": plan.params_size,
              "activations": plan.arena_size, "workspace": workspace_size}
    return Firmware(path, graph, cfg, memory)


def _linker_script(cfg: DeviceConfig, entry: str) -> str:
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


__all__: Sequence[str] = ["export_firmware", "Firmware", "FirmwareRun", "graph_program"]


#: Device memory the serial stub keeps for itself (code, data, its stack), at the start of RAM and,
#: on Cortex-M, of the code region: sessions over serial use the rest (devices.qemu(transport="serial")).
STUB_RAM = 16 * 1024
STUB_CODE = 16 * 1024
#: With one memory region (RISC-V): the page at its start the core boots from (a jump to the stub
#: at the region's end), locked by the stub with a PMP entry as a guard below the session's stack.
STUB_BOOT = 4096


def serial_stub(cfg: DeviceConfig, path: Optional[Union[str, Path]] = None) -> Path:
    """The serial stub firmware for ``cfg``'s device (``device_stubs/serial/``): an ELF a user
    flashes once (``utvm-host firmware``), cached by content. It uses ``STUB_CODE`` bytes from the
    start of the device's first memory region and ``STUB_RAM`` from the start of RAM, or, with a
    single region, both at its end (its entry is the ELF's: QEMU and loaders start there)."""
    from .toolchain import _cached_entry, _sha256_file, _sha256_json
    family = _firmware_family(cfg)
    if family is None:
        raise ConfigError(f"the serial stub is built for RISC-V and Cortex-M devices; '{cfg.name}' is "
                          f"{cfg.abi['elf_machine']}")
    uart = cfg.get("transport", {}).get("uart") or cfg.get("console", {})
    kind = {"ns16550": "UTVM_SERIAL_NS16550", "cmsdk-uart": "UTVM_SERIAL_CMSDK"}.get(uart.get("kind"))
    if kind is None or "base" not in uart:
        raise ConfigError(f"the serial stub needs the device's UART: cfg['transport']['uart'] = "
                          f"{{'kind': 'ns16550' | 'cmsdk-uart', 'base': address}} (got {uart!r})")
    tc = Toolchain(cfg)
    startup = FIRMWARE_STUBS / family.firmware_stubs
    sources = [DEVICE_STUBS / "serial" / "utvm_serial_stub.c", FIRMWARE_STUBS / "utvm_firmware.c"] + \
        sorted(startup.glob("*.c")) + sorted(startup.glob("*.S")) + \
        [DEVICE_STUBS / extra for extra in family.serial_stub_sources]   # e.g. RISC-V's HTIF write
    mem = cfg.get("transport", {}).get("stub_memory") or cfg["memory"]
    code, ram = mem[0], mem[-1]
    stub_cfg = DeviceConfig(dict(cfg))
    layout = [dict(code, size=STUB_CODE), dict(ram, size=STUB_RAM)] if len(mem) > 1 else \
        [dict(code, start=code["start"] + code["size"] - STUB_CODE - STUB_RAM, size=STUB_CODE + STUB_RAM)]
    stub_cfg["memory"] = layout
    stub_cfg["mem_layout"] = dict(cfg["mem_layout"], stack={"size": 4096})
    script = _linker_script(stub_cfg, family.firmware_entry)
    defines = {kind: f"0x{uart['base']:x}"}
    if len(mem) == 1:
        script = script.replace("MEMORY\n{\n", f"MEMORY\n{{\n  BOOT (rx) : ORIGIN = 0x{code['start']:x}, LENGTH = "
                                f"0x{STUB_BOOT:x}\n", 1)
        boot = "SECTIONS\n{\n  .boot : { KEEP(*(.text.utvm_boot)) } > BOOT\n}\n"   # first: before .text takes it
        script = script.replace("SECTIONS\n{", boot + "SECTIONS\n{", 1)
        defines["UTVM_SERIAL_GUARD"] = f"0x{code['start']:x}"
    key = _sha256_json({"compiler": tc.identity(), "target": [cfg["arch"], tc.cflags], "script": script,
                        "defines": defines, "sources": [[p.name, _sha256_file(p)] for p in sources]})

    def make(work: Path) -> None:
        objects = []
        for i, src in enumerate(sources):
            obj = work / f"{i}_{src.stem}.o"
            tc.compile(src, obj, cflags=["-Os", "-Wall"], include_dirs=[FIRMWARE_STUBS], defines=defines,
                       runtime=True)
            objects.append(obj)
        (work / "stub.ld").write_text(script)
        cmd = [tc.cc, "-nostdlib", "-nostartfiles", "-static"] + tc.ldflags + \
              ["-T", str(work / "stub.ld"), "-Wl,--build-id=none", "-Wl,--gc-sections"] + \
              [str(o) for o in objects] + tc.libs + ["-o", str(work / "lib.o")]
        tc.run(cmd, f"linking the serial stub for {cfg['arch']}")

    elf = _cached_entry("stub", key, make) / "lib.o"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(elf.read_bytes())
        return Path(path)
    return elf
