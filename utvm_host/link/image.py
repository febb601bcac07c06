"""A library linked at its placed addresses: what to write to the device, and its symbols."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..elf import ElfFile, Location
from ..layout import Block


@dataclass
class LinkedImage:
    """A library linked at its placed addresses: what to write to the device and its symbols.

    ``segments`` lists ``(address, bytes)`` to write; ``zero_fill`` lists ``(address, size)``
    of ``.bss``; ``symbols`` maps every defined global symbol to its address.
    """
    owner: str
    elf_path: str
    blocks: List[Block]
    segments: List[Tuple[int, bytes]]
    zero_fill: List[Tuple[int, int]]
    symbols: Dict[str, int]
    _elf: Optional[ElfFile] = field(default=None, repr=False)

    def contains(self, addr: int) -> bool:
        return any(b.start <= addr < b.end for b in self.blocks)

    def symbolize(self, addr: int) -> Optional[Location]:
        """``function+offset (file:line)`` for an address in this image, or None."""
        if self._elf is None:
            self._elf = ElfFile(self.elf_path)
        return self._elf.symbolize(addr)

    def close(self) -> None:
        if self._elf is not None:
            self._elf.close()
            self._elf = None

    def discard(self) -> None:
        """Close the image and delete its linked ELF (the module was unloaded: nothing will
        symbolize or debug it again). Safe to call twice."""
        self.close()
        try:
            os.unlink(self.elf_path)
        except OSError:
            pass

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blocks)
