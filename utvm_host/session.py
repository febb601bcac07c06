"""Sessions: the device runtime, loaded modules, device tensors, calls, error decoding, recovery.

A call's trip: numpy arrays are copied to temporary blocks of the ``heap`` region (device
tensors are passed in place), each argument is encoded in its 8-byte slot of the ``args``
region (per :mod:`utvm_host.abi`), a task naming the kernel's generated shim goes into the
runtime's task table, the transport runs ``UTVMMain`` until ``UTVMDone``, and the results come
back: the return slot, the task's status and error flag, and every array passed as ``T*``.
"""
from __future__ import annotations

import contextlib
import html
import logging
import math
import numbers
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import abi, launch, registry
from .config import DeviceConfig
from .console import Console
from .elf import CType, ElfFile, Signature
from .errors import (ConfigError, ConnectionLost, DeviceError, DeviceFault, DeviceTimeout, KernelError,
                     LayoutError, LinkError, TransportError, UtvmError, kernel_error_class)
from .layout import Block, MemoryLayout, MemoryMap
from .link import LinkedImage, Linker
from .toolchain import RUNTIME_INCLUDE, SHIM_PREFIX, TVM_FFI_PREFIX, Library, build_runtime, library_from_object
from .transport import gdb
from .endpoint import Endpoint, TcpEndpoint, UnixEndpoint
from .transport import HostTransport, OpenOcdTransport, StopInfo, TracingTransport, Transport

log = logging.getLogger(__name__)

#: Parameter names that give the element count of the kernel's array arguments.
LENGTH_NAMES = frozenset({"n", "len", "length", "size", "count", "num", "num_elements", "nelem"})

_SIGNAL_CODES = {
    signal.SIGSEGV: {1: "address not mapped", 2: "invalid permissions for mapped object"},
    signal.SIGBUS: {1: "invalid address alignment", 2: "nonexistent physical address", 3: "object-specific hardware error"},
    signal.SIGILL: {1: "illegal opcode", 2: "illegal operand", 3: "illegal addressing mode", 4: "illegal trap",
                    5: "privileged opcode", 6: "privileged register", 7: "coprocessor error", 8: "internal stack error"},
    signal.SIGFPE: {1: "integer divide by zero", 2: "integer overflow", 3: "floating-point divide by zero",
                    4: "floating-point overflow", 5: "floating-point underflow", 6: "floating-point inexact result",
                    7: "invalid floating-point operation", 8: "subscript out of range"},
}

_current: List["Session"] = []
#: Per thread: whether the running call was started with Function.start() (a debugger may then
#: stop it at breakpoints and the call waits; a plain call cannot wait for a person).
call_context = threading.local()


def current_session() -> "Session":
    """The innermost open session (``with Session(cfg):``), or :class:`UtvmError` if none."""
    if not _current:
        raise UtvmError("no open session: use `with Session(cfg) as sess:` and call load() inside it "
                        "(or sess.load(lib))")
    return _current[-1]


def load(lib: Union[Library, str, os.PathLike]) -> "Module":
    """Load a library into the current session: same as ``sess.load(lib)``."""
    return current_session().load(lib)


#: Unix socket paths (QEMU's gdbstub and UART, gdb's way to OpenOCD) must stay under 108 bytes:
#: a session folder is made where its sockets' paths fit.
_MAX_FOLDER_PARENT = 64


def _session_parent() -> str:
    """The folder session folders go in: the temporary directory, or /tmp when its path is too
    long for the Unix sockets inside a session folder."""
    parent = tempfile.gettempdir()
    if len(parent) > _MAX_FOLDER_PARENT and os.access("/tmp", os.W_OK | os.X_OK):
        log.debug("temporary directory %s is too long for Unix socket paths: session folders go in /tmp", parent)
        return "/tmp"
    return parent


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _runtime_errors() -> Dict[str, str]:
    """The runtime's own error texts by code, as utvm_runtime_errors.h defines them once
    (``#define UTVM_RUNTIME_ERROR_<code> "text"``): the device stores only ESC and the code."""
    text = (RUNTIME_INCLUDE / "utvm_runtime_errors.h").read_text()
    return dict(re.findall(r'^#define UTVM_RUNTIME_ERROR_(\w+) "([^"\\]*)"$', text, re.M))


_RUNTIME_ERRORS = _runtime_errors()


def runtime_error_text(text: str, bad_header: Callable[[], str] = lambda: "") -> str:
    """An error text as the runtime stored it, with the runtime's own code (ESC and a digit)
    written out: for code 4 (a workspace header written over) followed by ``bad_header()``, the
    header's address in hex (the runtime keeps it in ``utvm_ws_bad``). A kernel's text is
    returned as it is."""
    code = text[1:2]
    if text.startswith("\033") and code in _RUNTIME_ERRORS:
        return _RUNTIME_ERRORS[code] + (bad_header() if code == "4" else "") + text[2:]
    return text


#: Bytes of the stack region's bottom that the Cortex-M v7-M MPU guard always covers
#: (utvm_cortexm.c; the stack region is 4 KiB-aligned on those devices).
STACK_GUARD_BYTES = 4096
#: Stack a call takes beyond the kernel's own frame: the runtime's entry and the call shim.
CALL_STACK_OVERHEAD = 256


def stack_guard_regions(limit: int, depth: int, floor: int, slots: int = 8) -> List[Tuple[int, int]]:
    """The no-access regions ``(base, size)`` of a v7-M MPU stack guard: sizes are powers of
    two, each aligned to its size, at most ``slots`` of them. Together they cover
    ``[limit + 4096 - depth, limit + 4096)`` (at least the stack's lowest 4 KiB at ``limit``),
    never reaching below ``floor`` (memory in use): there the guard is shallower. A region may
    reach deeper than asked when that saves regions (never below ``floor``)."""
    hi = limit + STACK_GUARD_BYTES
    lo = max(hi - max(depth, STACK_GUARD_BYTES), (floor + 31) & ~31, 0)
    regions: List[Tuple[int, int]] = []
    cur = hi
    while cur > lo and len(regions) < slots:
        align = cur & -cur
        need = cur - lo
        up = 1 << (need - 1).bit_length()      # one region for the rest, if aligned and above floor
        if up <= align and cur - up >= floor:
            regions.append((cur - up, up))
            break
        size = min(align, 1 << (need.bit_length() - 1))
        regions.append((cur - size, size))
        cur -= size
    return regions


