"""Standalone firmware: a whole graph compiled into one ELF that runs with no host attached.

``export_firmware(graph, cfg, "model.elf")`` links startup code, the device runtime, the
graph's kernels, a generated program that calls them in order (the same memory plan as the
host-driven :class:`~utvm_host.executor.GraphExecutor`) and the params into one ELF. It reads
each input from the symbol ``utvm_input_<name>`` (initialised from ``inputs=``, or patched in
the file later with :meth:`Firmware.set_input`) and writes each output to
``utvm_output_<name>``; it also prints the outputs in hex and the device counter's count on
the console, then exits with status 0 (1 if a kernel reported an error, 3 on a fault):

- on Spike through HTIF (``write`` system call; ``tohost`` = status << 1 | 1);
- on Cortex-M through semihosting (``SYS_WRITE``; ``SYS_EXIT_EXTENDED``), e.g. QEMU's MPS2
  boards with ``-semihosting-config enable=on``.

:meth:`Firmware.run` starts the simulator on the ELF and parses what it printed.
The serial stub, the other standalone program, lives in :mod:`utvm_host.stubs`
(``serial_stub`` is importable from here too).
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
from .graph import Graph, MemoryPlan, Node
from .stubs import FIRMWARE_STUBS, firmware_family, firmware_linker_script, serial_stub   # serial_stub: re-exported
from .toolchain import TVM_FFI_PREFIX, Toolchain, build_runtime, build_runtime_parts


def _c_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _literal(value: Any, ctype) -> str:
    """A C expression of the parameter's type for a scalar attribute."""
    if ctype.kind == "float":
        return f"({abi.c_type_name(ctype)}){float(value).hex()}"
    return f"({abi.c_type_name(ctype)}){int(value)}{'LL' if ctype.size == 8 else ''}"


def _checked_input(name: str, spec, value: Any) -> np.ndarray:
    """``value`` as input ``name`` of ``spec``'s shape and dtype, else TypeError."""
    if value.shape != spec.shape or value.dtype != spec.dtype:
        raise TypeError(f"input '{name}' needs a {spec.dtype.name} array of shape {spec.shape}, got "
                        f"{value.dtype.name} {value.shape}")
    return np.ascontiguousarray(value)


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
        """Overwrite input ``name`` inside the ELF file (its initial contents).

        Parameters
        ----------
        name : str
            A graph input.
        value : array_like
            Its new contents, of the input's declared shape and dtype.

        Raises
        ------
        KeyError
            ``name`` is not an input of the graph.
        TypeError
            ``value`` has another shape or dtype.
        """
        spec = self.graph.tensors.get(name)
        if spec is None or name not in self.graph.inputs:
            raise KeyError(f"'{name}' is not an input of graph '{self.graph.name}'; its inputs: {self.graph.inputs}")
        arr = _checked_input(name, spec, np.ascontiguousarray(value))
        with ElfFile(self.path) as elf:
            sym = elf.get_symbol(f"utvm_input_{_c_name(name)}")
            sec = next(s for s in elf.sections if s.addr <= sym.value < s.addr + s.size and s.alloc)
            offset = sec.offset + sym.value - sec.addr
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(arr.tobytes())

    def command(self) -> List[str]:
        """The simulator command line that runs this firmware.

        Returns
        -------
        list of str
            Spike's (RISC-V) or QEMU's with semihosting (Cortex-M).
        """
        t = self.cfg["transport"]
        if self._runner() == "spike":
            mem = ",".join(f"0x{m['start']:x}:0x{m['size']:x}" for m in self.cfg["memory"])
            return [launch.find_spike(), f"--isa={t.get('isa', self.cfg['arch'])}", f"-m{mem}", str(self.path)]
        qemu = launch.require_program(t["qemu"], "qemu-system-arm")
        return [qemu, "-machine", t["machine"], "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native", "-kernel", str(self.path)]

    def _runner(self) -> Optional[str]:
        """What runs this firmware: "spike" or "qemu-semihosting" (see utvm_host.arch)."""
        family = firmware_family(self.cfg)
        return family.firmware_runner if family is not None else None

    def run(self, timeout: float = 120.0) -> FirmwareRun:
        """Run the firmware in its simulator (Spike, or QEMU for Cortex-M) with no session.

        Parameters
        ----------
        timeout : float
            Seconds the simulator may run.

        Returns
        -------
        FirmwareRun
            Its status, counter count, outputs and console text.

        Raises
        ------
        ConfigError
            The simulator did not exit in time, or the firmware exited 0 without printing every output.
        """
        if self._runner() == "spike":
            launch.require_program("dtc", "device-tree-compiler", "Spike runs dtc to build its device tree")
        try:
            proc = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"the firmware {self.path} did not exit within {timeout:g} s") from None
        return self.parse(proc.stdout, proc.returncode, proc.stderr)

    def parse(self, console: str, status: int, stderr: str = "") -> FirmwareRun:
        """What a run printed (``utvm-output NAME HEX`` and ``utvm-count N`` lines), as a :class:`FirmwareRun`.

        Parameters
        ----------
        console : str
            The firmware's console output.
        status : int
            Its exit status.
        stderr : str
            The simulator's own messages, appended to the console text.

        Returns
        -------
        FirmwareRun

        Raises
        ------
        ConfigError
            ``status`` is 0 but not every output was printed.
        """
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


