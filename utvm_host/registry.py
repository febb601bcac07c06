"""Running sessions, announced in small JSON files so other processes can find them:
``utvm-host info`` lists them and ``utvm-host debug`` prints the gdb command line that attaches
to one (with the symbols of its runtime and of every loaded library at their addresses).

Files live in ``$UTVM_HOST_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/utvm-host``, else
``~/.cache/utvm-host/sessions``; a session writes its file when it opens and after every
load or unload, and removes it when it closes. Files of processes that died are skipped and
removed by :func:`running`.

Records are data, never commands (a record is read by another process, maybe much later):

- the folder is this user's and nobody else may write it (else :class:`RegistryError` names the
  folder and the fix); it is created 0700 and records 0600, by ``mkdir``/``open`` with those
  modes (the umask can only take bits away), so no record is ever readable by another user;
- records owned by another uid are ignored;
- every field a reader uses is checked (:func:`validate`): the pid is an int, device, arch and
  transport come from known sets, ELF paths are files inside the session's own folder (owned by
  this user, mode 0700), the gdb endpoint is 127.0.0.1 and a port or a Unix socket in that
  folder; a record that fails is refused, with the reason, and nothing in it is used.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Tuple

from .errors import UtvmError
from .toolchain import cache_root

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
RECORD_MODE = 0o600
TRANSPORTS = ("host", "openocd", "gdb", "serial")
GDB_ARCHS = ("riscv:rv32", "riscv:rv64", "arm")
_ID = re.compile(r"[0-9]{1,10}-[0-9]{1,10}")
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_SECTION = re.compile(r"[.A-Za-z_][A-Za-z0-9_.$]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")   # control characters: newlines too (a gdb -ex takes one line)
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")   # for the memory map's text


class RegistryError(UtvmError):
    """The session registry cannot be trusted: its folder belongs to another user or others may
    write it, or a record is malformed or forged. ``path`` is the folder or the record's file."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(message)


def sessions_dir() -> Path:
    env = os.environ.get("UTVM_HOST_RUNTIME_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "utvm-host"
    return cache_root() / "sessions"


def secure_folder(create: bool = False) -> Optional[Path]:
    """The registry folder, checked: a folder owned by this user that no other user may write.

    With ``create`` it is made (mode 0700) when missing; without, a missing folder gives None.
    A folder only others may *read* (0755, as versions before 0.x made it) is tightened to 0700.
    Raises :class:`RegistryError` naming the folder and the fix when it is not a folder, belongs
    to another uid, or is writable by group or others."""
    folder = sessions_dir()
    if create:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(folder, FOLDER_MODE)   # the umask can only remove bits: never wider than 0700
        except FileExistsError:
            pass
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    fix = "or set UTVM_HOST_RUNTIME_DIR to a folder of your own"
    if not stat.S_ISDIR(st.st_mode):
        raise RegistryError(f"the session registry {folder} is not a folder: remove it, {fix}", str(folder))
    if st.st_uid != os.geteuid():
        raise RegistryError(f"the session registry folder {folder} belongs to uid {st.st_uid}, not to you (uid "
                            f"{os.geteuid()}): its owner could read or forge session records; remove it, {fix}",
                            str(folder))
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise RegistryError(f"the session registry folder {folder} is writable by other users (mode {mode:04o}): "
                            f"they could forge session records; run `chmod 700 {folder}`, {fix}", str(folder))
    if mode & 0o077:
        os.chmod(folder, FOLDER_MODE)
    return folder


def publish(record: Dict[str, Any]) -> Path:
    """Write (or replace) a session's record atomically, readable only by this user (0600);
    returns its file. Raises :class:`RegistryError` for an untrustworthy folder or a bad id,
    ``OSError`` when the file cannot be written."""
    if not isinstance(record.get("id"), str) or not _ID.fullmatch(record["id"]):
        raise RegistryError(f"session id {record.get('id')!r} is not '<pid>-<n>'")
    folder = secure_folder(create=True)
    assert folder is not None
    path = folder / f"{record['id']}.json"
    tmp = folder / f".{record['id']}.{os.getpid()}.tmp"
    data = json.dumps(record, indent=1, sort_keys=True).encode()
    try:
        os.unlink(tmp)   # left by a process that died while writing
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, RECORD_MODE)
    try:
        os.fchmod(fd, RECORD_MODE)   # exactly 0600, whatever the umask took away
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return path