class Session:
    """A connection to one device with its runtime loaded.

    ``with Session(cfg) as sess:`` opens it (starting any processes the device needs) and
    closes it at the end, stopping them; ``load(lib)`` inside the block loads into it.
    ``timeout`` (seconds) overrides ``cfg["timeout"]`` for every call. ``trace=True`` (or the
    environment variable ``UTVM_HOST_TRACE=1``) logs every transfer with a hex dump at DEBUG
    level on the ``utvm_host.transport.tracing`` logger.
    """

    def __init__(self, cfg: DeviceConfig, *, timeout: Optional[float] = None, trace: Optional[bool] = None,
                 echo_console: Optional[bool] = None, verify: Optional[bool] = None):
        if not isinstance(cfg, DeviceConfig):
            if isinstance(cfg, dict):
                cfg = DeviceConfig(cfg)
            else:
                raise TypeError(f"Session() takes a device config from utvm_host.devices, got {type(cfg).__name__}")
        self.cfg: DeviceConfig = cfg.copy()
        self.timeout = float(timeout if timeout is not None else self.cfg.get("timeout", 10.0))
        self.trace = bool(trace) if trace is not None else os.environ.get("UTVM_HOST_TRACE", "") not in ("", "0")
        #: Check every write of code, arguments and tensors (``verify=True`` or UTVM_HOST_VERIFY=1):
        #: read it back, or on slow links compare a CRC-32 the device computes; a mismatch raises
        #: TransportError naming the address, the length and the first differing byte.
        self.verify = bool(verify) if verify is not None else \
            os.environ.get("UTVM_HOST_VERIFY", "") not in ("", "0")
        #: How many times the device was started anew (its memory lost); tensors remember theirs.
        self._epoch = 0
        self._lost_why = ""
        self._run_id = 0   # the sequence number of the last run (echoed by the runtime)
        self._recovering = False
        self.transport: Optional[Transport] = None
        #: What kernels print (printf): ``sess.console.read()``; echoed in notebooks unless
        #: ``echo_console=False``.
        self.console = Console(echo=echo_console)
        self.layout: Optional[MemoryLayout] = None
        self.runtime: Optional[LinkedImage] = None
        self.modules: List[Module] = []
        self.workdir: Optional[Path] = None
        self._broken: Optional[str] = None
        self._owners: Dict[str, int] = {}
        self._processes: list = []
        self._timing_state: Tuple[int, int] = (-1, -1)   # unknown: written before the first call
        self._overheads: Dict[int, float] = {}
        self._planned: Dict[str, List[Block]] = {}
        self._planned_tensors: List[Block] = []
        self._early: Optional[Transport] = None   # a serial link opened before the runtime is linked
        self._registry_id: Optional[str] = None
        self._registry_path: Optional[Path] = None
        self._owner_pid = os.getpid()
        self._gdb_server: Optional[tuple] = None   # (endpoint, registers, bp kind) of a gdb-server device
        self._network: Optional[launch.PrivateNetwork] = None   # where Spike and OpenOCD live
        self._ocd_gdb: Optional[Endpoint] = None   # the gdb port of the OpenOCD this session started
        self._debugger = None
        self._call_lock = threading.RLock()   # one call at a time (start() runs calls in a thread)
        #: Device counter units the last profiled batch took as a whole (run_batch(profile=True)).
        self.last_batch_count: Optional[int] = None
        #: The 127.0.0.1 gdb port of the OpenOCD this session started, when it could not be given a
        #: private network (None otherwise: debuggers attach to :attr:`gdb_target`).
        self.gdb_port: Optional[int] = None
        self._opened = False

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Session":
        self.open()
        _current.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _current:
            _current.remove(self)
        self.close()

    def open(self) -> "Session":
        """Start the device and load the runtime. Raises on any failure, leaving nothing running."""
        if self._opened:
            return self
        self.cfg.validate()
        kind = self.cfg.transport_kind
        if kind not in ("host", "openocd", "gdb", "serial"):
            raise ConfigError(f"device '{self.cfg.name}' uses transport {kind!r}, which this version of "
                              "utvm-host cannot drive (it knows 'host', 'openocd', 'gdb' and 'serial')")
        self.layout = self.cfg.memory_layout()
        self.workdir = Path(tempfile.mkdtemp(prefix="utvm-session-", dir=_session_parent()))
        self._owner_pid = os.getpid()   # a forked child inherits this object, not the device
        self._finalizer = weakref.finalize(self, _remove_folder, str(self.workdir), self._owner_pid)
        try:
            self.linker = Linker(self.cfg, self.layout, self.workdir)
            self._place_runtime()
            self.transport, self._preloaded = self._start_device()
            if self.trace:
                self.transport = TracingTransport(self.transport)
            self.console.attach(self._console_file())
            self._write_runtime(image=not self._preloaded)
        except BaseException:
            # Nothing is left behind: the folder goes too (the error carries the logs' last lines).
            self.close()
            raise
        self._opened = True
        self._publish()
        log.info("session open on %s (%s)", self.cfg.name, self.workdir)
        return self

    _ids = iter(range(1, 1 << 30))

    def _publish(self) -> None:
        """Announce this session to other processes (utvm-host info / debug)."""
        try:
            if self._registry_id is None:
                self._registry_id = f"{os.getpid()}-{next(Session._ids)}"
                self._started = time.time()
            gdb_arch = {"EM_RISCV": f"riscv:rv{8 * self.cfg.pointer_size}", "EM_ARM": "arm"}.get(
                self.cfg.abi["elf_machine"])
            try:
                target = self._debug_endpoint()
                endpoint = {"socket": target.path} if isinstance(target, UnixEndpoint) else \
                    {"host": target.host, "port": target.port}
                endpoint.update(arch=gdb_arch, shared=self.cfg.transport_kind == "openocd")
            except ConfigError:
                endpoint = None
            record = {
                "id": self._registry_id, "pid": os.getpid(), "device": self.cfg.name, "arch": self.cfg["arch"],
                "transport": self.cfg.transport_kind, "started": self._started, "gdb": endpoint,
                "folder": str(self.workdir),   # readers accept ELF paths and sockets only inside it
                "runtime": self.runtime.elf_path if self.runtime is not None else None,
                "modules": [{"name": m.name, "elf": m.image.elf_path, "kernels": m.kernels(),
                             "sections": {b.what: b.start for b in m.image.blocks}} for m in self.modules],
                "memory_map": str(self.layout.memory_map()) if self.layout is not None else "",
            }
            self._registry_path = registry.publish(record)
        except registry.RegistryError as exc:   # announcing is a convenience: never fail a session for it
            log.warning("this session is not announced to `utvm-host info/debug`: %s", exc)
        except OSError as exc:
            log.debug("cannot publish the session record: %s", exc)

    def _stub_symbols(self) -> Dict[str, int]:
        """Over a serial link: the stub's hooks the runtime calls (its call-return and console)."""
        if self.cfg.transport_kind != "serial":
            return {}
        if not self.cfg["transport"].get("uart"):   # a stub flashed from elsewhere: ask it where its hooks are
            if self._early is None:
                self._early = self._open_serial(self.cfg["transport"].get("url"))
            return {"UTVMDoneHook": self._early.info["done_hook"], "UTVMConsoleHook": self._early.info["console_hook"]}
        from .export import serial_stub   # builds (or finds in the cache) the stub for this device
        self._stub_elf = serial_stub(self.cfg)
        with ElfFile(self._stub_elf) as elf:
            return {name: elf.get_symbol(name).value for name in ("UTVMDoneHook", "UTVMConsoleHook")}

    def _open_serial(self, url: str) -> Transport:
        from .transport.serial import SerialTransport
        return SerialTransport(url, baudrate=self.cfg["transport"].get("baudrate", 115200),
                               console=self.workdir / "console.log", little_endian=self.cfg.little_endian)

    def _console_file(self) -> Optional[Path]:
        """The file the device's console channel writes to, when this session started it."""
        t = self.cfg["transport"]
        if t["kind"] == "serial":
            return self.workdir / "console.log"   # the stub's console frames
        if self.cfg.get("console", {}).get("kind", "none") == "none":
            return None
        if t["kind"] in ("host", "serial") or t.get("launch") == "qemu":
            return self.workdir / "console.log"
        if t.get("launch") == "spike":
            return self.workdir / "spike.log"   # Spike's standard output: its HTIF console
        return None

    def _start_device(self) -> Tuple[Transport, bool]:
        """Start (or attach to) the device; returns its transport and whether the runtime image
        is already in its memory (Spike loads the runtime's ELF itself at start)."""
        t = self.cfg["transport"]
        if t["kind"] == "host":
            memory = self.cfg["memory"][0]
            return HostTransport(memory["start"], memory["size"], log_dir=self.workdir), False
        riscv = self.cfg.abi["elf_machine"] == "EM_RISCV"
        compressed = self.cfg.abi.get("thumb") or (riscv and "c" in self.cfg["arch"][4:]) or \
            self.cfg["arch"].endswith("gc")
        if t["kind"] == "serial":
            return self._start_serial(t), False
        if t["kind"] == "gdb":
            if t.get("launch") == "qemu":
                extra = (["-bios", "none"] if riscv else []) + (["-icount", "shift=0"] if t.get("icount") else [])
                qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], Path(self.runtime.elf_path),
                                                   self.workdir, extra=extra)
                self._processes.append(qemu)
                preloaded = True
            else:
                endpoint = UnixEndpoint(t["server_socket"]) if t.get("server_socket") else \
                    TcpEndpoint(t.get("server_addr") or "127.0.0.1", int(t["server_port"]))
                preloaded = False
            regs = (gdb.RISCV32 if self.cfg.pointer_size == 4 else gdb.RISCV64) if riscv else gdb.ARM_M
            self._gdb_server = (endpoint, regs, 2 if compressed else 4)
            return gdb.GdbTransport(endpoint, None, regs, little_endian=self.cfg.little_endian,
                                    bp_kind=2 if compressed else 4), preloaded
        preloaded = False
        gdb_endpoint: Optional[Endpoint] = None
        if t.get("launch") in ("spike", "openocd"):
            # Spike's JTAG port and OpenOCD's command ports live in a network of their own
            # (no other user can reach them); a board whose adapter is reached over the
            # network may opt out with transport["private_network"] = False.
            network = launch.private_network(self.workdir) if t.get("private_network", True) else None
            if network is not None:
                self._processes.append(network)
            self._network = network
            if t.get("launch") == "spike":
                spike, rbb = launch.start_spike(t["isa"], [(m["start"], m["size"]) for m in self.cfg["memory"]],
                                                Path(self.runtime.elf_path), self.workdir, network=network)
                self._processes.append(spike)
                ocd, tcl, gdb_endpoint = launch.start_openocd([], launch.spike_openocd_commands(rbb), self.workdir,
                                                              network=network)
                preloaded = True
            else:
                ocd, tcl, gdb_endpoint = launch.start_openocd(t.get("config_files", []), t.get("commands", []),
                                                              self.workdir, network=network)
            self._processes.append(ocd)
            self.gdb_port = None if network is not None else gdb_endpoint.port
        else:
            tcl = TcpEndpoint(t.get("server_addr") or "127.0.0.1", int(t["server_port"]))
        self._ocd_gdb = gdb_endpoint
        transport = OpenOcdTransport(tcl, None, little_endian=self.cfg.little_endian,
                                     bp_length=2 if compressed else 4, gdb_endpoint=gdb_endpoint,
                                     result_regs=("a0", "a1", "a2") if riscv else ("r0", "r1", "r2"))
        if gdb_endpoint is not None:
            transport.keep_after_gdb(self._sym["UTVMDone"])
        return transport, preloaded

    def _start_serial(self, t: Dict[str, Any]) -> Transport:
        """The serial stub: QEMU booting it (its UART0 served on a loopback port), or a board's
        port; checks that the stub is the build this session links against."""
        url = t.get("url")
        if self._early is not None:   # connected already, to learn where the stub's hooks are
            tr, self._early = self._early, None
            self._check_stub_memory(tr)
            return tr
        if t.get("launch") == "qemu":
            extra = (["-bios", "none"] if self.cfg.abi["elf_machine"] == "EM_RISCV" else []) + \
                (["-icount", "shift=0"] if t.get("icount") else [])
            qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], self._stub_elf, self.workdir, extra=extra,
                                               serial_server=True)
            self._processes.append(qemu)
            url = f"unix://{endpoint.path}"
        tr = self._open_serial(url)
        want = self._stub_symbols()
        if (tr.info["done_hook"], tr.info["console_hook"]) != (want["UTVMDoneHook"], want["UTVMConsoleHook"]):
            tr.close()
            raise LinkError(f"the serial stub on {url} is another build than this utvm-host's for '{self.cfg.name}' "
                            "(its hooks are elsewhere): flash the one `utvm-host firmware --device ...` writes")
        self._check_stub_memory(tr)
        return tr

    def _check_stub_memory(self, tr) -> None:
        for end in (tr.info["stub_end"], tr.info["stub_code_end"]):   # the stub's memory ends inside a region?
            for region in self.cfg["memory"]:
                if region["start"] < end <= region["start"] + region["size"]:
                    tr.close()
                    raise ConfigError(f"cfg['memory'] region {region['name']!r} overlaps the serial stub (which uses "
                                      f"memory up to 0x{end:x} there); start the region after that")

    def close(self, keep_logs: bool = False) -> None:
        """Stop the device's processes and forget its state. Safe to call twice. The session's
        folder (links, logs) is removed unless ``keep_logs``.

        In a forked child (another pid than the one that opened the session) nothing is stopped
        or removed: the child only forgets the session, which stays the parent's."""
        if self.workdir is not None and os.getpid() != self._owner_pid:
            self._forget_inherited()
            return
        self.console.close()
        if self._early is not None:
            self._early.close()
            self._early = None
        if self._registry_path is not None:
            registry.withdraw(self._registry_path, owner_pid=self._owner_pid)
            self._registry_path = None
        if self._debugger is not None:
            try:
                self._debugger.detach()
            except Exception as exc:   # closing anyway
                log.warning("detaching the debugger at close: %s", exc)
            self._debugger = None
        for mod in self.modules:
            mod._loaded = False
            mod.image.close()
        self.modules = []
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for proc in reversed(self._processes):
            proc.stop()
        self._processes = []
        if self.workdir is not None:
            if keep_logs:
                self._finalizer.detach()
            else:
                self._finalizer()
            self.workdir = None
        self._opened = False

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's session without touching its processes, folder,
        registry record or device memory (they are the parent's, and it goes on using them)."""
        self._finalizer.detach()
        self._registry_path = None
        self._debugger = None
        for mod in self.modules:
            mod._loaded = False
        self.modules = []
        self.runtime = None
        self.transport = None
        self._early = None
        self._processes = []
        self.workdir = None
        self._opened = False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the launch layer's atexit hook stops processes
            pass

    @property
    def is_open(self) -> bool:
        return self._opened

    def _require_open(self) -> None:
        if not self._opened:
            raise UtvmError("the session is closed; open a new one with `with Session(cfg) as sess:`")
        if self._broken:
            raise DeviceError(f"the device needs sess.reset(): {self._broken}")

    # -- runtime -----------------------------------------------------------------------------

    def _place_runtime(self) -> None:
        """Link the runtime at its addresses and learn its symbols and struct layouts. The
        stack is placed first: the lowest address of its region, so an overflow runs below it."""
        spec = {r.name: r for r in self.cfg.resolved_layout()}
        self._sizes = {k: spec[k].size for k in ("stack", "workspace", "args")}
        self._stack_block = self.layout.place("stack", self._sizes["stack"], owner="runtime", what="stack",
                                              align=spec["stack"].align)
        lib = build_runtime(self.cfg)
        self.runtime = self.linker.place(lib, "runtime", self._stub_symbols())
        with ElfFile(self.runtime.elf_path) as elf:
            self._sym_sizes = {n: elf.get_symbol(n).size for n in ("utvm_stack_guard", "utvm_console_line")
                               if elf.get_symbol(n)}
            self._task_layout = elf.struct_layout("UTVMTask")
            task_size = elf.get_symbol("utvm_tasks").size
            self._max_repeat = elf.get_symbol("utvm_counts").size // 8
            self._error_sizes = {n: elf.get_symbol(n).size for n in ("utvm_last_error", "utvm_last_error_kind")}
            try:
                self._fault_layout: Optional[Dict[str, Tuple[int, int]]] = elf.struct_layout("UTVMFault")
            except KeyError:
                self._fault_layout = None
        sym = self.runtime.symbols
        ptr = self.cfg.pointer_size
        self._ptr_fmt = ("<" if self.cfg.little_endian else ">") + ("I" if ptr == 4 else "Q")
        self._order = "<" if self.cfg.little_endian else ">"
        off = {k: v[0] for k, v in self._task_layout.items()}
        end = max(o + s for o, s in self._task_layout.values())
        self._task_stride = (end + ptr - 1) // ptr * ptr   # struct size: fields plus tail padding
        self._max_tasks = task_size // self._task_stride
        self._task_off = off
        if off["error"] != off["status"] + 4:
            raise LinkError("the device runtime's UTVMTask layout is unexpected (status, error not adjacent)")
        self._status = struct.Struct(self._order + "ii")
        self._num_tasks = -1
        self._last_task: Optional[bytes] = None
        self._last_batch: Optional[tuple] = None
        self._profile_state: Optional[bool] = False   # the runtime's utvm_profile starts at 0
        self._sym = sym
        self._entry = sym.get("UTVMEntry", sym["UTVMMain"])
        self._trapped = (1 << (8 * ptr)) - 1
        ws, args = self._sizes["workspace"], self._sizes["args"]
        self._workspace_block = self.layout.place("workspace", ws, owner="runtime", what="workspace", align=16)
        self._args_block = self.layout.place("args", args, owner="runtime", what="call arguments", align=16)

    def _write_runtime(self, image: bool = True) -> None:
        if image:
            self._write_image(self.runtime)
        pack = struct.Struct(self._ptr_fmt).pack
        self.transport.write(self._sym["utvm_workspace_base"], pack(self._workspace_block.start))
        self.transport.write(self._sym["utvm_workspace_size"], pack(self._workspace_block.size))
        if "utvm_stack_limit" in self._sym:   # Cortex-M: PSPLIM or an MPU guard at the stack's bottom
            self.transport.write(self._sym["utvm_stack_limit"], struct.pack(self._order + "I", self._stack_block.start))
            self._guard_written = None
            self._write_stack_guard()

    def _write_stack_guard(self) -> None:
        """Cortex-M v7-M: write the MPU regions that guard the stack's underside as deep as the
        largest frame ``-fstack-usage`` reports for the loaded libraries (below the stack only
        over addresses outside every memory region; warns when that cannot reach deep enough).
        Written when it changes: at open, after a restart, at load and unload."""
        if "utvm_stack_guard" not in self._sym:
            return
        deepest = max((n for m in self.modules for n in m.library.stack_usage.values()), default=0)
        limit = self._stack_block.start
        floor = 0
        live = list(self.cfg["memory"]) + list(self.cfg["transport"].get("stub_memory", []))
        for m in live:   # in use below the stack: a region under it, or the rest of the stack's own
            if m["start"] < limit:
                floor = max(floor, min(m["start"] + m["size"], limit))
        slots = self._sym_sizes.get("utvm_stack_guard", 64) // 8
        regions = stack_guard_regions(limit, deepest + CALL_STACK_OVERHEAD, floor, slots)
        table = bytearray(8 * slots)
        for i, (base, size) in enumerate(regions):
            rasr = (1 << 28) | ((size.bit_length() - 2) << 1) | 1   # XN, no access, 2^(SIZE+1) bytes, on
            struct.pack_into(self._order + "II", table, 8 * i, base, rasr)
        if bytes(table) == self._guard_written:
            return
        self.transport.write(self._sym["utvm_stack_guard"], bytes(table))
        self._guard_written = bytes(table)
        depth = limit + STACK_GUARD_BYTES - min((b for b, _ in regions), default=limit)
        if depth < deepest + CALL_STACK_OVERHEAD:
            log.warning("the stack guard reaches only %d bytes below the top of its 4 KiB at 0x%x (memory in use "
                        "lies below the stack), less than the largest frame of the loaded code (%d bytes): a chain of "
                        "calls that overflows the stack may run past it; place the stack at the start of a memory "
                        "region", depth, limit, deepest)

    def _check_frame(self, module: "Module", kernel: str, symbol: str) -> None:
        """Refuse a kernel whose own stack frame (``-fstack-usage``) cannot fit in the device stack
        (less its guard): it would overflow on every call. :class:`LayoutError` says by how much
        and how to fix it."""
        frame = module.library.stack_usage.get(symbol)
        if frame is None:
            return
        stack = self._stack_block.size
        guard = STACK_GUARD_BYTES if "utvm_stack_guard" in self._sym else 0
        usable = stack - guard
        if frame + CALL_STACK_OVERHEAD <= usable:
            return
        need = (frame + CALL_STACK_OVERHEAD + guard + 4095) & ~4095
        guarded = f", {guard:,} of them its overflow guard" if guard else ""
        raise LayoutError(
            f"kernel '{kernel}' of '{module.name}' has a stack frame of {frame:,} bytes (gcc -fstack-usage), more "
            f"than fits in the device stack ({stack:,} bytes{guarded}; a call needs its frame and "
            f"{CALL_STACK_OVERHEAD} bytes more): every call would overflow it. Enlarge "
            f"cfg['mem_layout']['stack']['size'] to at least {need:,}, or move the kernel's large local arrays "
            "into a parameter or the workspace (TVMBackendAllocWorkspace)", region="stack",
            what=f"stack frame of {kernel}", owner=module.name, needed=frame + CALL_STACK_OVERHEAD,
            capacity=usable, used=CALL_STACK_OVERHEAD, free=usable, largest_free=usable, required_size=need)

    #: Transfers at least this big (bytes) show a progress bar (tqdm; only on a terminal or in a
    #: notebook), per link: a second or more at its measured speed.
    PROGRESS_BYTES = {"openocd": 48 * 1024, "gdb": 16 * 1024 * 1024}

    def _progress(self, nbytes: int, what: str):
        """A tqdm bar for a transfer of ``nbytes``, or None when it is quick."""
        if nbytes < self.PROGRESS_BYTES.get(self.cfg.transport_kind, 1 << 62):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=nbytes, unit="B", unit_scale=True, desc=what, leave=False, disable=None)

    def write_bulk(self, addr: int, data: Any, what: str = "write") -> None:
        """Write ``data`` to device memory, in pieces with a progress bar when it takes a while;
        with :attr:`verify`, checked (:meth:`_verify`). A link or device that died raises
        ConnectionLost after the session restarted it (:meth:`_link`)."""
        view = memoryview(data).cast("B")
        with self._link(what):
            self._bulk(addr, view, what, lambda a, v: self.transport.write(a, v))
            self._check_alive()
            if self.verify and view.nbytes:
                self._verify(addr, view, what)

    def read_bulk(self, addr: int, out: Any, what: str = "read") -> None:
        """Fill ``out`` from device memory, with a progress bar when it takes a while."""
        with self._link(what):
            self._bulk(addr, memoryview(out).cast("B"), what, lambda a, v: self.transport.readinto(a, v))
            self._check_alive()

    def _write_checked(self, addr: int, data: Any, what: str) -> None:
        """A small write (arguments, the task table), read back with :attr:`verify`."""
        self.transport.write(addr, data)
        if self.verify:
            view = memoryview(data).cast("B")
            if view.nbytes:
                self._verify(addr, view, what, crc=False)

    #: Writes at least this long are verified with a CRC-32 the device computes (one call) instead
    #: of a read-back, on links where reading back costs more than a call (measured: see
    #: benchmarks/bench_verify.py).
    VERIFY_CRC_BYTES = {"openocd": 1024, "serial": 8192}

    def _verify(self, addr: int, view: memoryview, what: str, crc: bool = True) -> None:
        """Check that device memory at ``addr`` holds ``view``; TransportError naming the first
        differing byte otherwise. Long writes outside the runtime on slow links compare a CRC-32
        the runtime computes (``UTVMCrcShim``), the rest is read back."""
        import zlib
        n = view.nbytes
        if crc and self._opened and n >= self.VERIFY_CRC_BYTES.get(self.cfg.transport_kind, 1 << 62) \
                and "UTVMCrcShim" in self._sym and not self.runtime.contains(addr):
            blob = struct.pack(self._ptr_fmt, addr) + bytes(8 - self.cfg.pointer_size) + struct.pack(
                self._order + "Q", n)
            _, _, ret, _ = self._run_task(_CrcKernel(self), blob, self.timeout, doing=what)
            got = struct.unpack_from(self._order + "I", ret)[0]
            if got == zlib.crc32(view) & 0xFFFFFFFF:
                return
            log.warning("verify: CRC-32 of %d bytes at 0x%x differs; reading them back to find where", n, addr)
        theirs = np.empty(n, np.uint8)
        self.transport.readinto(addr, theirs)
        mine = np.frombuffer(view, np.uint8)
        if not np.array_equal(mine, theirs):
            i = int(np.flatnonzero(mine != theirs)[0])
            raise TransportError(f"verifying {what}: {n:,} bytes written at 0x{addr:x} do not read back: byte "
                                 f"0x{addr + i:x} (offset {i}) holds 0x{theirs[i]:02x} instead of 0x{mine[i]:02x}; the "
                                 "link or the device's memory corrupts data (check the connection, or the memory map: "
                                 "is that address writable RAM?)")

    def _dead_process(self, wait: float = 0.0) -> Optional[str]:
        """Which process of the device died (its name, pid and how), or None. ``wait``: seconds
        to keep looking (a killed program's sockets close a moment before it can be reaped, so a
        lost link is often seen first)."""
        deadline = time.monotonic() + wait
        while True:
            for proc in self._processes:
                popen = getattr(proc, "proc", None)
                if popen is None or launch.exit_status(popen) is None:
                    continue
                code = popen.returncode
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
                return f"{getattr(proc, 'name', type(proc).__name__)} (pid {popen.pid}) {how}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _check_alive(self) -> None:
        """ConnectionLost when a process of the device died. After bulk transfers: OpenOCD
        answers a gdb-port write to a dead Spike with OK (measured), so a transfer's success alone
        proves nothing there."""
        dead = self._dead_process()
        if dead is not None:
            raise ConnectionLost(dead)

    @contextlib.contextmanager
    def _link(self, doing: str):
        """Run transfers on the device: when the link or a device process died, the session
        restarts the device (:meth:`_recover`) and raises ConnectionLost saying what died, while
        ``doing`` what, and that tensor contents were lost; never a raw OSError. Errors already
        recovered from (by an inner :meth:`_link` or :meth:`_execute`) pass through."""
        try:
            yield
        except (TransportError, OSError) as exc:
            if getattr(exc, "recovered", False) or self._recovering:
                raise
            dead = self._dead_process(0.3 if isinstance(exc, (ConnectionLost, OSError)) and self._processes else 0)
            if dead is None and not isinstance(exc, (ConnectionLost, OSError)) and self.transport is not None \
                    and getattr(self.transport, "alive", True):
                raise   # e.g. a refused address: the link is fine
            cause = f"the device's {dead}" if dead else str(exc)
            recovered = self._recover(f"the device went away while {doing}")
            err = ConnectionLost(f"{cause} while {doing}; {recovered}")
            err.recovered = True
            raise err from None

    def _bulk(self, addr: int, view: memoryview, what: str, move) -> None:
        bar = self._progress(view.nbytes, what)
        if bar is None:
            move(addr, view)
            return
        step = max(16 * 1024, (view.nbytes // 40) & ~0xFFF)
        with bar:
            for off in range(0, view.nbytes, step):
                move(addr + off, view[off:off + step])
                bar.update(min(step, view.nbytes - off))

    def _write_image(self, image: LinkedImage) -> None:
        for addr, data in image.segments:
            self.write_bulk(addr, data, f"load {image.owner}")
        for addr, size in image.zero_fill:
            self.transport.fill(addr, size, 0)

    def _recover(self, why: str) -> str:
        """Bring the device back to a known state and rewrite the runtime and every module;
        returns a sentence for the error message. Tensors survive unless the device had to be
        started anew (a simulator that exited loses its memory: the sentence says so)."""
        relaunched = memory_lost = False
        self._recovering = True
        try:
            try:
                dead = self._dead_process()
                if dead is not None:   # nothing to talk to: start it again
                    raise ConnectionLost(dead)
                # True: the device had restarted on its own (a reset board behind a serial link)
                memory_lost = self.transport.restart() is True
            except (TransportError, OSError):
                if not self._processes:
                    raise
                self._relaunch()
                relaunched = True
            if relaunched or memory_lost:
                self._epoch += 1   # every tensor written before now lost its contents
                self._lost_why = why
            self._num_tasks = -1
            self._last_task = None
            self._last_batch = None
            self._profile_state = None
            self._timing_state = (-1, -1)   # the runtime's timing switch may be left on: write it again
            self._write_runtime(image=not relaunched or not self._preloaded)
            for mod in self.modules:
                self._write_image(mod.image)
        except Exception as exc:
            self._broken = f"{why}, and restarting the device failed: {exc}"
            return f"restarting the device failed ({exc}): call sess.reset()"
        finally:
            self._recovering = False
        n = len(self.modules)
        what = f"its {_plural(n, 'library')}" if n else "the runtime"
        if relaunched:
            return (f"the device could not be reached, so it was started again and {what} reloaded "
                    "(tensor contents were lost with its memory)")
        if memory_lost:
            return f"the device had restarted, so {what} reloaded (tensor contents were lost with its memory)"
        verb = getattr(self.transport, "RESTART_VERB", "restarted")
        return f"the device was {verb} and {what} reloaded"

    def _relaunch(self) -> None:
        """Stop what is left of the device's processes and start them again."""
        try:
            self.transport.close()
        except Exception:
            pass
        for proc in reversed(self._processes):
            proc.stop()
        self._processes = []
        self.transport, self._preloaded = self._start_device()
        if self.trace:
            self.transport = TracingTransport(self.transport)
        self.console.attach(self._console_file())

    def reset(self) -> None:
        """Restart the device and reload the runtime and every loaded library. Tensors are kept
        unless the device's processes had died (then their memory is gone)."""
        if not self._opened:
            raise UtvmError("the session is closed; open a new one with `with Session(cfg) as sess:`")
        self._broken = None
        message = self._recover("reset requested")
        if self._broken:
            raise DeviceError(f"sess.reset() could not restart the device: {self._broken}")
        log.info("reset: %s", message)

    # -- debugging ---------------------------------------------------------------------------

    def debugger(self, gdb: Optional[str] = None):
        """Attach gdb-multiarch (through pygdbmi) to this session's device, with the symbols of
        the runtime and every loaded library: see :mod:`utvm_host.debug`."""
        self._require_open()
        if self._debugger is not None and self._debugger.attached:
            return self._debugger
        from .debug import Debugger   # the debug layer sits above the session
        self._debugger = Debugger(self, gdb)
        return self._debugger

    def _debug_endpoint(self) -> Endpoint:
        """Where gdb-multiarch attaches: QEMU's gdb socket, a relay (a Unix socket in the session
        folder) to the gdb port of the OpenOCD in the session's private network, or a TCP port."""
        kind = self.cfg.transport_kind
        if kind == "gdb" and self._gdb_server is not None:
            return self._gdb_server[0]
        if kind == "openocd" and self._ocd_gdb is not None:
            if self._network is not None:
                return self._network.relay(self.workdir / "openocd-gdb.sock", self._ocd_gdb.port)
            return self._ocd_gdb
        raise ConfigError(f"device '{self.cfg.name}' has no gdb port this session knows: debugging needs a session "
                          "that started OpenOCD or QEMU itself, or a devices.gdb_remote(...) device")

    @property
    def gdb_target(self) -> str:
        """What gdb's ``target remote`` takes to reach this session's device (a Unix socket in
        the session folder, or host:port); ConfigError if it has no gdb server."""
        return self._debug_endpoint().gdb_target()

    def _hand_over_transport(self) -> Optional[Transport]:
        """Give the gdb port to a debugger; returns the link the session keeps for memory
        (OpenOCD's Tcl port), or None when gdb must carry everything (QEMU)."""
        tr = self.transport.inner if isinstance(self.transport, TracingTransport) else self.transport
        if isinstance(tr, OpenOcdTransport):
            tr.release_gdb_port()
            self._bulk_port, tr.gdb_endpoint = tr.gdb_endpoint, None   # Tcl only while gdb holds the port
            tr.clear_breakpoints()
            return tr
        tr.close()
        return None

    def _take_debug_transport(self, transport: Transport) -> None:
        self.transport = TracingTransport(transport) if self.trace else transport

    def _debugger_gone(self, inner: Optional[Transport]) -> None:
        """Take the device back from a debugger (or a debugger that failed to attach)."""
        self._debugger = None
        if inner is not None:
            inner.gdb_endpoint = getattr(self, "_bulk_port", None)
            if inner.state() != "halted":   # OpenOCD resumes the core when gdb detaches
                inner.halt()
            tr: Transport = inner
        else:
            endpoint, regs, kind = self._gdb_server
            tr = gdb.GdbTransport(endpoint, None, regs, little_endian=self.cfg.little_endian, bp_kind=kind)
        self.transport = TracingTransport(tr) if self.trace else tr

    # -- libraries ---------------------------------------------------------------------------

    def _externs(self) -> Tuple[Dict[str, int], Dict[str, "Module"]]:
        symbols = dict(self.runtime.symbols)
        providers: Dict[str, Module] = {}
        for mod in self.modules:
            for name, addr in mod.exports.items():
                if name not in symbols:
                    symbols[name] = addr
                    providers[name] = mod
        return symbols, providers

    def load(self, lib: Union[Library, str, os.PathLike]) -> "Module":
        """Place ``lib`` in device memory, link it there and write it to the device.

        ``lib`` is a :class:`Library` from :func:`build` or the path of a relocatable object
        (``.o``) for this device. Raises :class:`LayoutError` when it does not fit and
        :class:`LinkError` for undefined symbols or a library built for another device.
        """
        self._require_open()
        lib = self._as_library(lib)
        for block in self._planned.pop(lib.path, []):   # its reservation becomes the real thing
            self.layout.free(block)
        count = self._owners.get(lib.name, 0) + 1
        self._owners[lib.name] = count
        owner = lib.name if count == 1 else f"{lib.name}#{count}"
        externs, providers = self._externs()
        needed = set(lib.elf().undefined_symbols())
        image = self.linker.place(lib, owner, externs)
        self._write_image(image)
        deps = {providers[n] for n in needed if n in providers}
        mod = Module(self, lib, image, deps)
        self.modules.append(mod)
        self._write_stack_guard()   # as deep as the largest frame now loaded
        if self._debugger is not None:
            self._debugger._module_loaded(mod)
        self._publish()
        log.info("loaded %s: %s", owner, ", ".join(f"{b.what} {b.size:,} B at 0x{b.start:x}" for b in image.blocks))
        return mod

    def _as_library(self, lib: Union[Library, str, os.PathLike]) -> Library:
        if isinstance(lib, (str, os.PathLike)):
            if not str(lib).endswith(".o"):
                raise TypeError(f"load() takes a Library from build() or an object file (.o), got {str(lib)!r}")
            return library_from_object(lib, self.cfg)
        if not isinstance(lib, Library):
            raise TypeError(f"load() takes a Library from build() or an object file (.o), got {type(lib).__name__}")
        return lib

    def fits(self, lib: Union[Library, str, os.PathLike]) -> bool:
        """Whether ``lib`` would fit in the free memory now (nothing is allocated or sent)."""
        self._require_open()
        try:
            self.linker.reserve(self._as_library(lib), "fits?", self._externs()[0], layout=self.layout.copy())
        except LayoutError:
            return False
        return True

    def plan(self, libs: Sequence[Union[Library, str, os.PathLike]] = (),
             tensors: Sequence[Tuple[Any, Any]] = ()) -> MemoryMap:
        """Reserve room for ``libs`` and tensors ``(shape, dtype)`` before anything is sent: all
        fit together, or :class:`LayoutError` says what does not (and nothing is reserved).
        Later ``load(lib)`` and ``empty``/``tensor`` of those sizes use the reservations.
        Returns the memory map with the reservations."""
        self._require_open()
        libs = [self._as_library(lib) for lib in libs]
        trial = self.layout.copy()
        externs = self._externs()[0]
        for lib in libs:   # all in a copy first: an error leaves the real layout untouched
            self.linker.reserve(lib, f"planned {lib.name}", externs, layout=trial)
        sizes = []
        for shape, dtype in tensors:
            shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
            dt = np.dtype(dtype)
            sizes.append((max(math.prod(shape) * dt.itemsize, 1), f"tensor {dt.name}{list(shape)}"))
            trial.place("heap", sizes[-1][0], owner="", what=sizes[-1][1], align=max(dt.alignment, 16))
        for lib in libs:
            self._planned.setdefault(lib.path, []).extend(
                self.linker.reserve(lib, f"planned {lib.name}", externs))
        for size, what in sizes:
            self._planned_tensors.append(self.layout.place("heap", size, owner="planned", what=what, align=16))
        return self.memory_map()

    def _unload(self, mod: "Module") -> None:
        users = [m.name for m in self.modules if mod in m.deps and m is not mod]
        if users:
            raise UtvmError(f"cannot unload '{mod.name}': {', '.join(repr(u) for u in users)} "
                            f"call{'s' if len(users) == 1 else ''} into it; unload "
                            f"{'it' if len(users) == 1 else 'them'} first")
        if self._debugger is not None:
            self._debugger._module_unloaded(mod)
        for block in mod.image.blocks:
            self.layout.free(block)
        self.modules.remove(mod)
        mod.image.discard()   # its linked ELF too: the session folder must not grow per load
        self._write_stack_guard()
        self._publish()

    # -- tensors -----------------------------------------------------------------------------

    def _alloc_heap(self, nbytes: int, align: int, what: str) -> Block:
        for i, planned in enumerate(self._planned_tensors):   # a tensor plan() reserved room for
            if planned.what == what:
                self.layout.free(self._planned_tensors.pop(i))
                break
        return self.layout.place("heap", max(nbytes, 1), owner="", what=what, align=max(align, 16),
                                         hint="or free tensors you no longer need")

    def empty(self, shape: Union[int, Sequence[int]], dtype: Any = "float32") -> "Tensor":
        """A device-resident tensor with unspecified contents."""
        self._require_open()
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        block = self._alloc_heap(nbytes, dt.alignment, f"tensor {dt.name}{list(shape)}")
        return Tensor(self, block, shape, dt)

    def zeros(self, shape: Union[int, Sequence[int]], dtype: Any = "float32") -> "Tensor":
        """A device-resident tensor filled with zeros."""
        t = self.empty(shape, dtype)
        with self._link(f"zeroing {t!r}"):
            self.transport.fill(t.addr, t.nbytes, 0)
        return t

    def tensor(self, array: Any, dtype: Any = None) -> "Tensor":
        """A device-resident copy of ``array`` (anything ``np.asarray`` accepts)."""
        arr = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        t = self.empty(arr.shape, arr.dtype)
        if arr.nbytes:
            self.write_bulk(t.addr, arr, f"tensor {arr.dtype.name}{list(arr.shape)}")
        return t

    def region_for(self, kind: str):
        """The allocator that holds ``kind`` ('heap', 'text', ...) first: with the automatic
        layout a device memory region, with a hand layout the section of that name."""
        return self.layout.regions_for(kind)[0]

    @property
    def stack_block(self) -> Block:
        """Where the device stack is (lowest address first: an overflow runs below it)."""
        return self._stack_block

    def memory_map(self) -> MemoryMap:
        """Who uses which bytes of device memory, region by region."""
        if self.layout is None:
            raise UtvmError("the session is not open")
        mm = self.layout.memory_map()
        if self._opened and not self._broken:
            stack = self._stack_block.size
            deepest = [(n, f, m.name) for m in self.modules for f, n in m.library.stack_usage.items()]
            if deepest:
                size, fn, owner = max(deepest)
                mm.notes.append(f"stack: {stack:,} bytes reserved; the largest kernel frame is {size:,} bytes "
                                f"({fn} in {owner}; gcc -fstack-usage, calls add up)")
            try:
                peak = self.workspace_peak
                mm.notes.append(f"workspace: {self._workspace_block.size:,} bytes reserved; the last call used "
                                f"{peak:,} at most")
            except UtvmError:
                pass
        return mm

    @property
    def max_repeat(self) -> int:
        """How many measurements one time_evaluator run keeps on the device (cfg["runtime"]["repeats"])."""
        self._require_open()
        return self._max_repeat

    @property
    def max_tasks(self) -> int:
        """How many calls one round trip carries (run_batch splits longer lists; cfg["runtime"]["tasks"])."""
        self._require_open()
        return self._max_tasks

    @property
    def workspace_peak(self) -> int:
        """Bytes of the workspace region (TVMBackendAllocWorkspace) the last call used at most."""
        self._require_open()
        raw = self.transport.read(self._sym["utvm_workspace_peak"], self.cfg.pointer_size)
        return struct.unpack(self._ptr_fmt, raw)[0]

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<Session {self.cfg.name} {state}, {_plural(len(self.modules), 'module')}>"

    def _repr_html_(self) -> str:
        """A notebook summary: the device, how it is reached, the libraries and the memory."""
        state = "open" if self._opened else "closed"
        rows = [("device", f"{self.cfg.name} ({self.cfg['arch']}, {self.cfg.abi['name']})"),
                ("transport", self.cfg.transport_kind + (f", gdb port {self.gdb_port}" if self.gdb_port else "")),
                ("state", state + (f": {self._broken}" if self._broken else "")),
                ("counter", f"{self.cfg['counter']['name']}"),
                ("libraries", ", ".join(f"{m.name} ({m.image.size:,} B: {', '.join(m.kernels())})"
                                        for m in self.modules) or "none")]
        if self._debugger is not None:
            rows.append(("debugger", "attached"))
        table = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                        f"{html.escape(v)}</td></tr>" for k, v in rows)
        memory = self.layout.memory_map()._repr_html_() if self.layout is not None else ""
        return f"<div><b>utvm-host session</b><table>{table}</table>{memory}</div>"

    # -- calls -------------------------------------------------------------------------------

    def _symbolize(self, pc: Optional[int]) -> str:
        if pc is None:
            return "an unknown address"
        for image in [self.runtime] + [m.image for m in self.modules]:
            if image is not None and image.contains(pc):
                loc = image.symbolize(pc)
                if loc is not None:
                    return str(loc)
        return f"0x{pc:x} (outside any loaded code)"

    def _task_record(self, shim: int, nargs: int, base: Optional[int] = None) -> Tuple[bytes, int, int]:
        """The task-table entry calling ``shim`` with ``nargs`` slots at ``base`` (default: the
        args region): (bytes, args address, ret address)."""
        base = self._args_block.start if base is None else base
        ret_addr = base + abi.SLOT_SIZE * nargs
        task = bytearray(self._task_stride)
        pack_ptr = struct.Struct(self._ptr_fmt).pack_into
        pack_ptr(task, self._task_off["func"], shim)
        pack_ptr(task, self._task_off["args"], base)
        pack_ptr(task, self._task_off["ret"], ret_addr)
        return bytes(task), base, ret_addr

    def _run_task(self, fn: "Function", args_blob: bytes, timeout: Optional[float],
                  timing: Optional[Tuple[int, int]] = None,
                  doing: Optional[str] = None) -> Tuple[int, int, bytes, Tuple[int, ...]]:
        """Run one shim call; returns (status, error flag, return slot, counts). With ``timing``
        = (number, repeat) the runtime runs it number x repeat times and ``counts`` holds the
        counter difference of each repeat. ``doing`` words what the call is for in errors
        (default: calling the kernel)."""
        if len(args_blob) + abi.SLOT_SIZE > self._args_block.size:
            raise TypeError(f"{fn.name}() has too many arguments for the args region "
                            f"({len(args_blob) + abi.SLOT_SIZE:,} > {self._args_block.size:,} bytes): "
                            "enlarge cfg['mem_layout']['args']")
        with self._link(doing or f"calling kernel '{fn.name}'"):
            return self._run_task_linked(fn, args_blob, timeout, timing)

    def _run_task_linked(self, fn: "Function", args_blob: bytes, timeout: Optional[float],
                         timing: Optional[Tuple[int, int]]) -> Tuple[int, int, bytes, Tuple[int, ...]]:
        tr = self.transport
        self._set_switches(tuple(timing) if timing is not None else (0, 0), False)   # written when changed
        task, base, ret_addr = fn._task
        if args_blob:
            self._write_checked(base, args_blob, f"the arguments of '{fn.name}'")
        tasks = self._sym["utvm_tasks"]
        if task is not self._last_task:
            self._write_checked(tasks, task, "the task table")
            self._last_task = task
            self._last_batch = None
        stop = self._execute(timeout, 3 if timing is not None else fn._result_regs, "a call",
                             before=self._start_run(1))
        if stop.kind != "done":
            self._raise_stop(fn, stop, timeout)
        if stop.result is not None:  # the runtime's summary came back in registers
            summary, lo, hi = stop.result
            if summary == self._trapped:
                self._raise_trap(fn)
            self._check_completion(summary, 1, f"kernel '{fn.name}'")
            mask = 0xFFFFFFFF
            error = (summary >> 16) & 1
            if timing is not None and timing[1] == 1 and not error:   # the count came in lo/hi
                return 0, 0, bytes(abi.SLOT_SIZE), ((hi & mask) << 32 | (lo & mask),)
            return 0, error, struct.pack(self._order + "II", lo & mask, hi & mask), self._read_counts(timing)
        self._check_completion(self._read_summary(), 1, f"kernel '{fn.name}'")
        done = tr.read(tasks, self._task_stride)
        status, error = self._status.unpack_from(done, self._task_off["status"])
        return status, error, tr.read(ret_addr, abi.SLOT_SIZE), self._read_counts(timing)

    def _start_run(self, n: int) -> List[Tuple[int, bytes]]:
        """The next run of ``n`` tasks: its id (the runtime adds one to the id in its run record
        at every start and echoes it with the task count in its completion summary) and the
        writes to make with the start (``Transport.run(before=...)``): the run record, only when
        the task count changed or the runtime's state is unknown (after a restart, an
        interrupted run), so a repeated call costs no write. Not read back even with verify:
        the summary echoes it."""
        self._run_id = (self._run_id + 1) & 0xFFFFFFFF
        if self._num_tasks == n:
            return []
        self._num_tasks = n
        return [(self._sym["utvm_run"], struct.pack(self._order + "II", n, (self._run_id - 1) & 0xFFFFFFFF))]

    def _read_summary(self) -> int:
        """The runtime's completion summary from memory (transports that report no registers)."""
        return struct.unpack(self._ptr_fmt, self.transport.read(self._sym["utvm_summary"], self.cfg.pointer_size))[0]

    def _check_completion(self, summary: int, n: int, what: str) -> None:
        """The runtime's summary must echo this run: its run id and the ``n`` tasks the host asked
        for, and (unless a kernel reported an error) all of them done. Otherwise the runtime's
        state was corrupted (a kernel wrote over it): the device is reset and DeviceError says so."""
        done, error, seen, run = summary & 0xFFFF, (summary >> 16) & 1, (summary >> 17) & 0x7F, (summary >> 24) & 0xFF
        want = self._run_id & 0xFF
        if run == want and seen == n and (done == n or (error and 1 <= done <= n)):
            return
        recovered = self._recover(f"the runtime's state was corrupted during {what}")
        raise DeviceError(f"{what} did not run as asked: the runtime reports run {run} with {done} of {seen} tasks "
                          f"done, but this was run {want} of {n} task{'s' if n != 1 else ''}: the runtime's state in "
                          f"device memory was corrupted (a kernel writing outside its buffers?), so its result "
                          f"cannot be trusted; {recovered}")

    def _execute(self, timeout: Optional[float], results: int, what: str,
                 before: Sequence[Tuple[int, bytes]] = ()) -> StopInfo:
        """Run the runtime's entry on the device stack until UTVMDone, after the ``before``
        writes. Called inside :meth:`_link`, which names and recovers a device that went away;
        an interrupted run (``what`` words it) is recovered from here before the error goes on."""
        tr, stack = self.transport, self._stack_block
        try:
            return tr.run(self._entry, stack_base=stack.start, stack_size=stack.size, stop_at=self._sym["UTVMDone"],
                          timeout=timeout, results=results, before=before)
        except ConnectionLost:
            self._num_tasks = -1
            raise   # the caller's _link says what died and starts the device again
        except BaseException:
            self._num_tasks = -1   # whether the run started (and counted its id) is unknown: write the record again
            if not tr.alive:
                self._recover(f"{what} was interrupted")
            raise

    def _read_counts(self, timing: Optional[Tuple[int, int]]) -> Tuple[int, ...]:
        if timing is None:
            return ()
        raw = self.transport.read(self._sym["utvm_counts"], 8 * timing[1])
        return struct.unpack(f"{self._order}{timing[1]}Q", raw)

    def _set_switches(self, timing: Tuple[int, int], profile: bool) -> None:
        """Write the runtime's timing and profiling switches when they change."""
        if timing != self._timing_state:
            self.transport.write(self._sym["utvm_timing"], struct.pack(self._order + "II", *timing))
            self._timing_state = timing
        if profile != self._profile_state:
            self.transport.write(self._sym["utvm_profile"], struct.pack(self._order + "I", int(profile)))
            self._profile_state = profile

    def run_batch(self, calls: Sequence["BoundCall"], *, timeout: Optional[float] = None,
                  profile: bool = False) -> Optional[List[int]]:
        """Run bound calls (:meth:`Function.bind`) in order, as few round trips as the runtime's
        task table allows (64 calls each): nothing but the start and the stop crosses the link
        when the same batch runs again. With ``profile`` returns each call's device counter
        difference (``cfg["counter"]`` units). A kernel error stops the batch and raises
        naming the call; a fault or timeout raises as for a single call."""
        self._require_open()
        counts: List[int] = []
        whole = 0
        with self._call_lock, self.console.capture():
            for first in range(0, len(calls), self._max_tasks):
                chunk = calls[first:first + self._max_tasks]
                counts += self._run_chunk(chunk, self.timeout if timeout is None else timeout, profile)
                whole += self.last_batch_count or 0
        if not profile:
            return None
        self.last_batch_count = whole
        return counts

    def _run_chunk(self, chunk: Sequence["BoundCall"], timeout: float, profile: bool) -> List[int]:
        for call in chunk:
            call._check()
        with self._link(f"running a batch of {len(chunk)} calls"):
            return self._run_chunk_linked(chunk, timeout, profile)

    def _run_chunk_linked(self, chunk: Sequence["BoundCall"], timeout: float, profile: bool) -> List[int]:
        tr = self.transport
        self._set_switches((0, 0), profile)
        key = tuple(id(c) for c in chunk)
        if key != self._last_batch:
            self._write_checked(self._sym["utvm_tasks"], b"".join(c._task[0] for c in chunk), "the task table")
            self._last_batch = key
            self._last_task = None
        n = len(chunk)
        first = chunk[0].function
        stop = self._execute(timeout, 3, "a batch", before=self._start_run(n))

        def current() -> "BoundCall":   # the call the device was in when it stopped
            try:
                done = struct.unpack(self._order + "I", tr.read(self._sym["utvm_tasks_done"], 4))[0]
            except UtvmError:
                return chunk[0]
            return chunk[min(done, n - 1)]

        if stop.kind != "done":
            self._raise_stop(current().function, stop, timeout)
        summary = stop.result[0] if stop.result is not None else None
        if summary is None:   # the transport did not report registers: read the runtime's record
            summary = self._read_summary()
        if summary == self._trapped:
            self._raise_trap(current().function)
        self._check_completion(summary, n, f"a batch of {n} calls starting with '{first.name}'")
        done, error = summary & 0xFFFF, (summary >> 16) & 1
        if error:
            call = chunk[max(done - 1, 0)]
            ret = call.function._ret
            value = None if ret is None else ret.unpack_from(tr.read(call._task[2], abi.SLOT_SIZE))[0]
            raise self._kernel_error(call.function.name, value, tvm=isinstance(call.function, PackedFunction),
                                     what=call.label)
        if done != n:
            raise DeviceError(f"a batch of {n} calls starting with '{first.name}' did not complete: the runtime "
                              f"reports {done} done; call sess.reset()")
        for call in chunk:   # the batch's tensors were written by its kernels
            for value in call._args:
                if type(value) is Tensor:
                    value._written()
        if not profile:
            return []
        self.last_batch_count = struct.unpack(self._order + "Q", tr.read(self._sym["utvm_batch_count"], 8))[0]
        return list(struct.unpack(f"{self._order}{n}Q", tr.read(self._sym["utvm_task_counts"], 8 * n)))

    def _failed_by_runtime(self) -> bool:
        """Whether the runtime itself failed the last task (``utvm_error_set`` 2: it found a
        workspace block header written over), which fails the call even if the kernel, not
        noticing, returned 0. Read only then: a kernel that reported an error and returned 0
        has handled it."""
        raw = self.transport.read(self._sym["utvm_error_set"], 4)
        return struct.unpack(self._order + "I", raw)[0] == 2

    def _bad_header(self) -> str:
        """The workspace header the runtime's corruption error names (``utvm_ws_bad``), as
        2 * pointer size hex digits."""
        ptr = self.cfg.pointer_size
        addr = struct.unpack(self._ptr_fmt, self.transport.read(self._sym["utvm_ws_bad"], ptr))[0]
        return f"{addr:0{2 * ptr}x}"

    def _kernel_error(self, kernel: str, value: Optional[int], tvm: bool = False,
                      what: Optional[str] = None) -> KernelError:
        """The error a kernel reported (its text and TVM kind, read from the runtime), as the
        exception to raise: a KernelError that is also e.g. a ValueError when TVM named one.
        ``what`` names the call in the message (default ``kernel 'NAME'``)."""
        sym, sizes = self._sym, self._error_sizes
        text = self.transport.read(sym["utvm_last_error"], sizes["utvm_last_error"])
        kind = self.transport.read(sym["utvm_last_error_kind"], sizes["utvm_last_error_kind"])
        text, kind = (b.split(b"\0", 1)[0].decode("utf-8", "replace") for b in (text, kind))
        text = runtime_error_text(text, self._bad_header)
        returned = "" if value is None else f" (returned {value})"
        what = what or f"kernel '{kernel}'"
        if tvm and text:   # TVM's own message names the function and the argument
            message = text if what == f"kernel '{kernel}'" else f"{what}: {text}"
        elif text:
            message = f"{what} failed{returned}: {f'{kind}: ' if kind else ''}{text}"
        else:
            message = f"{what} failed{returned} without reporting an error message"
        return kernel_error_class(kind)(message, kernel=kernel, status=0 if value is None else int(value),
                                        text=text, kind=kind)

    def _loop_overhead(self, number: int, timeout: Optional[float]) -> float:
        """Counter units per iteration that the timing loop itself costs (an empty kernel timed
        the same way; the smallest of a few repeats). Cached per ``number``."""
        if number not in self._overheads:
            empty = _EmptyKernel(self)
            _, _, _, counts = self._run_task(empty, b"", timeout, timing=(number, 5))
            self._overheads[number] = min(counts) / number
        return self._overheads[number]

    def _keep_unsent_console(self) -> None:
        """A call that faulted or timed out never reached the runtime's console flush (the host
        device's process died; a debugger stopped the core at UTVMDone's entry after a trap), so
        its last partial line is still in the runtime's line buffer: move it to ``sess.console``
        (and so into the error) before recovery rewrites the runtime. Device memory outlives the
        host device's process; a device that cannot be read any more keeps its text. A device
        behind the serial stub needs none of this: UTVMDone flushes after a trap there (no
        breakpoint stops it first), and a hung one cannot answer a read."""
        sym = self._sym
        if "utvm_console_line" not in self._sym_sizes or "utvm_console_len" not in sym \
                or self.cfg.transport_kind == "serial":
            return
        try:
            length = struct.unpack(self._order + "I", self.transport.read(sym["utvm_console_len"], 4))[0]
            if length == 0:
                return
            # a kernel that wrote wild may have corrupted the length: never read past the buffer
            text = self.transport.read(sym["utvm_console_line"], min(length, self._sym_sizes["utvm_console_line"]))
            self.transport.write(sym["utvm_console_len"], bytes(4))   # read once, never sent again
        except (UtvmError, OSError) as exc:
            log.debug("the console's unsent line could not be read: %s", exc)
            return
        self.console.add_unsent(text.decode("utf-8", "replace"))

    def _raise_trap(self, fn: "Function") -> None:
        """The device's trap handler ran during the call: decode its record into DeviceFault."""
        self._num_tasks = -1   # the run ended early: its record is written again before the next one
        self._keep_unsent_console()
        record = {}
        fmt = struct.Struct(self._ptr_fmt)
        if self._fault_layout is not None:
            raw = self.transport.read(self._sym["utvm_fault"], max(o + s for o, s in self._fault_layout.values()))
            record = {k: fmt.unpack_from(raw, o)[0] for k, (o, s) in self._fault_layout.items()}
        if self.cfg.abi["elf_machine"] == "EM_ARM":
            cfsr, hfsr = record.get("cfsr", 0), record.get("hfsr", 0)
            cause = abi.cortex_m_cause(cfsr, hfsr)
            pc = record.get("pc") or None   # 0: the frame could not be stacked (stack overflow)
            where = self._symbolize(pc) if pc else "an unknown pc (the exception frame could not be stacked)"
            address = record.get("bfar") if cfsr & abi.CFSR_BFARVALID else \
                record.get("mmfar") if cfsr & abi.CFSR_MMARVALID else None
            at = f" accessing address 0x{address:x}" if address is not None else ""
            recovered = self._recover(f"kernel '{fn.name}' faulted")
            raise DeviceFault(f"kernel '{fn.name}' crashed: {cause}{at} at {where}, CFSR=0x{cfsr:08x} "
                              f"HFSR=0x{hfsr:08x}; {recovered}", cause=cause, pc=pc, location=where,
                              fault_address=address)
        mcause, mepc, mtval = record.get("mcause", 0), record.get("mepc"), record.get("mtval", 0)
        xlen = 8 * self.cfg.pointer_size
        cause = abi.riscv_cause(mcause, xlen)
        code = mcause & ((1 << (xlen - 1)) - 1)
        where = self._symbolize(mepc)
        address = mtval if code in abi.RISCV_ADDRESS_CAUSES else None
        recovered = self._recover(f"kernel '{fn.name}' trapped")
        raise DeviceFault(f"kernel '{fn.name}' crashed: {cause} at {where}, mtval=0x{mtval:x}; {recovered}",
                          cause=cause, pc=mepc, location=where, fault_address=address)

    def _raise_stop(self, fn: "Function", stop: StopInfo, timeout: Optional[float]) -> None:
        self._num_tasks = -1   # the run did not end at UTVMDone: its record is written again next time
        where = self._symbolize(stop.pc)
        if stop.kind == "breakpoint":   # a debugger's breakpoint stopped a plain call: no recovery
            raise DeviceError(f"kernel '{fn.name}' stopped at {where} ({stop.detail}); the core stays there "
                              "(dbg.cont() or dbg.detach() goes on). Start calls that may stop at a breakpoint "
                              "with fn.start(...) and finish them with .result()")
        if stop.kind in ("fault", "timeout"):
            self._keep_unsent_console()
        if stop.kind == "fault" and not stop.signo:
            recovered = self._recover(f"kernel '{fn.name}' stopped unexpectedly")
            raise DeviceFault(f"kernel '{fn.name}' stopped at {where}: {stop.detail}; {recovered}",
                              cause=stop.detail, pc=stop.pc, location=where)
        if stop.kind == "fault":
            sig = signal.Signals(stop.signo)
            detail = _SIGNAL_CODES.get(sig, {}).get(stop.code)
            cause = f"{sig.name} ({detail or signal.strsignal(sig)})"
            at = ""
            if sig in (signal.SIGSEGV, signal.SIGBUS) and stop.fault_address is not None:
                at = f" accessing address 0x{stop.fault_address:x}"
            recovered = self._recover(f"kernel '{fn.name}' crashed")
            raise DeviceFault(f"kernel '{fn.name}' crashed: {cause}{at} at {where}; {recovered}",
                              cause=cause, pc=stop.pc, location=where, fault_address=stop.fault_address)
        if stop.kind == "timeout":
            recovered = self._recover(f"kernel '{fn.name}' timed out")
            at = f"; it was at {where} when stopped" if stop.pc is not None else ""
            raise DeviceTimeout(f"kernel '{fn.name}' did not finish within {timeout:g} s{at}; {recovered}",
                                timeout=timeout or 0.0, pc=stop.pc, location=where if stop.pc is not None else None)
        recovered = self._recover(f"the device was lost during '{fn.name}'")
        raise DeviceError(f"kernel '{fn.name}' did not complete: {stop.detail}; {recovered}")


def _stage(session: Session, arrays: Sequence[Tuple[int, np.ndarray]], what: str
           ) -> Tuple[Optional[Block], Dict[int, int]]:
    """Copy the numpy arrays a call passes to one heap block (16-byte aligned each); returns the
    block (None without arrays: the caller frees it) and each array's device address by key."""
    if not arrays:
        return None, {}
    offsets: Dict[int, int] = {}
    total = 0
    for key, arr in arrays:
        total = (total + 15) & ~15
        offsets[key] = total
        total += arr.nbytes
    scratch = session._alloc_heap(total, 16, f"arguments of {what}()")
    try:
        for key, arr in arrays:
            if arr.nbytes:
                session.write_bulk(scratch.start + offsets[key], arr, f"copying the arguments of {what}()")
    except BaseException:
        session.layout.free(scratch)
        raise
    return scratch, {key: scratch.start + off for key, off in offsets.items()}


class Tensor:
    """An array resident in device memory (the session's ``heap`` region).

    Pass it to kernels in place of a numpy array: no copy crosses the link. ``numpy()`` reads
    it back; ``free()`` returns its memory (also done when it is garbage-collected).
    """

    def __init__(self, session: Session, block: Block, shape: Tuple[int, ...], dtype: np.dtype,
                 parent: Optional["Tensor"] = None):
        self.session = session
        self.block = block
        self.shape = shape
        self.dtype = dtype
        self.size = math.prod(shape)
        self.nbytes = self.size * dtype.itemsize
        self._parent = parent   # a view keeps its parent (which owns the memory) alive
        #: The session's device generation when the contents were last written (see lost).
        self._epoch = session._epoch
        self._finalizer = weakref.finalize(self, _free_block, weakref.ref(session), block) if parent is None \
            else weakref.finalize(self, lambda: None)

    def view(self, offset: int, shape: Union[int, Sequence[int]], dtype: Any) -> "Tensor":
        """A tensor over ``nbytes`` of this one's memory from byte ``offset`` (no copy): e.g. one
        parameter of a packed block. It is freed with its parent."""
        self._check()
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        if offset < 0 or offset + nbytes > self.nbytes or offset % dt.alignment:
            raise ValueError(f"a {dt.name}{list(shape)} view at byte {offset} does not fit in {self!r} "
                             f"({self.nbytes:,} bytes) or is misaligned")
        block = Block(self.block.region, self.block.start + offset, nbytes, self.block.owner,
                      f"view of {self.block.what}")
        return Tensor(self.session, block, shape, dt, parent=self)

    @property
    def addr(self) -> int:
        return self.block.start

    @property
    def freed(self) -> bool:
        return not self._finalizer.alive or (self._parent is not None and self._parent.freed)

    def _check(self) -> None:
        if self.freed:
            raise UtvmError(f"{self!r} was freed")
        self.session._require_open()

    @property
    def lost(self) -> bool:
        """True when the device was started anew (its memory lost) since the contents were last
        written: :meth:`numpy` then raises instead of returning the new device's bytes."""
        root = self._parent if self._parent is not None else self
        while root._parent is not None:
            root = root._parent
        return max(root._epoch, self._epoch) != self.session._epoch

    def _written(self) -> None:
        """The contents are valid again (written by the host or by a kernel); for a view, only
        the view's own bytes."""
        self._epoch = self.session._epoch

    def numpy(self) -> np.ndarray:
        """A new numpy array with the tensor's current contents. DeviceError when they were lost
        in a restart of the device (write the tensor again first: :meth:`copyfrom`)."""
        self._check()
        if self.lost:
            raise DeviceError(f"{self!r} lost its contents when the device was started again ({self.session._lost_why});"
                              " its memory now holds whatever the new device has there: write it again "
                              "(t.copyfrom(array)) before reading it")
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            self.session.read_bulk(self.addr, out, f"read {self.dtype.name}{list(self.shape)}")
        return out

    def fill_bytes(self, value: int) -> "Tensor":
        """Set every byte of the tensor to ``value`` on the device itself: one call, no data
        crosses the link (0xFF makes float tensors NaN: handy to catch outputs never written)."""
        self._check()
        session = self.session
        blob = struct.pack(session._order + "QiiI", 0, int(value) & 0xFF, 0, self.nbytes)
        blob = struct.pack(session._ptr_fmt, self.addr) + bytes(8 - session.cfg.pointer_size) + blob[8:]
        session._run_task(_FillKernel(session), blob[:24], session.timeout)
        self._written()
        return self

    def copyfrom(self, array: Any) -> "Tensor":
        """Overwrite the tensor with ``array`` (same shape and dtype)."""
        self._check()
        arr = np.ascontiguousarray(array)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise TypeError(f"copyfrom() needs a {self.dtype.name} array of shape {self.shape}, got "
                            f"{arr.dtype.name} {arr.shape}")
        self.session.write_bulk(self.addr, arr, f"write {self.dtype.name}{list(self.shape)}")
        self._written()
        return self

    def free(self) -> None:
        """Return the tensor's device memory. Using the tensor afterwards raises."""
        self._finalizer()

    def __repr__(self) -> str:
        state = " freed" if self.freed else ""
        return f"<Tensor {self.dtype.name}{list(self.shape)} at 0x{self.block.start:x}{state}>"


def _remove_folder(path: str, owner_pid: int) -> None:
    """A session's folder goes when the session does, in the process that opened it only (a
    forked child runs its inherited finalizers at exit: it must not delete its parent's folder)."""
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def _free_block(session_ref: "weakref.ref[Session]", block: Block) -> None:
    session = session_ref()
    if session is not None and session.layout is not None and session.is_open:
        try:
            session.layout.free(block)
        except ValueError:
            pass


class Module:
    """A library loaded on the device. ``mod["name"]`` gives a callable :class:`Function`."""

    def __init__(self, session: Session, library: Library, image: LinkedImage, deps: set):
        self.session = session
        self.library = library
        self.image = image
        self.deps = deps
        self.name = image.owner
        # What other libraries may link against: the library's own globals, not the helpers
        # the linker pulled into it from libgcc or the C library (each library keeps its own).
        own = library.elf().defined_symbols()
        self.exports = {n: a for n, a in image.symbols.items() if n in own}
        self._loaded = True
        self._functions: Dict[str, Function] = {}
        self.signatures = library.signatures()
        #: TVM FFI functions by TVM's name ("vadd" -> "__tvm_ffi_vadd"): called with DLTensors.
        self.tvm_functions = library.tvm_functions()

    @property
    def loaded(self) -> bool:
        return self._loaded

    def __contains__(self, name: str) -> bool:
        return name in self.signatures or name in self.tvm_functions

    def kernels(self) -> List[str]:
        """Names of the functions this module exports (sorted). TVM functions appear under
        TVM's name; the ``main`` alias TVM's C code generator adds is callable but not listed."""
        plain = [n for n in self.signatures if not n.startswith(TVM_FFI_PREFIX)]
        tvm = [n for n in self.tvm_functions if n != "main" or len(self.tvm_functions) == 1]
        return sorted(plain + tvm)

    def __getitem__(self, name: str) -> "Function":
        if not self._loaded:
            raise UtvmError(f"module '{self.name}' was unloaded; load its library again")
        fn = self._functions.get(name)
        if fn is not None:
            return fn
        sig = self.signatures.get(name)
        if sig is None and name in self.tvm_functions:
            symbol = self.tvm_functions[name]
            shim = self.image.symbols.get(SHIM_PREFIX + symbol)
            if shim is None:
                raise LinkError(f"TVM function '{name}' of '{self.name}' has no call shim; load the object "
                                "with load() or build_tvm() again")
            self.session._check_frame(self, name, symbol)
            fn = self._functions[name] = PackedFunction(self, self.signatures[symbol], shim, name)
            return fn
        if sig is None:
            raise KeyError(f"no kernel {name!r} in library '{self.name}'; it has: {', '.join(self.kernels()) or 'none'}")
        reason = abi.unsupported_reason(sig)
        if reason is not None:
            raise TypeError(f"kernel '{name}' cannot be called from Python: {reason}")
        shim = self.image.symbols.get(SHIM_PREFIX + name)
        if shim is None:
            raise LinkError(f"kernel '{name}' of '{self.name}' has no call shim; rebuild the library with build()")
        self.session._check_frame(self, name, name)
        fn = self._functions[name] = Function(self, sig, shim)
        return fn

    def time_evaluator(self, name: str, number: int = 10, repeat: int = 1, min_repeat_ms: float = 0):
        """Time kernel ``name`` on the device, TVM style: ``mod.time_evaluator("k", number=100,
        repeat=3)(*args)`` returns a :class:`~utvm_host.timing.TimingResult` (seconds)."""
        return self[name].time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)

    def unload(self) -> None:
        """Free the module's sections for the next library. Its Functions stop working."""
        if self._loaded:
            self.session._unload(self)
            self._loaded = False

    def _repr_html_(self) -> str:
        rows = []
        for name in self.kernels():
            fn = self[name] if self._loaded else None
            rows.append(f"<tr><td><code>{html.escape(repr(fn) if fn is not None else name)}</code></td></tr>")
        blocks = ", ".join(f"{b.what} {b.size:,} B at 0x{b.start:x}" for b in self.image.blocks)
        state = "" if self._loaded else " (unloaded)"
        return (f"<div><b>module {html.escape(self.name)}</b>{state}: {html.escape(blocks)}"
                f"<table>{''.join(rows)}</table></div>")

    def __repr__(self) -> str:
        size = sum(b.size for b in self.image.blocks)
        state = "" if self._loaded else " unloaded"
        return f"<Module {self.name} ({size:,} bytes, kernels: {', '.join(self.kernels())}){state}>"