# -- the generated program ----------------------------------------------------------------------

_TVM_TYPES = [
    "typedef struct { void *data; int32_t device_type, device_id; int32_t ndim;",
    "  uint8_t code, bits; uint16_t lanes; int64_t *shape; int64_t *strides; uint64_t byte_offset;",
    "} utvm_dltensor;   /* DLTensor (the device type is an enum of one byte with short enums:",
    "                      the value 1 stored as int32 reads the same) */",
    "typedef struct { int32_t type_index; uint32_t zero_padding;",
    "  union { int64_t v_int64; double v_float64; void *v_ptr; } v; } utvm_any;   /* TVMFFIAny */",
    "static utvm_any utvm_result;"]

_FAILED = ["", "static int utvm_failed(const char *where) {",
           '  utvm_fw_puts("utvm-error "); utvm_fw_puts(where); utvm_fw_puts(": ");',
           '  utvm_fw_put_error(utvm_last_error, utvm_ws_bad); utvm_fw_puts("\\n");', "  return 1;", "}", ""]


class _Program:
    """``graph_main.c`` in the making: declarations (``lines``), the calls of ``utvm_graph_run``
    (``calls``), the C expression of every tensor's address (``where``)."""

    def __init__(self, graph: Graph, library, workspace_size: int):
        self.graph, self.workspace_size = graph, workspace_size
        self.sigs = library.signatures()
        self.tvm = library.tvm_functions()
        self.lines = ['/* generated by utvm-host: the graph program of a standalone firmware */',
                      '#include "utvm_firmware.h"', "",
                      "extern const unsigned char utvm_params[];"]
        self.where: Dict[str, str] = {}
        self.declared: set = set()
        self.calls: List[str] = []

    def declare_tensors(self, plan: MemoryPlan) -> None:
        """Inputs, outputs, the arena and the workspace, and where each tensor is."""
        graph, lines = self.graph, self.lines
        for name in graph.inputs:
            c = _c_name(name)
            lines.append(f"extern unsigned char utvm_input_{c}[];")
            self.where[name] = f"utvm_input_{c}"
        for name in graph.outputs:
            c = _c_name(name)
            lines.append(f"unsigned char utvm_output_{c}[{max(graph.tensors[name].nbytes, 1)}] "
                         "__attribute__((aligned(16)));")
            self.where[name] = f"utvm_output_{c}"
        lines.append(f"static unsigned char utvm_arena[{max(plan.arena_size, 1)}] __attribute__((aligned(16)));")
        if self.workspace_size:
            lines.append(f"static unsigned char utvm_workspace[{self.workspace_size}] __attribute__((aligned(16)));")
        for name, off in plan.param_offsets.items():
            self.where[name] = f"(utvm_params + {off})"
        for name, off in plan.arena_offsets.items():
            self.where[name] = f"(utvm_arena + {off})"
        if self.tvm:
            lines += _TVM_TYPES

    def _declare(self, symbol: str, declaration: str) -> None:
        if symbol not in self.declared:
            self.lines.append(declaration)
            self.declared.add(symbol)

    def _tvm_any(self, i: int, j: int, node: Node, arg: Any) -> str:
        """The TVMFFIAny initialiser of argument ``j`` of node ``i`` (a tensor's DLTensor declared first)."""
        graph = self.graph
        if isinstance(arg, str) and arg in graph.tensors:
            spec = graph.tensors[arg]
            code, bits, lanes = abi.dl_dtype(spec.dtype)
            shape = ", ".join(str(d) for d in spec.shape) or "0"
            self.lines.append(f"static int64_t utvm_shape_{i}_{j}[] = {{{shape}}};")
            self.lines.append(f"static utvm_dltensor utvm_tensor_{i}_{j} = {{{self.where[arg]}, 1, 0, "
                              f"{len(spec.shape)}, {code}, {bits}, {lanes}, utvm_shape_{i}_{j}, 0, 0}};")
            return f"{{{abi.FFI_DLTENSOR_PTR}, 0, {{.v_ptr = &utvm_tensor_{i}_{j}}}}}"
        if isinstance(arg, bool):
            return f"{{{abi.FFI_BOOL}, 0, {{.v_int64 = {int(arg)}}}}}"
        if isinstance(arg, int):
            return f"{{{abi.FFI_INT}, 0, {{.v_int64 = {arg}LL}}}}"
        if isinstance(arg, float):
            return f"{{{abi.FFI_FLOAT}, 0, {{.v_float64 = {arg.hex()}}}}}"
        raise ConfigError(f"node '{node.name}': cannot pass {arg!r} to TVM function '{node.kernel}'")

    def tvm_call(self, i: int, node: Node, label: str) -> None:
        """Node ``i`` calls a TVM function through the FFI calling convention."""
        symbol = self.tvm[node.kernel]
        self._declare(symbol, f"extern int32_t {symbol}(void *, void *, int32_t, void *);")
        anys = [self._tvm_any(i, j, node, arg) for j, arg in enumerate(node.args)]
        self.lines.append(f"static utvm_any utvm_args_{i}[] = {{{', '.join(anys) or '{0}'}}};")
        self.calls.append(f"  if ({symbol}(0, utvm_args_{i}, {len(anys)}, &utvm_result) != 0 || utvm_error_set) "
                          f"return utvm_failed(\"{label}\");")

    def c_call(self, node: Node, label: str) -> None:
        """The node calls a C kernel with its signature's argument types."""
        graph = self.graph
        sig = self.sigs.get(node.kernel)
        if sig is None or node.kernel.startswith(TVM_FFI_PREFIX):
            raise ConfigError(f"graph '{graph.name}': node '{node.name}' calls kernel '{node.kernel}', which its "
                              f"sources do not define")
        if len(sig.params) != len(node.args):
            raise ConfigError(f"graph '{graph.name}': node '{node.name}' passes {len(node.args)} arguments to "
                              f"{node.kernel}(), which takes {len(sig.params)}")
        params = ", ".join(abi.c_type_name(p.type) for p in sig.params) or "void"
        self._declare(node.kernel, f"extern {abi.c_type_name(sig.return_type)} {node.kernel}({params});")
        args = []
        for p, arg in zip(sig.params, node.args):
            if p.type.kind == "pointer":
                args.append(f"(void *){self.where[arg]}" if isinstance(arg, str) else "(void *)0")
            else:
                args.append(_literal(arg, p.type))
        self.calls.append(f"  {node.kernel}({', '.join(args)});")
        self.calls.append(f"  if (utvm_error_set) return utvm_failed(\"{label}\");")

    def main(self) -> List[str]:
        """``utvm_failed``, ``utvm_graph_run`` and ``main`` (which prints status, count and outputs)."""
        graph = self.graph
        out = _FAILED + ["int utvm_graph_run(void) {"] + self.calls + ["  return 0;", "}", "", "int main(void) {"]
        if self.workspace_size:
            out += ["  utvm_workspace_base = (uintptr_t)utvm_workspace;",
                    "  utvm_workspace_size = sizeof utvm_workspace;"]
        out += ["  uint64_t start = UTVMCounter();", "  int status = utvm_graph_run();",
                "  uint64_t count = UTVMCounter() - start;",
                f'  utvm_fw_puts("utvm-graph {graph.name} status "); utvm_fw_put_i64(status); utvm_fw_puts("\\n");',
                '  utvm_fw_puts("utvm-count "); utvm_fw_put_u64(count); utvm_fw_puts("\\n");']
        for name in graph.outputs:
            out.append(f'  utvm_fw_puts("utvm-output {name} "); utvm_fw_put_hex({self.where[name]}, '
                       f'{graph.tensors[name].nbytes}); utvm_fw_puts("\\n");')
        return out + ["  return status;", "}", ""]


