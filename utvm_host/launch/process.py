"""Processes a device needs: spawned from one long-lived thread, registered, and stopped
when their owner closes, at interpreter exit and when Python dies."""
from __future__ import annotations

import abc
import atexit
import ctypes
import logging
import queue
import re
import socket
import os
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..errors import TransportError


if TYPE_CHECKING:
    from .network import PrivateNetwork

log = logging.getLogger(__name__)

_live: "weakref.WeakSet" = weakref.WeakSet()
_live_lock = threading.Lock()



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