class _EmptyKernel:
    """The runtime's UTVMEmptyShim, called like a kernel to measure the timing loop itself."""

    name = "(empty kernel)"
    _result_regs = 1
    shim_symbol = "UTVMEmptyShim"
    nargs = 0

    def __init__(self, session: Session):
        self._task = session._task_record(session._sym[self.shim_symbol], self.nargs)


class _CrcKernel(_EmptyKernel):
    """The runtime's UTVMCrcShim: CRC-32 of device memory (Session(verify=True))."""

    name = "(device CRC-32)"
    shim_symbol = "UTVMCrcShim"
    nargs = 2
    _result_regs = 2


class _FillKernel(_EmptyKernel):
    """The runtime's UTVMFillShim: memset on the device."""

    name = "(device fill)"
    shim_symbol = "UTVMFillShim"
    nargs = 3


class _Param:
    """How one parameter is checked and encoded (precomputed per kernel)."""

    def __init__(self, index: int, param, pointer_size: int, order: str):
        self.index = index
        self.name = param.name or f"arg{index}"
        self.ctype: CType = param.type
        self.pointer = self.ctype.kind == "pointer"
        self.fmt = struct.Struct(order + abi.struct_format(self.ctype, pointer_size))
        if self.pointer:
            self.dtype = abi.numpy_dtype(self.ctype.pointee)
            self.const = self.ctype.pointee.const
        else:
            self.kind = self.ctype.kind
            if self.kind == "bool":   # one byte, but C's _Bool holds 0 or 1 only
                self.lo, self.hi = 0, 1
            elif self.kind in ("int", "enum"):
                self.lo, self.hi = abi.int_range(self.ctype)
            elif self.kind == "float":   # finite values beyond these raise (inf and nan pass)
                self.hi = _FLOAT_MAX.get(self.ctype.size or 0, sys.float_info.max)
                self.lo = -self.hi