def _graph_data(graph: Graph) -> str:
    """``graph_data.S``: the params (read-only) and the inputs (initial contents), by .incbin."""
    data = ['/* generated by utvm-host: params (read-only) and inputs (initial contents) */',
            '  .section .rodata.utvm_params, "a"', "  .balign 16", "  .globl utvm_params",
            "utvm_params:", '  .incbin "params.bin"', "  .balign 16", '  .section .data.utvm_inputs, "aw"']
    for name in graph.inputs:
        c = _c_name(name)
        data += ["  .balign 16", f"  .globl utvm_input_{c}", f"utvm_input_{c}:", f'  .incbin "input_{c}.bin"']
    return "\n".join(data) + "\n"


def graph_program(graph: Graph, library, workspace_size: int, inputs: Dict[str, np.ndarray]) -> Dict[str, str]:
    """The generated sources of the graph program of a standalone firmware.

    Parameters
    ----------
    graph : Graph
        The model.
    library : Library
        Its kernels built for the device (signatures and TVM functions are read from it).
    workspace_size : int
        Bytes of the TVMBackendAllocWorkspace pool (0: none).
    inputs : dict
        The inputs' arrays (their ``.bin`` files are the caller's to write).

    Returns
    -------
    dict
        ``{"graph_main.c": ..., "graph_data.S": ...}``; the latter includes ``params.bin`` and
        ``input_<name>.bin`` by .incbin.

    Raises
    ------
    ConfigError
        A node calls a kernel the sources do not define, with another number of arguments, or
        passes a TVM function an argument it cannot take.
    """
    program = _Program(graph, library, workspace_size)
    program.declare_tensors(graph.plan())
    for i, node in enumerate(graph.nodes):
        label = f"node '{node.name}' (kernel '{node.kernel}')".replace('"', "'")
        if node.kernel in program.tvm:
            program.tvm_call(i, node, label)
        else:
            program.c_call(node, label)
    return {"graph_main.c": "\n".join(program.lines + program.main()), "graph_data.S": _graph_data(graph)}


