"""Section allocators over device memory regions, and the layout of one device: see the package
docstring (:mod:`utvm_host.layout`)."""
from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import ConfigError, LayoutError
from .memory_map import MemoryMap



def _as_int(value: Any, what: str) -> int:
    """``value`` as a Python int (accepts numpy integers); ValueError if it is not integral."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def _check_align(align: Any) -> int:
    """``align`` as an int, or ValueError unless it is a power of two >= 1."""
    a = _as_int(align, "alignment")
    if a < 1 or a & (a - 1):
        raise ValueError(f"alignment must be a power of two >= 1, got {align!r}")
    return a


def align_up(value: int, align: int) -> int:
    """The smallest multiple of ``align`` that is >= ``value``.

    ``align`` must be a power of two >= 1 (ValueError otherwise). ``align_up(x, 1) == x``.
    """
    a = _check_align(align)
    v = _as_int(value, "value")
    return (v + a - 1) & ~(a - 1)


def _owner_part(owner: str) -> str:
    return f" from '{owner}'" if owner else ""


def _describe(size: int, what: str, owner: str) -> str:
    """``"174,704 bytes of .text from 'resnet.o'"``; the parts for empty what/owner are left out."""
    text = f"{size:,} bytes"
    if what:
        text += f" of {what}"
    return text + _owner_part(owner)


@dataclass(frozen=True)
class Block:
    """An allocated range ``[start, end)`` of ``size`` bytes in region ``region``.

    ``owner`` says who asked for it (e.g. a library file name, ``''`` for none) and ``what`` what
    it holds (e.g. ``.text`` or ``tensor float32[100000]``).
    """

    region: str
    start: int
    size: int
    owner: str
    what: str

    @property
    def end(self) -> int:
        """First address after the block (``start + size``)."""
        return self.start + self.size

    def describe(self) -> str:
        """Human-readable description, e.g. ``64 bytes of .text from 'a.o' at 0x1000 in region 'text'``."""
        return f"{_describe(self.size, self.what, self.owner)} at 0x{self.start:x} in region '{self.region}'"


class SectionAllocator:
    """First-fit allocator over one region ``[start, start + size)``.

    Contracts:

    * every block start is a multiple of ``max(align, self.align)`` (absolute addresses);
    * allocated blocks of size > 0 never overlap each other and lie inside the region;
    * free space is kept as sorted, coalesced ``(start, size)`` ranges: no two free ranges touch;
    * zero-size blocks consume no space; they sit at an aligned address in ``[start, end]`` and
      freeing them changes no free range.

    ``free_bytes`` is the free byte count; ``free(block)`` releases a block.
    """

    def __init__(self, name: str, start: int, size: int, align: int = 1):
        """``name``: region name; ``start``: first address; ``size``: capacity in bytes (>= 0);
        ``align``: minimum alignment of every block (power of two). Invalid values raise
        :class:`~utvm_host.errors.ConfigError` (a ValueError)."""
        try:
            start = _as_int(start, "start")
            size = _as_int(size, "size")
            align = _check_align(align)
        except ValueError as exc:
            raise ConfigError(f"region '{name}': {exc}") from None
        if start < 0:
            raise ConfigError(f"region '{name}': start must be >= 0, got {start:#x}")
        if size < 0:
            raise ConfigError(f"region '{name}': size must be >= 0, got {size:,}")
        self.name: str = name
        self.start: int = start
        self.size: int = size
        self.align: int = align
        self._blocks: List[Block] = []                 # sorted by (start, size)
        self._free: List[Tuple[int, int]] = []         # sorted (start, size), coalesced
        self._used: int = 0
        self.reset()

    # -- queries ------------------------------------------------------------------------------
    @property
    def end(self) -> int:
        """First address after the region (``start + size``)."""
        return self.start + self.size

    @property
    def used(self) -> int:
        """Bytes in allocated blocks (alignment padding between blocks is not counted)."""
        return self._used

    @property
    def free_bytes(self) -> int:
        """Bytes not in any allocated block (``size - used``), as a plain int."""
        return self.size - self._used

    @property
    def largest_free(self) -> int:
        """Size in bytes of the largest contiguous free range (0 when the region is full)."""
        return max((s for _, s in self._free), default=0)

    def blocks(self) -> List[Block]:
        """The allocated blocks, sorted by start address (then size)."""
        return list(self._blocks)

    def free_ranges(self) -> List[Tuple[int, int]]:
        """The free space as ``(start, size)`` pairs, sorted by address; adjacent ranges are
        always merged, so no two pairs touch."""
        return list(self._free)

    def fits(self, size: int, align: int = 1) -> bool:
        """Whether ``alloc(size, align=align)`` would succeed now."""
        size = self._check_size(size)
        return self._find(size, max(_check_align(align), self.align)) is not None

    def __contains__(self, block: object) -> bool:
        return isinstance(block, Block) and self._index_of(block) is not None

    def __repr__(self) -> str:
        return (f"SectionAllocator({self.name!r}, start=0x{self.start:x}, size={self.size:,}, "
                f"align={self.align}, used={self.used:,}, blocks={len(self._blocks)})")

    # -- allocation ---------------------------------------------------------------------------
    def alloc(self, size: int, *, owner: str, what: str, align: int = 1,
              hint: Optional[str] = None) -> Block:
        """Allocate ``size`` bytes at the lowest address whose start is a multiple of
        ``max(align, self.align)`` (first fit by address) and return the :class:`Block`.

        ``size`` 0 is allowed and yields a zero-size block at an aligned address. Negative sizes
        and bad alignments raise ValueError. If nothing fits, raises
        :class:`~utvm_host.errors.LayoutError` with every field set (``owner`` is None when
        ``owner`` is ``''``) and, if given, ``hint`` appended to its message after ``"; "``.
        """
        size = self._check_size(size)
        eff_align = max(_check_align(align), self.align)
        found = self._find(size, eff_align)
        if found is None:
            raise self._layout_error(size, owner, what, eff_align, hint)
        index, addr = found
        block = Block(self.name, addr, size, owner, what)
        if size:
            hole_start, hole_size = self._free[index]
            hole_end = hole_start + hole_size
            pieces = []
            if addr > hole_start:
                pieces.append((hole_start, addr - hole_start))
            if block.end < hole_end:
                pieces.append((block.end, hole_end - block.end))
            self._free[index:index + 1] = pieces
            self._used += size
        bisect.insort(self._blocks, block, key=_block_key)
        return block

    def free(self, block: Block) -> None:
        """Return ``block`` to the free space, merging it with free neighbours on either side.

        Raises ValueError naming the block if it is not currently allocated here (freed
        already, or allocated by another allocator).
        """
        index = self._index_of(block) if isinstance(block, Block) else None
        if index is None:
            desc = block.describe() if isinstance(block, Block) else repr(block)
            raise ValueError(f"cannot free {desc}: it is not allocated in region '{self.name}' "
                             "(freed twice, or allocated elsewhere)")
        del self._blocks[index]
        if block.size:
            self._used -= block.size
            self._release(block.start, block.size)

    def shrink(self, block: Block, size: int) -> Block:
        """Give back the tail of ``block`` beyond its first ``size`` bytes; returns the block
        that stays (same start, owner and ``what``). ``size`` must be at most ``block.size``.
        Raises ValueError like :meth:`free` for a block that is not allocated here."""
        size = self._check_size(size)
        index = self._index_of(block) if isinstance(block, Block) else None
        if index is None:
            desc = block.describe() if isinstance(block, Block) else repr(block)
            raise ValueError(f"cannot shrink {desc}: it is not allocated in region '{self.name}' "
                             "(freed already, or allocated elsewhere)")
        if size > block.size:
            raise ValueError(f"cannot shrink {block.describe()} to {size:,} bytes: that is larger")
        if size == block.size:
            return block
        del self._blocks[index]
        kept = Block(self.name, block.start, size, block.owner, block.what)
        bisect.insort(self._blocks, kept, key=_block_key)
        self._used -= block.size - size
        self._release(kept.end, block.size - size)
        return kept

    def free_owner(self, owner: str) -> int:
        """Free every block whose owner is ``owner``; returns the bytes freed (0 if none)."""
        mine = [b for b in self._blocks if b.owner == owner]
        for b in mine:
            self.free(b)
        return sum(b.size for b in mine)

    def reset(self) -> None:
        """Forget every block: the whole region becomes one free range."""
        self._blocks = []
        self._free = [(self.start, self.size)] if self.size else []
        self._used = 0

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _check_size(size: Any) -> int:
        n = _as_int(size, "size")
        if n < 0:
            raise ValueError(f"size must be >= 0, got {n:,}")
        return n

    def _index_of(self, block: Block) -> Optional[int]:
        i = bisect.bisect_left(self._blocks, _block_key(block), key=_block_key)
        while i < len(self._blocks) and _block_key(self._blocks[i]) == _block_key(block):
            if self._blocks[i] == block:
                return i
            i += 1
        return None

    def _find(self, size: int, align: int) -> Optional[Tuple[int, int]]:
        """``(free range index, address)`` of the first fit, or None.

        For ``size`` 0 the index is meaningless (-1 when not placed in a free range): such a
        block goes into the first free range that holds an aligned address (its end included),
        else at the first aligned address in ``[start, end]``.
        """
        for i, (hole_start, hole_size) in enumerate(self._free):
            addr = align_up(hole_start, align)
            if addr + size <= hole_start + hole_size:
                return i, addr
        if size == 0:
            addr = align_up(self.start, align)
            if addr <= self.end:
                return -1, addr
        return None

    def _release(self, start: int, size: int) -> None:
        """Insert the free range ``(start, size)``, coalescing with touching neighbours."""
        i = bisect.bisect_left(self._free, (start, 0))
        end = start + size
        if i < len(self._free) and self._free[i][0] == end:          # right neighbour
            end += self._free[i][1]
            del self._free[i]
        if i > 0 and sum(self._free[i - 1]) == start:                 # left neighbour
            start = self._free[i - 1][0]
            i -= 1
            del self._free[i]
        self._free.insert(i, (start, end - start))

    def _high_water(self) -> int:
        """End address of the highest non-empty block (``start`` when there is none)."""
        return max((b.end for b in self._blocks if b.size), default=self.start)

    def _layout_error(self, size: int, owner: str, what: str, align: int,
                      hint: Optional[str]) -> LayoutError:
        used, free, largest = self.used, self.free_bytes, self.largest_free
        required = align_up(self._high_water(), align) - self.start + size
        stats = f"capacity {self.size:,}, used {used:,}, free {free:,}"
        if free >= size:
            stats += f", largest free block {largest:,}"
        message = (f"cannot place {_describe(size, what, owner)} in region '{self.name}' ({stats}): "
                   f'set cfg["mem_layout"]["{self.name}"]["size"] >= {required:,}')
        if hint:
            message += "; " + hint
        return LayoutError(message, region=self.name, what=what, owner=owner or None,
                           needed=size, capacity=self.size, used=used, free=free,
                           largest_free=largest, required_size=required)


def _block_key(block: Block) -> Tuple[int, int]:
    return (block.start, block.size)


class MemoryLayout:
    """The regions of one device, each with its own :class:`SectionAllocator`.

    Built from ``(name, start, size, align)`` tuples; iteration and :attr:`names` keep that
    order. Duplicate names and overlapping (non-empty) regions raise
    :class:`~utvm_host.errors.ConfigError`.
    """

    def __init__(self, regions: Iterable[Tuple[str, int, int, int]],
                 kinds: Optional[Dict[str, List[str]]] = None):
        """``kinds`` maps a kind of placement (``text``, ``heap``, ...) to the regions that may
        hold it, in order of preference (automatic layout). Without it, each kind has a region
        of its own name (a hand layout: ``cfg["mem_layout"]``)."""
        self.kinds = kinds
        self._allocators: Dict[str, SectionAllocator] = {}
        for entry in regions:
            try:
                name, start, size, align = entry
            except (TypeError, ValueError):
                raise ConfigError(f"a region must be (name, start, size, align), got {entry!r}") from None
            if name in self._allocators:
                raise ConfigError(f"region '{name}' is defined twice")
            new = SectionAllocator(name, start, size, align)
            for old in self._allocators.values():
                if new.size and old.size and new.start < old.end and old.start < new.end:
                    raise ConfigError(
                        f"region '{new.name}' [0x{new.start:x}, 0x{new.end:x}) overlaps region "
                        f"'{old.name}' [0x{old.start:x}, 0x{old.end:x})")
            self._allocators[name] = new

    def __getitem__(self, name: str) -> SectionAllocator:
        try:
            return self._allocators[name]
        except KeyError:
            known = ", ".join(self._allocators) or "none"
            raise KeyError(f"no region '{name}' in this layout (regions: {known})") from None

    def __iter__(self) -> Iterator[SectionAllocator]:
        return iter(list(self._allocators.values()))

    def __len__(self) -> int:
        return len(self._allocators)

    def __contains__(self, name: object) -> bool:
        return name in self._allocators

    @property
    def names(self) -> List[str]:
        """Region names in the order given to the constructor."""
        return list(self._allocators)

    @property
    def automatic(self) -> bool:
        return self.kinds is not None

    def regions_for(self, kind: str) -> List[SectionAllocator]:
        """The allocators that may hold ``kind``, most preferred first."""
        if self.kinds is None:
            return [self[kind]]
        names = self.kinds.get(kind)
        if not names:
            raise KeyError(f"no region holds '{kind}' in this layout")
        return [self[n] for n in names]

    def place(self, kind: str, size: int, *, owner: str, what: str, align: int = 1,
              hint: Optional[str] = None) -> Block:
        """Allocate ``size`` bytes for ``kind`` in the first region that can hold it.

        Raises :class:`LayoutError`. With a hand layout the message names the
        ``cfg["mem_layout"]`` size to raise; with the automatic one it lists what occupies the
        region, the largest free block and what to free.
        """
        candidates = self.regions_for(kind)
        if self.kinds is None:
            return candidates[0].alloc(size, owner=owner, what=what, align=align, hint=hint)
        for allocator in candidates:
            if allocator.fits(size, align):
                return allocator.alloc(size, owner=owner, what=what, align=align)
        raise self._auto_error(candidates[0], size, owner, what, align)

    def free(self, block: Block) -> None:
        """Return ``block`` to its region."""
        self[block.region].free(block)

    def shrink(self, block: Block, size: int) -> Block:
        """Give back all of ``block`` but its first ``size`` bytes (see :meth:`SectionAllocator.shrink`)."""
        return self[block.region].shrink(block, size)

    @staticmethod
    def _auto_error(region: SectionAllocator, size: int, owner: str, what: str, align: int) -> LayoutError:
        occupants: Dict[str, int] = {}
        for b in region.blocks():
            key = b.owner or (b.what.split("[")[0] if b.what.startswith("tensor") else b.what)
            key = "tensors" if b.what.startswith("tensor") else key
            occupants[key] = occupants.get(key, 0) + b.size
        listing = ", ".join(f"{name} {n:,}" for name, n in sorted(occupants.items(), key=lambda kv: -kv[1]))
        stats = (f"capacity {region.size:,}, used {region.used:,}, free {region.free_bytes:,}, "
                 f"largest free block {region.largest_free:,}")
        message = (f"cannot place {_describe(size, what, owner)} in memory region '{region.name}' ({stats}); "
                   f"it holds: {listing or 'nothing'}; free tensors or unload a library you no longer need, "
                   f"or give the device more memory (cfg[\"memory\"])")
        high = region._high_water()
        return LayoutError(message, region=region.name, what=what, owner=owner or None, needed=size,
                           capacity=region.size, used=region.used, free=region.free_bytes,
                           largest_free=region.largest_free,
                           required_size=align_up(high, align) - region.start + size)

    def copy(self) -> "MemoryLayout":
        """An independent copy (to try placements without touching this layout)."""
        import copy as _copy
        return _copy.deepcopy(self)

    def free_owner(self, owner: str) -> int:
        """Free every block of ``owner`` in every region; returns the bytes freed."""
        return sum(a.free_owner(owner) for a in self._allocators.values())

    def reset(self) -> None:
        """Free everything in every region."""
        for a in self._allocators.values():
            a.reset()

    def memory_map(self) -> "MemoryMap":
        """A snapshot of every region's usage and blocks (later allocations do not change it)."""
        return MemoryMap.from_allocators(self._allocators.values())

    def __repr__(self) -> str:
        return f"MemoryLayout({', '.join(self._allocators)})"


