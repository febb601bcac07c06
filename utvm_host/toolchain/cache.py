"""The build cache: content hashes, and entries made in a private folder then renamed into place.

Entries live under ``$UTVM_HOST_CACHE`` (default ``~/.cache/utvm-host``). A library build's
entry records the hash of every file it depended on (``manifest.json``) and is reused while
they are all unchanged; the other kinds (runtime, wrapped objects, stubs) are keyed by a hash
of everything they depend on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Union

PathLike = Union[str, os.PathLike]

#: Bump when the build products change shape, so old cache entries are not reused.
CACHE_VERSION = "utvm-host-build-7"


def cache_root() -> Path:
    """Where build products are cached: ``$UTVM_HOST_CACHE`` or ``~/.cache/utvm-host``."""
    root = os.environ.get("UTVM_HOST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "utvm-host"


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _lookup(entries: Path) -> Optional[Path]:
    """A cache entry whose recorded dependencies are all unchanged, or None."""
    if not entries.is_dir():
        return None
    for entry in sorted(entries.iterdir()):
        manifest = entry / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            deps = json.loads(manifest.read_text())["deps"]
            if all(os.path.isfile(p) and sha256_file(p) == h for p, h in deps.items()):
                return entry
        except (OSError, ValueError, KeyError):
            continue
    return None


def _store(entries: Path, work: Path, deps: Dict[str, str]) -> Path:
    (work / "manifest.json").write_text(json.dumps({"deps": deps}, indent=1, sort_keys=True))
    entries.mkdir(parents=True, exist_ok=True)
    final = entries / sha256_json(deps)[:16]
    try:
        os.rename(work, final)
    except OSError:  # another process stored the same entry first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    return final


def _workdir(prefix: str) -> Path:
    """A new private folder under the cache root, where an entry is made before it is stored."""
    cache_root().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=cache_root()))


def cached_entry(kind: str, key: str, make: Callable[[Path], None]) -> Path:
    """The cache entry ``kind/key``, made by ``make(workdir)`` in a private folder and renamed
    into place (atomic: a concurrent builder of the same entry loses the race harmlessly)."""
    entry = cache_root() / kind / key[:32]
    if not (entry / "lib.o").is_file():
        work = _workdir(f"{kind}-")
        try:
            make(work)
            entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(work, entry)
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return entry