# -- building the firmware ----------------------------------------------------------------------

def _family_for_export(cfg: DeviceConfig) -> arch.Arch:
    """``cfg``'s family, which must have a standalone firmware that ``cfg`` can run."""
    family = firmware_family(cfg)
    if family is None:
        raise ConfigError(f"standalone firmware is built for RISC-V (run on Spike) and Cortex-M (semihosting) "
                          f"devices; '{cfg.name}' is {cfg.abi['elf_machine']}: run the graph there with GraphExecutor")
    problem = family.firmware_problem(cfg)
    if problem is not None:
        raise ConfigError(problem)
    return family


def _input_arrays(graph: Graph, inputs: Optional[Dict[str, Any]]) -> Dict[str, np.ndarray]:
    """Every input's initial contents: from ``inputs``, else zeros."""
    arrays = {}
    for name in graph.inputs:
        spec = graph.tensors[name]
        value = np.zeros(spec.shape, spec.dtype) if not inputs or name not in inputs else np.asarray(inputs[name])
        arrays[name] = _checked_input(name, spec, value)
    return arrays


def _write_sources(work: Path, graph: Graph, plan: MemoryPlan, library, workspace_size: int,
                   arrays: Dict[str, np.ndarray]) -> None:
    """The params blob, the inputs' files and the generated program, in ``work``."""
    blob = bytearray(plan.params_size)
    for name, off in plan.param_offsets.items():
        raw = graph.params[name].tobytes()
        blob[off:off + len(raw)] = raw
    (work / "params.bin").write_bytes(bytes(blob))
    for name, arr in arrays.items():
        (work / f"input_{_c_name(name)}.bin").write_bytes(arr.tobytes())
    for fname, text in graph_program(graph, library, workspace_size, arrays).items():
        (work / fname).write_text(text)


