"""Sessions: the device runtime, loaded modules, device tensors, calls, error decoding, recovery.

A call's trip: numpy arrays are copied to temporary blocks of the ``heap`` region (device
tensors are passed in place), each argument is encoded in its 8-byte slot of the ``args``
region (per :mod:`utvm_host.abi`), a task naming the kernel's generated shim goes into the
runtime's task table, the transport runs ``UTVMMain`` until ``UTVMDone``, and the results come
back: the return slot, the task's status and error flag, and every array passed as ``T*``."""
from __future__ import annotations

import html
import logging
import numbers
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import arch, registry
from ..config import DeviceConfig
from ..console import Console
from ..errors import ConfigError, DeviceError, UtvmError
from ..layout import Block, MemoryLayout, MemoryMap
from ..link import LinkedImage, Linker
from ..toolchain import Library
from ..endpoint import UnixEndpoint

log = logging.getLogger(__name__)

from .device import DeviceLink, DeviceMixin
from .executor import ExecutorMixin
from .loader import LoaderMixin
from .module import Module
from .tensor import Tensor
from .text import _plural
from .transfer import TransferMixin

_current: List["Session"] = []


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



#: The debug layer's Debugger (it sits above the session, which never imports it): registered by
#: :mod:`utvm_host.debug` when it is imported (:func:`register_debugger`).
_debugger_class: Optional[Callable[..., Any]] = None


def register_debugger(cls: Callable[..., Any]) -> None:
    """Make ``Session.debugger()`` attach with ``cls(session, gdb)`` (the debug layer calls this)."""
    global _debugger_class
    _debugger_class = cls


class Session(DeviceMixin, TransferMixin, LoaderMixin, ExecutorMixin):
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
        self.link: Optional[DeviceLink] = None   # the transport and the device's processes, once open
        #: What kernels print (printf): ``sess.console.read()``; echoed in notebooks unless
        #: ``echo_console=False``.
        self.console = Console(echo=echo_console)
        self.layout: Optional[MemoryLayout] = None
        self.runtime: Optional[LinkedImage] = None
        #: Parts of the runtime placed on demand (``runtime (errors)``: the error API,
        #: ``runtime (workspace)``: the workspace allocator), each the first time a library
        #: loaded calls into it; they stay until the session closes.
        self.runtime_parts: List[LinkedImage] = []
        self._part_libs: Optional[List[Library]] = None
        self.modules: List[Module] = []
        self.workdir: Optional[Path] = None
        self._broken: Optional[str] = None
        self._owners: Dict[str, int] = {}
        self._timing_state: Tuple[int, int] = (-1, -1)   # unknown: written before the first call
        self._overheads: Dict[int, float] = {}
        self._planned: Dict[str, List[Block]] = {}
        self._planned_tensors: List[Block] = []
        self._registry_id: Optional[str] = None
        self._registry_path: Optional[Path] = None
        self._owner_pid = os.getpid()
        self._debugger = None
        self._call_lock = threading.RLock()   # one call at a time (start() runs calls in a thread)
        #: Device counter units the last profiled batch took as a whole (run_batch(profile=True)).
        self.last_batch_count: Optional[int] = None
        self._opened = False

    @property
    def _arch(self) -> arch.Arch:
        """The device's architecture family (utvm_host.arch)."""
        return arch.for_config(self.cfg)

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
            self.link = DeviceLink(self.cfg, self.workdir, self.trace)
            self._place_runtime()
            self.link.start(self.runtime.elf_path, self._sym["UTVMDone"])
            self.console.attach(self.link.console_file())
            self._write_runtime(image=not self.link.preloaded)
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
            family = arch.lookup(self.cfg.abi["elf_machine"])
            gdb_arch = family.gdb_arch(self.cfg) if family is not None else None
            try:
                target = self.debug_endpoint
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
                             "sections": {b.what: b.start for b in m.image.blocks}} for m in self.modules]
                + [{"name": image.owner, "elf": image.elf_path, "kernels": [],
                    "sections": {b.what: b.start for b in image.blocks}} for image in self.runtime_parts],
                "memory_map": str(self.layout.memory_map()) if self.layout is not None else "",
            }
            self._registry_path = registry.publish(record)
        except registry.RegistryError as exc:   # announcing is a convenience: never fail a session for it
            log.warning("this session is not announced to `utvm-host info/debug`: %s", exc)
        except OSError as exc:
            log.debug("cannot publish the session record: %s", exc)

    def close(self, keep_logs: bool = False) -> None:
        """Stop the device's processes and forget its state. Safe to call twice. The session's
        folder (links, logs) is removed unless ``keep_logs``.

        In a forked child (another pid than the one that opened the session) nothing is stopped
        or removed: the child only forgets the session, which stays the parent's."""
        if self.workdir is not None and os.getpid() != self._owner_pid:
            self._forget_inherited()
            return
        self.console.close()
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
        for image in self.runtime_parts:
            image.close()
        self.runtime_parts = []
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.link is not None:
            self.link.close()
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
        self.runtime_parts = []
        self.runtime = None
        if self.link is not None:
            self.link.forget()
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
        if _debugger_class is None:   # utvm_host/__init__ imports the debug layer, which registers it
            raise UtvmError("the debugger is not available: import utvm_host.debug first")
        self._debugger = _debugger_class(self, gdb)
        return self._debugger

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
        return self.transport.read_word(self._sym["utvm_workspace_peak"], 8 * self.cfg.pointer_size)

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



def _remove_folder(path: str, owner_pid: int) -> None:
    """A session's folder goes when the session does, in the process that opened it only (a
    forked child runs its inherited finalizers at exit: it must not delete its parent's folder)."""
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


