"""How a malformed file is reported: whatever pyelftools (or the package's own readers) raise
on a truncated table, an offset past the end or a broken DWARF chain comes out of the public
methods of :class:`~utvm_host.elf.ElfFile` as :class:`~utvm_host.errors.BuildError`.

Imports nothing from the package.
"""
from __future__ import annotations

import functools
import struct
from typing import Any, Callable

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError

from ..errors import BuildError

__all__: list = []

#: What pyelftools (and the readers of this package) raise on a malformed file: a truncated
#: table, an offset past the end, a broken DWARF chain. Turned into BuildError at the public
#: methods.
_MALFORMED = (ELFError, DWARFError, ConstructError, AssertionError, KeyError, IndexError, TypeError, ValueError,
              OverflowError, AttributeError, ZeroDivisionError, EOFError, RecursionError, struct.error)


def _not_elf_error(path: str, exc: BaseException) -> BuildError:
    """The error for a file whose ELF header or section table cannot be read at all."""
    return BuildError(f"'{path}' is not an ELF file: {type(exc).__name__}: {exc}")


def _malformed_error(path: str, what: str, exc: BaseException) -> BuildError:
    """The error for a file whose part ``what`` (e.g. "DWARF debug info") cannot be read."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return BuildError(f"'{path}' is a malformed ELF file: its {what} cannot be read ({detail}); "
                      "rebuild it, or pass the object file the compiler wrote")


def _reads(what: str) -> Callable:
    """Decorate an :class:`ElfFile` method that parses ``what`` (e.g. "DWARF debug info"):
    whatever a malformed file makes the parser raise comes out as :class:`BuildError` naming
    the file and the part that is broken, and the file stays marked so (every later parse
    raises the same way: half-built caches are never used).

    The instance must have ``path`` and ``_malformed`` (None, or ``(what, exception)`` once a
    parse failed)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._malformed is not None:
                raise _malformed_error(self.path, *self._malformed)
            try:
                return fn(self, *args, **kwargs)
            except BuildError:
                raise
            except _MALFORMED as exc:
                self._malformed = (what, exc)
                raise _malformed_error(self.path, what, exc) from exc
        return guarded
    return wrap