def _sources(work: Path, family: arch.Arch) -> List[Path]:
    """The generated program, the firmware's common code and the family's startup."""
    startup = FIRMWARE_STUBS / family.firmware_stubs
    return [work / "graph_main.c", work / "graph_data.S", FIRMWARE_STUBS / "utvm_firmware.c"] + \
        sorted(startup.glob("*.c")) + sorted(startup.glob("*.S"))


def _memory_sizes(path: Path, plan: MemoryPlan, workspace_size: int) -> Dict[str, int]:
    """Bytes of the firmware's sections and of the graph's memory."""
    with ElfFile(path) as elf:
        size = {s.name: s.size for s in elf.sections if s.alloc}
    return {"code": size.get(".text", 0), "rodata": size.get(".rodata", 0), "data": size.get(".data", 0),
            "bss": size.get(".bss", 0), "stack": size.get(".stack", 0), "params": plan.params_size,
            "activations": plan.arena_size, "workspace": workspace_size}


def export_firmware(graph: Graph, cfg: DeviceConfig, path: Union[str, Path], *,
                    inputs: Optional[Dict[str, Any]] = None, workspace_size: Optional[int] = None) -> Firmware:
    """Build ``graph`` into a standalone ELF for ``cfg``'s device (Spike or a Cortex-M).

    Parameters
    ----------
    graph : Graph
        The model.
    cfg : DeviceConfig
        A RISC-V device run on Spike, or a Cortex-M one run with semihosting.
    path : str or Path
        Where the ELF is written.
    inputs : dict, optional
        The inputs' initial contents by name (zeros otherwise).
    workspace_size : int, optional
        Bytes of the TVMBackendAllocWorkspace pool (default: the device's workspace size when a
        kernel uses it, else none).

    Returns
    -------
    Firmware
        The ELF, with its memory sizes.

    Raises
    ------
    ConfigError
        The device cannot run a standalone firmware, or the graph's program cannot be generated.
    TypeError
        An input has another shape or dtype than the graph declares.
    """
    family = _family_for_export(cfg)
    path = Path(path)
    tc = Toolchain(cfg)
    library = graph.build(cfg)
    runtime = build_runtime(cfg)
    needs_ws = "TVMBackendAllocWorkspace" in library.elf().undefined_symbols()
    if workspace_size is None:
        workspace_size = cfg["mem_layout"].get("workspace", {}).get("size", 64 * 1024) if needs_ws else 0
    arrays = _input_arrays(graph, inputs)
    plan = graph.plan()
    with tempfile.TemporaryDirectory(prefix="utvm-firmware-") as tmp:
        work = Path(tmp)
        _write_sources(work, graph, plan, library, workspace_size, arrays)
        # the runtime's parts linked on demand: --gc-sections drops those no kernel calls
        parts = [part.path for part in build_runtime_parts(cfg)]
        script = work / "firmware.ld"
        script.write_text(firmware_linker_script(cfg, family.firmware_entry))
        out = work / "firmware.elf"
        tc.compile_and_link(_sources(work, family), work, out, cflags=["-O2", "-Wall"],
                            include_dirs=[FIRMWARE_STUBS, work], runtime=True, script=script,
                            ldflags=["-Wl,--build-id=none", "-Wl,--gc-sections"],
                            inputs=[library.path, runtime.path, *parts],
                            what=f"linking the firmware of '{graph.name}' for {cfg['arch']}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out.read_bytes())
    return Firmware(path, graph, cfg, _memory_sizes(path, plan, workspace_size))


__all__: Sequence[str] = ["export_firmware", "Firmware", "FirmwareRun", "graph_program", "serial_stub"]
