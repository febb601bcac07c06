"""The layout layer: where code and data live in device memory.

A device's memory is split into named *regions* (``text``, ``rodata``, ``data``, ``bss``,
``args``, ``heap``, ``workspace``, ``stack``, ...). Each region is managed by a
:class:`SectionAllocator`, a first-fit allocator over the address range
``[start, start + size)`` that hands out :class:`Block` records and coalesces neighbouring free
space when blocks are freed. :class:`MemoryLayout` groups the allocators of one device, and
:class:`MemoryMap` is a printable, serialisable snapshot of who uses which bytes.

Units: every address, size and alignment in this module is in bytes; addresses are absolute
device addresses (not offsets into a region).

When a request does not fit, :meth:`SectionAllocator.alloc` raises
:class:`~utvm_host.errors.LayoutError` with a message that says what did not fit, how full the
region is, and the region size that would have held it, e.g.::

    cannot place 174,704 bytes of .text from 'resnet.o' in region 'text' (capacity 16,384,
    used 1,080, free 15,304): set cfg["mem_layout"]["text"]["size"] >= 175,784

(on one line).
"""
from .allocator import Block, MemoryLayout, SectionAllocator, align_up
from .memory_map import MapRow, MemoryMap, RegionUsage

__all__ = ["align_up", "Block", "SectionAllocator", "MemoryLayout", "MemoryMap", "MapRow", "RegionUsage"]