def withdraw(path: Path, owner_pid: Optional[int] = None) -> None:
    """Remove a record. With ``owner_pid``, only that process does (a forked child that
    inherited the session object leaves its parent's record alone)."""
    if owner_pid is not None and owner_pid != os.getpid():
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_own(path: Path) -> Optional[bytes]:
    """The bytes of ``path`` if it is a regular file owned by this user (not a symlink), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > 1 << 22:
            log.debug("ignoring %s: not a regular file of uid %d", path, os.geteuid())
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def scan() -> Tuple[List[Dict[str, Any]], List[Tuple[Path, str]]]:
    """(records of the sessions whose process still runs, oldest first, each checked by
    :func:`validate`; (file, reason) for every record of this user that was refused).
    Files of other uids are ignored; records of dead processes are removed. Raises
    :class:`RegistryError` when the folder itself cannot be trusted."""
    folder = secure_folder()
    good, refused = [], []
    for path in sorted(folder.glob("*.json")) if folder is not None else []:
        raw = _read_own(path)
        if raw is None:
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            refused.append((path, f"not JSON: {exc}"))
            continue
        pid = record.get("pid") if isinstance(record, dict) else None
        if type(pid) is int and pid > 0 and not _alive(pid):
            withdraw(path)
            continue
        try:
            good.append(validate(record, path))
        except RegistryError as exc:   # the commands print the reasons
            log.debug("%s", exc)
            refused.append((path, str(exc)))
    return sorted(good, key=lambda r: r["started"]), refused


def running() -> List[Dict[str, Any]]:
    """Records of the sessions whose process still runs, oldest first (see :func:`scan`)."""
    return scan()[0]


def known_archs() -> Tuple[str, ...]:
    """Every ``cfg["arch"]`` the devices module makes."""
    from . import arch
    return tuple(arch.host.HOST_ABIS) + tuple(arch.riscv.ISAS) + tuple(arch.cortexm.CORES)


def validate(record: Any, path: Path) -> Dict[str, Any]:
    """A checked copy of a record read from ``path`` (only the fields readers use), or
    :class:`RegistryError` naming the file and the first field that is wrong."""
    return _RecordCheck(path).record(record)


class _RecordCheck:
    """The checks of :func:`validate`, field by field: each raises RegistryError naming the
    file and the field."""

    def __init__(self, path: Path):
        self.path = path
        self.folder = ""
        self.root = ""

    def fail(self, field: str, why: str) -> NoReturn:
        raise RegistryError(f"session record {self.path} is refused: {field} {why}", str(self.path))

    def text(self, field: str, value: Any, pattern: Optional["re.Pattern"] = None, allowed: Tuple = (),
             control: "re.Pattern" = _CONTROL) -> str:
        if not isinstance(value, str) or control.search(value):
            self.fail(field, f"must be text without control characters, not {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(field, f"{value!r} is malformed")
        if allowed and value not in allowed:
            self.fail(field, f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    def record(self, record: Any) -> Dict[str, Any]:
        if not isinstance(record, dict):
            self.fail("the record", "must be a JSON object")
        out = self.header(record)
        out["folder"] = self.session_folder(record.get("folder"))
        runtime = record.get("runtime")
        out["runtime"] = None if runtime is None else self.inside("'runtime'", runtime)
        modules = record.get("modules", [])
        if not isinstance(modules, list):
            self.fail("'modules'", "must be a list")
        out["modules"] = [self.module(f"'modules'[{i}]", mod) for i, mod in enumerate(modules)]
        out["memory_map"] = self.text("'memory_map'", record.get("memory_map", ""), control=_CONTROL_BUT_LINES)
        gdb = record.get("gdb")
        out["gdb"] = None if gdb is None else self.gdb(gdb)
        return out

    def header(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """id, pid, device, arch, transport and start time."""
        out: Dict[str, Any] = {"id": self.text("'id'", record.get("id"), _ID)}
        if out["id"] != self.path.stem:
            self.fail("'id'", f"{out['id']!r} differs from the file name {self.path.name}")
        pid = record.get("pid")
        if type(pid) is not int or pid <= 0:
            self.fail("'pid'", f"must be a positive integer, not {pid!r}")
        out["pid"] = pid
        out["device"] = self.text("'device'", record.get("device"), _DEVICE)
        out["arch"] = self.text("'arch'", record.get("arch"), allowed=known_archs())
        out["transport"] = self.text("'transport'", record.get("transport"), allowed=TRANSPORTS)
        started = record.get("started")
        if type(started) not in (int, float) or not math.isfinite(started):
            self.fail("'started'", f"must be a time in seconds, not {started!r}")
        out["started"] = started
        return out

    def session_folder(self, folder: Any) -> str:
        """The session's folder: this user's, mode 0700, not a link; paths must stay inside it."""
        if not isinstance(folder, str) or _CONTROL.search(folder) or not os.path.isabs(folder):
            self.fail("'folder'", f"must be the session's absolute folder path, not {folder!r}")
        try:
            st = os.lstat(folder)
        except OSError as exc:
            self.fail("'folder'", f"{folder!r} cannot be read: {exc.strerror}")
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != 0o700:
            self.fail("'folder'", f"{folder!r} must be a folder (not a link) of uid {os.geteuid()} with mode 0700, "
                                  f"not uid {st.st_uid} mode {stat.S_IMODE(st.st_mode):04o}")
        self.folder, self.root = folder, os.path.realpath(folder)
        return folder

    def inside(self, field: str, value: Any, kind: str = "file") -> str:
        """A path to a file (or socket) of this user inside the session's folder."""
        if not isinstance(value, str) or _CONTROL.search(value) or not os.path.isabs(value):
            self.fail(field, f"must be an absolute path, not {value!r}")
        real = os.path.realpath(value)
        if not real.startswith(self.root + os.sep):
            self.fail(field, f"{value!r} is outside the session's folder {self.folder}")
        try:
            fst = os.stat(real)
        except OSError as exc:
            self.fail(field, f"{value!r} cannot be read: {exc.strerror}")
        is_kind = stat.S_ISSOCK(fst.st_mode) if kind == "socket" else stat.S_ISREG(fst.st_mode)
        if not is_kind or fst.st_uid != os.geteuid():
            self.fail(field, f"{value!r} is not a {kind} of uid {os.geteuid()}")
        return value

    def module(self, where: str, mod: Any) -> Dict[str, Any]:
        if not isinstance(mod, dict):
            self.fail(where, "must be an object")
        kernels = mod.get("kernels", [])
        sections = mod.get("sections", {})
        if not isinstance(kernels, list) or not isinstance(sections, dict):
            self.fail(where, "needs a list of kernels and an object of sections")
        clean_sections = {}
        for name, addr in sections.items():
            self.text(f"{where} section", name, _SECTION)
            if type(addr) is not int or not 0 <= addr < 1 << 64:
                self.fail(f"{where} section {name}", f"address must be an integer, not {addr!r}")
            clean_sections[name] = addr
        return {"name": self.text(f"{where} 'name'", mod.get("name")),
                "elf": self.inside(f"{where} 'elf'", mod.get("elf")),
                "kernels": [self.text(f"{where} kernel", k) for k in kernels],
                "sections": clean_sections}

    def gdb(self, gdb: Any) -> Dict[str, Any]:
        if not isinstance(gdb, dict):
            self.fail("'gdb'", "must be an object")
        arch = gdb.get("arch")
        if arch is not None:
            self.text("'gdb' arch", arch, allowed=GDB_ARCHS)
        shared = gdb.get("shared", False)
        if not isinstance(shared, bool):
            self.fail("'gdb' shared", f"must be true or false, not {shared!r}")
        if "socket" in gdb:
            return {"socket": self.inside("'gdb' socket", gdb["socket"], "socket"), "arch": arch, "shared": shared}
        if gdb.get("host") != "127.0.0.1":
            self.fail("'gdb' host", f"must be 127.0.0.1 (or give a Unix 'socket' in the session's folder), not "
                                    f"{gdb.get('host')!r}")
        port = gdb.get("port")
        if type(port) is not int or not 0 < port < 65536:
            self.fail("'gdb' port", f"must be a TCP port number, not {port!r}")
        return {"host": "127.0.0.1", "port": port, "arch": arch, "shared": shared}