#: The largest finite value of a float parameter, by size in bytes.
_FLOAT_MAX = {2: 65504.0, 4: float(np.finfo(np.float32).max), 8: sys.float_info.max}


def _short(value: int) -> str:
    """An integer for an error message: in full, or as ``1.000e+400`` once it is too long."""
    text = str(abs(value))
    if len(text) <= 24:
        return str(value)
    return f"{'-' if value < 0 else ''}{text[0]}.{text[1:4]}e+{len(text) - 1}"


class Function:
    """A kernel of a loaded module; call it with numpy arrays, device tensors and scalars."""

    def __init__(self, module: Module, sig: Signature, shim: int):
        self.module = module
        self.signature = sig
        self.name = sig.name
        self.shim = shim
        session = module.session
        ptr = session.cfg.pointer_size
        order = "<" if session.cfg.little_endian else ">"
        self._params = [_Param(i, p, ptr, order) for i, p in enumerate(sig.params)]
        self._length_params = [p for p in self._params if not p.pointer and p.name in LENGTH_NAMES]
        ret = sig.return_type
        self._ret = None if ret.kind == "void" else struct.Struct(order + abi.struct_format(ret, ptr))
        self._ret_kind = ret.kind
        self._task = session._task_record(shim, len(self._params))
        # Registers the stop must report: the summary, then one 32-bit word per 4 return bytes.
        self._result_regs = 1 + (0 if self._ret is None else (self._ret.size + 3) // 4)

    def __repr__(self) -> str:
        params = ", ".join(f"{p.type.spelling} {p.name}".replace("* ", "*") for p in self.signature.params)
        return f"<Function {self.signature.return_type.spelling} {self.name}({params})>"

    def _where(self, p: _Param) -> str:
        return f"argument {p.index + 1} '{p.name}' of {self.name}() ({p.ctype.spelling})"

    def __call__(self, *args: Any, timeout: Optional[float] = None) -> Any:
        """Call the kernel. (Details: :meth:`_call`.)"""
        session = self.module.session
        console = session.console
        start = console._total
        with session._call_lock:
            try:
                value = self._call(args, timeout)[0]
            except UtvmError as exc:   # what the device printed during the call goes with the error
                console.attach_to(exc, start)
                raise
        console.poll()
        return value

    def start(self, *args: Any, timeout: Optional[float] = None) -> "CallHandle":
        """Start the call in the background and return at once; ``.result()`` waits for it.
        With a debugger attached, its breakpoints stop the call (see :mod:`utvm_host.debug`).
        Use the debugger, not the session, until the call completes."""
        return CallHandle(self, args, timeout)

    def time_evaluator(self, number: int = 10, repeat: int = 1, min_repeat_ms: float = 0):
        """A callable that times this kernel on the device: see :mod:`utvm_host.timing`."""
        from .timing import TimeEvaluator
        return TimeEvaluator(self, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)

    def _call(self, args: Sequence[Any], timeout: Optional[float] = None,
              timing: Optional[Tuple[int, int]] = None) -> Tuple[Any, Tuple[int, ...]]:
        """Call the kernel. ``const T*`` arrays are copied in, ``T*`` arrays in and out, tensors
        are used in place, scalars go by value; returns the kernel's return value (or None).

        Raises :class:`TypeError` (before touching the device) for a wrong number of arguments,
        a wrong dtype, a non-contiguous or read-only array, or an out-of-range scalar;
        :class:`KernelError` when the kernel reports an error; :class:`DeviceFault` /
        :class:`DeviceTimeout` when it crashes or hangs (the session recovers).
        """
        if not self.module.loaded:
            raise UtvmError(f"module '{self.module.name}' was unloaded; load its library again")
        session = self.module.session
        session._require_open()
        params = self._params
        if len(args) != len(params):
            names = ", ".join(p.name for p in params)
            raise TypeError(f"{self.name}() takes {_plural(len(params), 'argument')} ({names}), got {len(args)}")
        blob = bytearray(abi.SLOT_SIZE * len(params))
        arrays: List[Tuple[_Param, np.ndarray]] = []
        slots: List[Tuple[_Param, Any]] = []
        for p, value in zip(params, args):
            if p.pointer:
                if type(value) is Tensor:
                    if value.session is not session:
                        raise TypeError(f"{self._where(p)} is a tensor of another session")
                    if value.freed:
                        raise TypeError(f"{self._where(p)} is a freed tensor")
                    if p.const and value.lost:
                        raise DeviceError(f"{self._where(p)} is {value!r}, which lost its contents when the device "
                                          f"was started again ({session._lost_why}): write it again "
                                          "(t.copyfrom(array)) before passing it")
                    self._check_dtype(p, value.dtype)
                    slots.append((p, value))
                elif isinstance(value, np.ndarray):
                    self._check_array(p, value)
                    arrays.append((p, value))
                    slots.append((p, value))
                elif value is None:
                    slots.append((p, None))
                else:
                    raise TypeError(f"{self._where(p)} must be a numpy array or a device tensor, "
                                    f"got {type(value).__name__}")
            else:
                slots.append((p, self._scalar(p, value)))
        self._check_lengths(slots)
        scratch: Optional[Block] = None
        try:
            scratch, addrs = _stage(session, [(p.index, arr) for p, arr in arrays], self.name)
            for p, value in slots:
                if not p.pointer:
                    p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, value)
                elif type(value) is Tensor:
                    p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, value.block.start)
                elif value is None:
                    p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, 0)
                else:
                    p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index, addrs[p.index])
            status, error, ret, counts = session._run_task(self, bytes(blob),
                                                           session.timeout if timeout is None else timeout, timing)
            for p, value in slots:   # what the kernel may have written holds valid contents again
                if type(value) is Tensor and not p.const:
                    value._written()
            for p, arr in arrays:
                if not p.const and arr.nbytes:
                    session.read_bulk(addrs[p.index], arr, f"reading the results of {self.name}()")
        finally:
            if scratch is not None:
                session.layout.free(scratch)
        value = None if self._ret is None else self._ret.unpack_from(ret)[0]
        if error and (value is None or value != 0 or session._failed_by_runtime()):
            raise session._kernel_error(self.name, value)
        if self._ret_kind == "bool" and value is not None:
            return bool(value), counts
        return value, counts

    def bind(self, *args: Any, label: Optional[str] = None) -> "BoundCall":
        """This call with these arguments, prepared on the device for :meth:`Session.run_batch`:
        pointer arguments must be device tensors (nothing is copied when the batch runs),
        scalars are fixed. The argument block lives in the heap until ``free()``."""
        session = self.module.session
        session._require_open()
        params = self._params
        if len(args) != len(params):
            raise TypeError(f"{self.name}() takes {_plural(len(params), 'argument')}, got {len(args)}")
        slots: List[Tuple[_Param, Any]] = []
        for p, value in zip(params, args):
            if p.pointer:
                if type(value) is Tensor:
                    if value.session is not session or value.freed:
                        raise TypeError(f"{self._where(p)} is a tensor of another session or freed")
                    self._check_dtype(p, value.dtype)
                elif value is not None:
                    raise TypeError(f"{self._where(p)} must be a device tensor in a bound call (a numpy array "
                                    "would be copied at every run): pass sess.tensor(array)")
                slots.append((p, value))
            else:
                slots.append((p, self._scalar(p, value)))
        self._check_lengths(slots)
        blob = bytearray(abi.SLOT_SIZE * (len(params) + 1))   # the arguments, then the return slot
        for p, value in slots:
            p.fmt.pack_into(blob, abi.SLOT_SIZE * p.index,
                            value.addr if type(value) is Tensor else 0 if value is None else value)
        return BoundCall(self, args, lambda base: bytes(blob), len(params), label)

    def _check_dtype(self, p: _Param, dtype: np.dtype) -> None:
        if p.dtype is not None and dtype != p.dtype:
            raise TypeError(f"{self._where(p)} needs a {p.dtype.name} array, got {dtype.name}")

    def _check_array(self, p: _Param, arr: np.ndarray) -> None:
        self._check_dtype(p, arr.dtype)
        if not arr.flags.c_contiguous:
            raise TypeError(f"{self._where(p)} must be C-contiguous; pass np.ascontiguousarray(...) instead")
        if not p.const and not arr.flags.writeable:
            raise TypeError(f"{self._where(p)} may be written by the kernel, but the array is read-only")

    def _scalar(self, p: _Param, value: Any) -> Any:
        """``value`` checked and converted for scalar parameter ``p``: an int in ``[p.lo, p.hi]``
        (``_Bool``: 0 or 1, True or False), or for a float parameter a float the C type can
        hold (finite values up to its largest, inf and nan). Anything else is a TypeError
        naming the kernel, the parameter and, for a number out of range, the allowed range."""
        kind = type(value)
        if kind is int and p.kind != "float" and p.lo <= value <= p.hi:
            return value                                          # the common cases, fast
        if kind is float and p.kind == "float" and p.lo <= value <= p.hi:
            return value
        if isinstance(value, (np.ndarray, Tensor)):
            raise TypeError(f"{self._where(p)} takes a scalar, got {type(value).__name__}")
        if p.kind == "float":
            if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self._where(p)} takes a number, got {type(value).__name__}")
            try:
                number = float(value)
                if math.isfinite(number) and not p.lo <= number <= p.hi:
                    p.fmt.pack(number)   # a hair above the largest value may still round to it
            except OverflowError:   # an int beyond any float (10**400), or beyond this C type (1e39)
                raise TypeError(f"{self._where(p)} = {_short(value)} is out of range "
                                f"[{p.lo!r}, {p.hi!r}]") from None
            return number
        if isinstance(value, (bool, np.bool_)) and p.kind != "bool":
            raise TypeError(f"{self._where(p)} takes an integer, got bool")
        if not isinstance(value, (numbers.Integral, np.bool_)):
            raise TypeError(f"{self._where(p)} takes an integer, got {type(value).__name__} {value!r}")
        value = int(value)
        if not p.lo <= value <= p.hi:
            raise TypeError(f"{self._where(p)} = {_short(value)} is out of range [{p.lo}, {p.hi}]")
        return value

    def _check_lengths(self, slots: List[Tuple[_Param, Any]]) -> None:
        for lp in self._length_params:
            n = slots[lp.index][1]
            for p, value in slots:
                if p.pointer and p.dtype is not None and value is not None:
                    size = value.size
                    if size < n:
                        raise TypeError(f"{self._where(p)} has {size} elements but {lp.name} = {n}")


