"""Running sessions, announced in small JSON files so other processes can find them:
``utvm-host info`` lists them and ``utvm-host debug`` prints the gdb command line that attaches
to one (with the symbols of its runtime and of every loaded library at their addresses).

Files live in ``$UTVM_HOST_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/utvm-host``, else
``~/.cache/utvm-host/sessions``; a session writes its file when it opens and after every
load or unload, and removes it when it closes. Files of processes that died are skipped and
removed by :func:`running`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

from .toolchain import cache_root


def sessions_dir() -> Path:
    env = os.environ.get("UTVM_HOST_RUNTIME_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "utvm-host"
    return cache_root() / "sessions"


def publish(record: Dict[str, Any]) -> Path:
    """Write (or replace) a session's record atomically; returns its file."""
    folder = sessions_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['id']}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def withdraw(path: Path) -> None:
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


def running() -> List[Dict[str, Any]]:
    """Records of the sessions whose process still runs, oldest first."""
    folder = sessions_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(record.get("pid", 0))):
            withdraw(path)
            continue
        out.append(record)
    return sorted(out, key=lambda r: r.get("started", 0))
