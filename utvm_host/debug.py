"""Interactive debugging of loaded kernels: gdb-multiarch over pygdbmi, attached to the session's
device (OpenOCD's gdb port for Spike and boards, QEMU's gdbstub), with the symbols of the runtime
and of every loaded library at their load addresses.

    dbg = sess.debugger()
    dbg.break_at("conv2d")
    call = mod["conv2d"].start(x, w, y)       # runs in the background; the breakpoint stops it
    frame = dbg.wait_stop(); frame.locals; dbg.step(); dbg.finish(); dbg.cont()
    call.result()                              # the call completes; the session goes on
    dbg.detach()

While the debugger is attached, gdb controls execution: the session's calls start the core
through gdb and wait for it to reach the runtime's done symbol (with no timeout: a person may be
stepping), and the session's memory accesses go through OpenOCD's Tcl port (Spike, boards) or
through gdb (QEMU, whose gdbstub takes one client). ``detach()`` lets a pending call finish,
removes the breakpoints and gives the link back to the session.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import arch
from .errors import DeviceError, ToolNotFoundError, UtvmError
from .session import call_context, register_debugger
from .transport.base import StopInfo, Transport, Writes

log = logging.getLogger(__name__)

GDB = "gdb-multiarch"


class DebuggerError(UtvmError):
    """gdb refused a command; the message is gdb's."""


def add_symbol_file_command(elf: str, sections: Dict[str, int]) -> Optional[str]:
    """``add-symbol-file ELF 0xTEXT -s .rodata 0x... ...`` for a library placed at ``sections``."""
    if ".text" not in sections:
        return None
    extra = "".join(f" -s {name} 0x{addr:x}" for name, addr in sections.items() if name != ".text")
    return f"add-symbol-file {elf} 0x{sections['.text']:x}{extra}"


def gdb_command_line(record: Dict[str, Any], gdb: str = GDB) -> List[str]:
    """The gdb-multiarch command (argv) that attaches to a running session, described by its
    registry record (:mod:`utvm_host.registry`), with every symbol file at its address."""
    endpoint = record.get("gdb")
    if not endpoint:
        raise UtvmError(f"session {record['id']} ({record['device']}) has no gdb port: the {record['device']} "
                        "device runs kernels in a host process")
    argv = [gdb, "-nx", "-q", "-ex", "set confirm off", "-ex", "set pagination off"]
    if endpoint.get("arch"):
        argv += ["-ex", f"set architecture {endpoint['arch']}"]
    if record.get("runtime"):
        argv += ["-ex", f"file {record['runtime']}"]
    for mod in record.get("modules", []):
        command = add_symbol_file_command(mod["elf"], mod["sections"])
        if command:
            argv += ["-ex", command]
    target = endpoint["socket"] if endpoint.get("socket") else f"{endpoint['host']}:{endpoint['port']}"
    return argv + ["-ex", f"target remote {target}"]