class PackedFunction(Function):
    """A function on TVM's FFI ABI (``int32_t __tvm_ffi_NAME(self, TVMFFIAny *args, int32_t
    num_args, TVMFFIAny *result)``), called like TVM calls it: numpy arrays and device tensors
    become ``DLTensor``s (kDLCPU, compact, no strides), Python ints, floats, bools and None
    become ``TVMFFIAny`` values. The generated code checks every argument itself: a wrong shape
    or dtype raises TVM's own message as a :class:`KernelError` that is also the Python
    exception TVM names (``ValueError``, ``TypeError``).

    TVM does not say which arguments are outputs, so every writeable numpy array is copied
    back after the call; pass inputs as read-only arrays (``a.setflags(write=False)``) or as
    device tensors to save the copies.
    """

    def __init__(self, module: Module, sig: Signature, shim: int, name: str):
        super().__init__(module, sig, shim)
        self.name = name
        self.symbol = sig.name
        session = module.session
        model = abi.DataModel.of(session.cfg)
        anys = model.layout(abi.TVMFFIANY)
        self._any_size = anys.size
        self._any = {kind: anys.packer(["type_index", member]) for kind, member in
                     (("ptr", "v.v_ptr"), ("int", "v.v_int64"), ("float", "v.v_float64"))}
        self._any["none"] = anys.packer(["type_index"])
        tensor = model.layout(abi.DLTENSOR)
        self._tensor_size = tensor.size
        self._tensor = tensor.packer(["data", "device.device_type", "device.device_id", "ndim", "dtype.code",
                                      "dtype.bits", "dtype.lanes", "shape", "strides", "byte_offset"])
        self._ptr = struct.Struct(session._ptr_fmt)

    def __repr__(self) -> str:
        return f"<PackedFunction {self.name} (TVM FFI: {self.symbol})>"

    def _where_arg(self, i: int) -> str:
        return f"argument #{i} of {self.name}()"

    def _call(self, args: Sequence[Any], timeout: Optional[float] = None,
              timing: Optional[Tuple[int, int]] = None) -> Tuple[Any, Tuple[int, ...]]:
        if not self.module.loaded:
            raise UtvmError(f"module '{self.module.name}' was unloaded; load its library again")
        session = self.module.session
        session._require_open()
        arrays: List[Tuple[int, np.ndarray]] = []
        for i, value in enumerate(args):
            if type(value) is Tensor or isinstance(value, np.ndarray):
                if type(value) is Tensor:
                    if value.session is not session:
                        raise TypeError(f"{self._where_arg(i)} is a tensor of another session")
                    if value.freed:
                        raise TypeError(f"{self._where_arg(i)} is a freed tensor")
                elif not value.flags.c_contiguous:
                    raise TypeError(f"{self._where_arg(i)} must be C-contiguous; pass np.ascontiguousarray(...)")
                else:
                    arrays.append((i, value))
                if abi.dl_dtype(value.dtype) is None:
                    raise TypeError(f"{self._where_arg(i)} has dtype {value.dtype.name}, which DLPack cannot "
                                    "describe; TVM kernels take int, uint, float and bool arrays")
            elif not (value is None or isinstance(value, (numbers.Real, np.bool_))):
                raise TypeError(f"{self._where_arg(i)} must be a numpy array, a device tensor, a number, a bool "
                                f"or None, got {type(value).__name__}")
        scratch: Optional[Block] = None
        try:
            scratch, addrs = _stage(session, arrays, self.name)
            blob = self._encode(session, args, addrs, session._args_block.start)
            if len(blob) > session._args_block.size:
                raise TypeError(f"{self.name}() has too many arguments for the args region ({len(blob):,} > "
                                f"{session._args_block.size:,} bytes): enlarge cfg['mem_layout']['args']")
            _, error, ret, counts = session._run_task(self, blob, session.timeout if timeout is None else timeout,
                                                      timing)
            for value in args:   # TVM does not say which are outputs: any may hold new contents
                if type(value) is Tensor:
                    value._written()
            for i, arr in arrays:
                if arr.flags.writeable and arr.nbytes:
                    session.read_bulk(addrs[i], arr, f"reading the results of {self.name}()")
        finally:
            if scratch is not None:
                session.layout.free(scratch)
        code = self._ret.unpack_from(ret)[0]   # when timing, the slot holds the count instead
        if error or (timing is None and code != 0):
            raise session._kernel_error(self.name, code if timing is None else -1, tvm=True)
        return None, counts

    def bind(self, *args: Any, label: Optional[str] = None) -> "BoundCall":
        """As :meth:`Function.bind`: array arguments must be device tensors."""
        session = self.module.session
        session._require_open()
        for i, value in enumerate(args):
            if isinstance(value, np.ndarray) or (type(value) is Tensor and (value.session is not session
                                                                            or value.freed)):
                raise TypeError(f"{self._where_arg(i)} must be a device tensor of this session in a bound call")
            if not (value is None or type(value) is Tensor or isinstance(value, (numbers.Real, np.bool_))):
                raise TypeError(f"{self._where_arg(i)} must be a device tensor, a number, a bool or None")
        return BoundCall(self, args, lambda base: self._encode(session, args, {}, base), 4, label)

    def _encode(self, session: Session, args: Sequence[Any], addrs: Dict[int, int], base: int) -> bytes:
        """The argument block at ``base``: the shim's four slots (self, args, num_args, result) and
        its return slot, then the result TVMFFIAny, the TVMFFIAny array, the DLTensors and their
        shapes. ``addrs`` gives the device address of each numpy array argument by position."""
        n = len(args)
        slots = abi.SLOT_SIZE * 5
        result = slots
        anys = result + self._any_size
        tensors = anys + n * self._any_size
        ntensors = sum(1 for v in args if type(v) is Tensor or isinstance(v, np.ndarray))
        shapes = tensors + ntensors * self._tensor_size
        ndims = sum(len(v.shape) for v in args if type(v) is Tensor or isinstance(v, np.ndarray))
        blob = bytearray(shapes + 8 * ndims)
        ptr, order = self._ptr, session._order
        ptr.pack_into(blob, 0, 0)                                        # self: no module context
        ptr.pack_into(blob, abi.SLOT_SIZE, base + anys)
        struct.pack_into(order + "i", blob, 2 * abi.SLOT_SIZE, n)
        ptr.pack_into(blob, 3 * abi.SLOT_SIZE, base + result)
        self._any["none"].pack_into(blob, result, abi.FFI_NONE)
        t = 0
        for i, value in enumerate(args):
            at = anys + i * self._any_size
            if type(value) is Tensor or isinstance(value, np.ndarray):
                data = value.addr if type(value) is Tensor else addrs[i]
                code, bits, lanes = abi.dl_dtype(value.dtype)
                where = tensors + t * self._tensor_size
                self._tensor.pack_into(blob, where, data, abi.DL_CPU, 0, len(value.shape), code, bits, lanes,
                                       base + shapes, 0, 0)
                struct.pack_into(f"{order}{len(value.shape)}q", blob, shapes, *value.shape)
                shapes += 8 * len(value.shape)
                self._any["ptr"].pack_into(blob, at, abi.FFI_DLTENSOR_PTR, base + where)
                t += 1
            elif value is None:
                self._any["none"].pack_into(blob, at, abi.FFI_NONE)
            elif isinstance(value, (bool, np.bool_)):
                self._any["int"].pack_into(blob, at, abi.FFI_BOOL, int(value))
            elif isinstance(value, numbers.Integral):
                if not -(1 << 63) <= int(value) < 1 << 63:
                    raise TypeError(f"{self._where_arg(i)} = {value} does not fit in int64")
                self._any["int"].pack_into(blob, at, abi.FFI_INT, int(value))
            else:
                self._any["float"].pack_into(blob, at, abi.FFI_FLOAT, float(value))
        return bytes(blob)


class BoundCall:
    """A kernel call prepared on the device (:meth:`Function.bind`): its argument block sits in
    the heap, so :meth:`Session.run_batch` only writes the task table. ``label`` names it in
    errors (a graph node's name). Keeps its tensors alive; ``free()`` returns the block."""

    def __init__(self, function: Function, args: Sequence[Any], encode, nargs: int, label: Optional[str]):
        session = function.module.session
        self.function = function
        self.label = label or function.name
        self._args = tuple(args)   # the tensors must outlive the call
        size = len(encode(0))
        self.block = session._alloc_heap(size, 16, f"arguments of {self.label}")
        self._finalizer = weakref.finalize(self, _free_block, weakref.ref(session), self.block)
        session.transport.write(self.block.start, encode(self.block.start))
        self._task = session._task_record(function.shim, nargs, self.block.start)

    def _check(self) -> None:
        if not self._finalizer.alive:
            raise UtvmError(f"the bound call {self.label} was freed")
        if not self.function.module.loaded:
            raise UtvmError(f"the bound call {self.label} uses module '{self.function.module.name}', which was unloaded")
        for value in self._args:
            if type(value) is Tensor and value.freed:
                raise UtvmError(f"the bound call {self.label} uses {value!r}, which was freed")

    def free(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"<BoundCall {self.label}: {self.function.name} at 0x{self.block.start:x}>"


class CallHandle:
    """A call started with :meth:`Function.start`, running in a background thread."""

    def __init__(self, function: Function, args: Sequence[Any], timeout: Optional[float]):
        self.function = function
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        session = function.module.session

        def work() -> None:
            call_context.started = True
            try:
                with session._call_lock, session.console.capture():
                    self._value = function._call(args, timeout)[0]
            except BaseException as exc:   # handed to result()
                self._error = exc
            finally:
                self._done.set()

        self._thread = threading.Thread(target=work, name=f"utvm-call-{function.name}", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: Optional[float] = None) -> Any:
        """The kernel's return value once the call completes (raising what the call raised);
        :class:`~utvm_host.errors.DeviceTimeout` if it has not completed within ``timeout``."""
        if not self._done.wait(timeout):
            raise DeviceTimeout(f"kernel '{self.function.name}' has not completed within {timeout:g} s (it may be "
                                "stopped in the debugger: dbg.cont())", timeout=timeout or 0.0)
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        return f"<CallHandle {self.function.name} {'done' if self.done() else 'running'}>"