class MiClient:
    """gdb/MI through pygdbmi, with a reader thread: command results are matched to their
    tokens, ``*stopped`` records are kept in order. Commands take milliseconds (pygdbmi's own
    ``write`` waits 0.2 s for more output after every command)."""

    def __init__(self, argv: List[str]):
        from pygdbmi.gdbcontroller import GdbController
        self.ctl = GdbController(command=argv, time_to_check_for_additional_output_sec=0.001)
        self._cond = threading.Condition()
        self._command_lock = threading.Lock()
        self._results: Dict[int, dict] = {}
        self.stops: List[dict] = []          # every *stopped payload, in order
        self.running = False
        self.console: List[str] = []
        self._token = 0
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="utvm-gdb-mi", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._alive:
            try:
                responses = self.ctl.io_manager.get_gdb_response(timeout_sec=0.2, raise_error_on_timeout=False)
            except Exception as exc:   # gdb exited
                log.debug("gdb reader stops: %s", exc)
                with self._cond:
                    self._alive = False
                    self._cond.notify_all()
                return
            if not responses:
                continue
            with self._cond:
                for r in responses:
                    kind, message = r.get("type"), r.get("message")
                    if kind == "result" and r.get("token") is not None:
                        self._results[r["token"]] = r
                    elif kind == "notify" and message == "stopped":
                        self.stops.append(r.get("payload") or {})
                        self.running = False
                    elif kind == "notify" and message == "running":
                        self.running = True
                    elif kind in ("console", "log") and r.get("payload"):
                        self.console.append(r["payload"])
                        log.debug("gdb: %s", r["payload"].rstrip())
                self._cond.notify_all()

    def command(self, cmd: str, timeout: float = 30.0) -> dict:
        """Run one MI command; returns its result payload or raises :class:`DebuggerError`."""
        with self._command_lock:
            with self._cond:
                self._token += 1
                token = self._token
            log.debug("gdb <- %d%s", token, cmd)
            self.ctl.write(f"{token}{cmd}", read_response=False)
            deadline = time.monotonic() + timeout
            with self._cond:
                while token not in self._results:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._alive:
                        raise DebuggerError(f"gdb did not answer {cmd!r} within {timeout:g} s"
                                            if self._alive else f"gdb exited while running {cmd!r}")
                    self._cond.wait(left)
                record = self._results.pop(token)
        if record.get("message") == "error":
            raise DebuggerError(f"gdb: {(record.get('payload') or {}).get('msg', record)} (command: {cmd})")
        return record.get("payload") or {}

    def console_command(self, text: str, timeout: float = 30.0) -> str:
        """A gdb CLI command; returns what it printed."""
        with self._cond:
            start = len(self.console)
        self.command('-interpreter-exec console "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"', timeout)
        with self._cond:
            return "".join(self.console[start:])

    def wait_stop(self, after: int, timeout: Optional[float]) -> Optional[dict]:
        """The first stop record with index >= ``after`` (None on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self.stops) <= after:
                if not self._alive:
                    raise DebuggerError("gdb exited while the target was running")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left if left is not None else 0.5)
            return self.stops[after]

    def close(self) -> None:
        self._alive = False
        try:
            self.ctl.exit()
        except Exception:
            pass


@dataclass
class Frame:
    """Where the core stopped: ``function``, ``file``, ``line``, ``pc``, ``reason`` (gdb's:
    "breakpoint-hit", "end-stepping-range", "function-finished", ...), ``breakpoint`` number,
    ``locals`` and ``args`` (name -> value as gdb prints it). ``finished`` is True when the stop
    is the end of the call (the runtime's done symbol)."""
    function: Optional[str]
    file: Optional[str]
    line: Optional[int]
    pc: int
    reason: str
    breakpoint: Optional[int] = None
    locals: Dict[str, str] = field(default_factory=dict)
    args: Dict[str, str] = field(default_factory=dict)
    finished: bool = False
    #: For a stop at the device's trap handler (:meth:`Debugger.break_on_fault`): ``cause``,
    #: ``address`` (the faulting data address when the core reports one) and ``pc``; the frame's
    #: function, file, line, locals and args are those of the faulting code.
    fault: Optional[Dict[str, Any]] = None

    def __str__(self) -> str:
        where = f"{self.function or '??'}"
        if self.file:
            where += f" ({self.file}:{self.line})"
        return f"{where} at 0x{self.pc:x} [{self.reason}]"


class Debugger:
    """gdb attached to a session's device; see the module docstring. Use as a context manager
    or call :meth:`detach` to give the device back to the session."""

    def __init__(self, session, gdb: Optional[str] = None):
        path = shutil.which(gdb or GDB)
        if path is None:
            raise ToolNotFoundError(gdb or GDB, "install the Debian package gdb-multiarch "
                                                "(apt-get install -y gdb-multiarch), or run `make setup`")
        self.session = session
        target = session.gdb_target
        self.mi = MiClient([path, "--nx", "--quiet", "--interpreter=mi3"])
        self._done_addr = session.symbols["UTVMDone"] & ~1
        self._arch = arch.for_config(session.cfg)
        self._fault_bp: Optional[int] = None
        self._restore: Dict[str, int] = {}   # the handler's registers while a fault is shown
        self._seen = 0                       # stops the user has been shown
        self._symbol_files: Dict[str, str] = {}
        self._breakpoints: Dict[int, str] = {}
        self.attached = False
        inner = session.lend_link_to_debugger()
        try:
            for setting in ("confirm off", "pagination off", "mi-async on", "breakpoint pending off"):
                self.mi.command(f"-gdb-set {setting}")
            self.mi.command(f"-file-exec-and-symbols {session.runtime.elf_path}")
            for image in session.runtime_parts:
                self.add_symbols(image.owner, image)
            for mod in session.modules:
                self.add_symbols(mod.name, mod.image)
            self.mi.command(f"-target-select remote {target}", timeout=30)
            # the halted target's first stop report: not a new stop (it can take seconds on a
            # loaded machine; the wait ends as soon as it is there)
            self.mi.wait_stop(0, 10.0)
            self._seen = len(self.mi.stops)
            self.attached = True
            self._done_bp = int(self.mi.command(f"-break-insert *0x{self._done_addr:x}")["bkpt"]["number"])
            self.transport = DebugTransport(self, inner)
            session.use_debug_transport(self.transport)
        except BaseException:
            self.mi.close()
            session.take_link_back(inner)
            raise
        log.info("debugger attached to %s", target)

    @property
    def done_address(self) -> int:
        """The runtime's done symbol (a call's end), without the Thumb bit."""
        return self._done_addr

    # -- symbols (the session calls these as it loads and unloads code) -----------------------

    def add_symbols(self, name: str, image) -> None:
        """add-symbol-file for a placed image's linked ELF (a module's, or a runtime part's) with
        each section's address; ``name`` is what :meth:`remove_symbols` takes."""
        command = add_symbol_file_command(image.elf_path, {b.what: b.start for b in image.blocks})
        if command:
            self.mi.console_command(command)
            self._symbol_files[name] = image.elf_path

    def module_loaded(self, mod) -> None:
        """The session loaded ``mod``: gdb learns its symbols at their load addresses."""
        self.add_symbols(mod.name, mod.image)

    def module_unloaded(self, mod) -> None:
        """The session unloaded ``mod``: gdb forgets its symbols."""
        self.remove_symbols(mod.name)

    def remove_symbols(self, name: str) -> None:
        """remove-symbol-file for what :meth:`add_symbols` added under ``name`` (if anything)."""
        path = self._symbol_files.pop(name, None)
        if path is not None:
            self.mi.console_command(f"remove-symbol-file {path}")

    # -- control -----------------------------------------------------------------------------

    def break_at(self, location: str) -> int:
        """A breakpoint at a function name, ``file.c:line`` or ``*0xADDR``; returns its number."""
        bp = self.mi.command(f"-break-insert {location}")["bkpt"]
        number = int(bp["number"])
        self._breakpoints[number] = location
        return number

    def break_on_fault(self) -> int:
        """Stop when a kernel faults, before the runtime records the fault and ends the call: the
        frame :meth:`wait_stop` returns is the faulting code's (locals included) with ``.fault``
        set. ``cont()`` then lets the call end in a DeviceFault as usual."""
        # RISC-V: the trap vector's first instruction (every register but pc is the faulting
        # code's). Cortex-M: UTVMFaultRecord(frame, exc), which the handler branches to with the
        # exception frame's address (r4-r11 untouched). See utvm_host.arch.
        symbol = self._arch.fault_symbol
        if symbol is None:
            raise DebuggerError(f"no fault breakpoint on {self.session.cfg['arch']} devices")
        number = self.break_at(f"*0x{self.session.symbols[symbol] & ~1:x}")
        self._fault_bp = number
        return number

    def delete(self, number: Optional[int] = None) -> None:
        """Delete one breakpoint (or all of the user's)."""
        for n in ([number] if number is not None else list(self._breakpoints)):
            self.mi.command(f"-break-delete {n}")
            self._breakpoints.pop(n, None)

    def skip_stops_before(self, index: int) -> None:
        """Stops reported before record ``index`` are not shown by :meth:`wait_stop` (a run
        starting there)."""
        self._seen = max(self._seen, index)

    def call_starting(self) -> None:
        """A call is being started (``fn.start()``): the next :meth:`wait_stop` is a stop of it,
        never a report that came in before (the target's first stop at attach can arrive late)."""
        self.skip_stops_before(len(self.mi.stops))

    def wait_stop(self, timeout: Optional[float] = 30.0) -> Frame:
        """The next stop of the core (a breakpoint, the end of a step, the end of the call)."""
        record = self.mi.wait_stop(self._seen, timeout)
        if record is None:
            raise DeviceError(f"the core did not stop within {timeout:g} s; dbg.interrupt() stops it")
        self._seen = len(self.mi.stops)
        return self._frame(record)

    def _set_regs(self, values: Dict[str, int]) -> None:
        for name, value in values.items():
            self.mi.command(f'-data-evaluate-expression "${name} = 0x{value:x}"')

    def _put_back_pc(self) -> None:
        """Give the fault handler its registers back before the core runs on."""
        if self._restore:
            restore, self._restore = self._restore, {}
            self._set_regs(restore)

    def _resume(self, command: str, timeout: Optional[float], wait: bool) -> Optional[Frame]:
        self._put_back_pc()
        self._seen = len(self.mi.stops)
        self.mi.command(command)
        return self.wait_stop(timeout) if wait else None

    def step(self, timeout: Optional[float] = 30.0) -> Frame:
        """Step one source line, into calls."""
        return self._resume("-exec-step", timeout, True)

    def next(self, timeout: Optional[float] = 30.0) -> Frame:
        """Step one source line, over calls."""
        return self._resume("-exec-next", timeout, True)

    def finish(self, timeout: Optional[float] = 30.0) -> Frame:
        """Run until the current function returns."""
        return self._resume("-exec-finish", timeout, True)

    def cont(self) -> None:
        """Continue; the next stop is reported by :meth:`wait_stop` (or ends a started call)."""
        self._resume("-exec-continue", None, False)

    def interrupt(self) -> Frame:
        """Stop the running core."""
        self.mi.command("-exec-interrupt")
        return self.wait_stop(10.0)

    def frame(self) -> Frame:
        """Where the core is stopped now."""
        payload = self.mi.command("-stack-info-frame")
        return self._frame({"frame": payload.get("frame", {}), "reason": "current"})

    def _frame(self, record: dict) -> Frame:
        fr = record.get("frame") or {}
        pc = int(fr.get("addr", "0"), 16) if fr.get("addr") else 0
        bkpt = record.get("bkptno")
        finished = (pc & ~1) == self._done_addr
        frame = Frame(function=fr.get("func"), file=fr.get("file"), line=int(fr["line"]) if fr.get("line") else None,
                      pc=pc, reason=record.get("reason", "unknown"), breakpoint=int(bkpt) if bkpt else None,
                      finished=finished)
        if self._fault_bp is not None and frame.breakpoint == self._fault_bp:
            return self._fault_frame(frame)
        if not finished and record.get("reason") not in ("exited", "exited-normally"):
            self._variables(frame)
        return frame

    def _variables(self, frame: Frame, level: Optional[int] = None) -> None:
        where = "" if level is None else f" --thread 1 --frame {level}"
        try:
            values = self.mi.command(f"-stack-list-variables{where} --all-values").get("variables", [])
        except DebuggerError:
            return   # no debug info here
        for v in values:
            (frame.args if v.get("arg") else frame.locals)[v["name"]] = v.get("value", "")

    def read_word(self, addr: int) -> int:
        """A 32-bit little-endian word of device memory (what the fault decoder reads)."""
        return int.from_bytes(self.read_memory(addr, 4), "little")

    def _fault_frame(self, stop: Frame) -> Frame:
        """The faulting code's frame, seen from the fault handler's first instruction: the
        architecture (utvm_host.arch) decodes the fault and names the registers that show the
        faulting code (RISC-V: pc = mepc; Cortex-M: the exception frame's registers)."""
        fault, show, restore = self._arch.debug_fault(self, self.session.cfg.pointer_size, stop.pc)
        # Until the core resumes, the registers show the faulting code, so evaluate() and
        # command() see its frame; _put_back_pc() restores the handler's before the core runs on.
        self._restore = restore
        self._set_regs(show)
        here = self.mi.command("-stack-info-frame")["frame"]
        frame = Frame(function=here.get("func"), file=here.get("file"),
                      line=int(here["line"]) if here.get("line") else None, pc=fault.pc, reason="fault",
                      breakpoint=stop.breakpoint, fault=fault.as_dict())
        self._variables(frame)
        return frame

    def evaluate(self, expression: str) -> str:
        """A C expression in the current frame, as gdb prints it."""
        return self.mi.command(f'-data-evaluate-expression "{expression}"')["value"]

    def read_memory(self, addr: int, n: int) -> bytes:
        return self.transport.read_through_gdb(addr, n)

    def command(self, text: str) -> str:
        """Any gdb CLI command (``info registers``, ``x/8xw 0x80000000``); returns its output."""
        return self.mi.console_command(text)

    # -- end ---------------------------------------------------------------------------------

    def detach(self) -> None:
        """Let a pending call finish (breakpoints removed), detach gdb and give the device back
        to the session. Safe to call twice."""
        if not self.attached:
            return
        try:
            self._put_back_pc()
            self.delete()
            if self.transport.pending:
                if not self.mi.running:
                    self.mi.command("-exec-continue")
                self.transport.wait_idle(self.session.timeout)
            if self.mi.running:
                self.interrupt()
            self.mi.command(f"-break-delete {self._done_bp}")
            # disconnect, not detach: a detach makes QEMU resume the core (and then report its
            # stop to the session's next connection out of turn)
            self.mi.command("-target-disconnect")
        except UtvmError as exc:
            log.warning("detaching the debugger: %s", exc)
        finally:
            self.attached = False
            self.mi.close()
            self.session.take_link_back(self.transport.inner)
        log.info("debugger detached")

    def __enter__(self) -> "Debugger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def __repr__(self) -> str:
        return f"<Debugger {'attached' if self.attached else 'detached'} to {self.session.cfg.name}>"


class DebugTransport(Transport):
    """The session's transport while a debugger is attached: runs go through gdb (set pc and sp,
    continue, wait for the stop at the done symbol), memory through the session's own link when
    it can share the device with gdb (OpenOCD's Tcl port) or else through gdb."""

    restart_verb = "stopped"

    def __init__(self, dbg: Debugger, inner: Optional[Transport]):
        self.dbg = dbg
        self.inner = inner
        self.little_endian = dbg.session.cfg.little_endian
        self._lock = threading.RLock()
        self.pending = False
        self._idle = threading.Event()
        self._idle.set()
        cfg = dbg.session.cfg
        self._results = tuple(arch.for_config(cfg).gdb_registers(cfg).results)
        self._thumb = bool(cfg.abi.get("thumb"))

    def read_through_gdb(self, addr: int, n: int) -> bytes:
        """``n`` bytes at ``addr`` read by gdb (whichever link the session keeps)."""
        if n == 0:
            return b""
        payload = self.dbg.mi.command(f"-data-read-memory-bytes 0x{addr:x} {n}")
        return bytes.fromhex("".join(m["contents"] for m in payload["memory"]))

    def read(self, addr: int, n: int) -> bytes:
        with self._lock:
            return self.inner.read(addr, n) if self.inner is not None else self.read_through_gdb(addr, n)

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        with self._lock:
            if self.inner is not None:
                self.inner.write(addr, view)
            else:
                for off in range(0, view.nbytes, 4096):
                    chunk = view[off:off + 4096].hex()
                    self.dbg.mi.command(f"-data-write-memory-bytes 0x{addr + off:x} {chunk}")

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        """Start through gdb and wait (without a timeout: the user may be stepping) until the
        core reaches the done symbol; stops at breakpoints on the way are the user's."""
        for addr, data in before:
            self.write(addr, data)
        index = self._start(entry, (stack_base + stack_size) & ~0xF)
        try:
            while True:
                stop = self._stop_info(self.dbg.mi.wait_stop(index, None))
                index += 1
                if stop is not None:
                    return stop
        finally:
            self.pending = False
            self._idle.set()

    def _start(self, entry: int, sp: int) -> int:
        """Set sp and pc and continue; returns the index of the stop record to wait for."""
        mi = self.dbg.mi
        with self._lock:
            self.pending = True
            self._idle.clear()
            try:
                mi.command(f'-data-evaluate-expression "$sp = 0x{sp:x}"')
                mi.command(f'-data-evaluate-expression "$pc = 0x{entry & ~1 if self._thumb else entry:x}"')
                index = len(mi.stops)
                # The user's next dbg.wait_stop() is a stop of this run: never an older report (the
                # target's first stop at attach can arrive late on a loaded machine).
                self.dbg.skip_stops_before(index)
                mi.command("-exec-continue")
            except BaseException:
                self.pending = False
                self._idle.set()
                raise
        return index

    def _stop_info(self, record: dict) -> Optional[StopInfo]:
        """How a run ended at this stop record, or None when the stop is the user's (a breakpoint
        on the way of a call started with ``fn.start()``: the run goes on after ``dbg.cont()``)."""
        fr = record.get("frame") or {}
        pc = int(fr["addr"], 16) if fr.get("addr") else None
        if record.get("reason", "").startswith("exited"):
            return StopInfo("lost", detail="the debugger reports the target exited")
        if pc is not None and (pc & ~1) == self.dbg.done_address:
            values = self.dbg.mi.command("-data-list-register-values x " + " ".join(map(str, self._results)))
            regs = {int(v["number"]): int(v["value"], 16) for v in values["register-values"]}
            return StopInfo("done", pc=pc, result=tuple(regs[r] for r in self._results))
        if record.get("reason") == "signal-received" and record.get("signal-name") not in ("SIGINT", "SIGTRAP"):
            return StopInfo("fault", pc=pc, detail=f"the debugger reports {record.get('signal-meaning')}")
        if not getattr(call_context, "started", False):
            bkpt = record.get("bkptno")
            return StopInfo("breakpoint", pc=pc, detail=f"breakpoint {bkpt}" if bkpt else
                            f"stopped by the debugger: {record.get('reason', 'unknown')}")
        return None

    def wait_idle(self, timeout: Optional[float]) -> bool:
        return self._idle.wait(timeout)

    @property
    def alive(self) -> bool:
        """Whether the debugger is still attached."""
        return self.dbg.attached

    def restart(self) -> bool:
        """After a fault: the core is stopped under gdb already (interrupted if it runs).

        Returns
        -------
        bool
            False: memory is kept.
        """
        if self.dbg.mi.running:
            self.dbg.mi.command("-exec-interrupt")
        return False

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        with self._lock:
            if self.inner is not None:
                self.inner.fill(addr, size, value)
            else:
                self.write(addr, bytes([value]) * size)

    def close(self) -> None:
        self.dbg.detach()


register_debugger(Debugger)   # Session.debugger() attaches with it (the session never imports this layer)
