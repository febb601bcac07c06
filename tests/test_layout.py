"""Tests of utvm_host.layout: alignment, first fit, coalescing, errors, layouts and memory maps."""
from __future__ import annotations

import json
import random
from typing import List, Optional, Tuple

import numpy as np
import pytest

from utvm_host.errors import ConfigError, LayoutError
from utvm_host.layout import (Block, MapRow, MemoryLayout, MemoryMap, RegionUsage,
                              SectionAllocator, align_up)


@pytest.fixture
def text() -> SectionAllocator:
    return SectionAllocator("text", 0x1000, 1024, align=4)


def _alloc(a: SectionAllocator, size: int, owner: str = "lib.o", what: str = ".text", **kw) -> Block:
    return a.alloc(size, owner=owner, what=what, **kw)


def _layout_error(a: SectionAllocator, size: int, **kw) -> LayoutError:
    kw.setdefault("owner", "lib.o")
    kw.setdefault("what", ".text")
    with pytest.raises(LayoutError) as info:
        a.alloc(size, **kw)
    return info.value


class TestAlignUp:
    @pytest.mark.parametrize("value,align,expected", [
        (0, 1, 0), (7, 1, 7), (0, 8, 0), (1, 8, 8), (8, 8, 8), (9, 8, 16),
        (0x1001, 0x1000, 0x2000), (-3, 4, 0),
    ])
    def test_values(self, value, align, expected):
        assert align_up(value, align) == expected

    @pytest.mark.parametrize("align", [0, -4, 3, 12, 2.0, "4", True])
    def test_bad_alignment(self, align):
        with pytest.raises(ValueError):
            align_up(5, align)

    def test_numpy_integers(self):
        result = align_up(np.int64(5), np.uint32(4))
        assert result == 8 and type(result) is int


class TestConstruction:
    def test_properties(self, text):
        assert (text.name, text.start, text.size, text.end, text.align) == ("text", 0x1000, 1024, 0x1400, 4)
        assert (text.used, text.free_bytes, text.largest_free) == (0, 1024, 1024)
        assert text.blocks() == [] and text.free_ranges() == [(0x1000, 1024)]

    @pytest.mark.parametrize("start,size,align", [(-1, 16, 1), (0, -16, 1), (0, 16, 3), (0, 16, 0)])
    def test_invalid(self, start, size, align):
        with pytest.raises(ConfigError):
            SectionAllocator("r", start, size, align)

    def test_empty_region(self):
        a = SectionAllocator("r", 0x100, 0)
        assert a.free_ranges() == [] and a.largest_free == 0 and not a.fits(1) and a.fits(0)


class TestAlignment:
    def test_starts_use_region_alignment(self, text):
        b1 = _alloc(text, 3)
        b2 = _alloc(text, 5)
        b3 = _alloc(text, 1)
        assert [(b.start, b.size) for b in (b1, b2, b3)] == [(0x1000, 3), (0x1004, 5), (0x100C, 1)]
        assert text.used == 9                     # padding is free space, not used
        assert text.free_ranges() == [(0x1003, 1), (0x1009, 3), (0x100D, 1024 - 13)]

    def test_request_alignment_larger_than_region_alignment(self, text):
        _alloc(text, 4)
        b = _alloc(text, 8, align=64)
        assert b.start == 0x1040
        assert text.free_ranges() == [(0x1004, 0x3C), (0x1048, 1024 - 0x48)]

    def test_request_alignment_smaller_than_region_alignment(self, text):
        _alloc(text, 1)
        assert _alloc(text, 1, align=1).start == 0x1004

    def test_unaligned_region_start(self):
        a = SectionAllocator("args", 0x1003, 64, align=8)
        assert _alloc(a, 4).start == 0x1008
        assert a.free_ranges() == [(0x1003, 5), (0x100C, 64 - 9)]

    def test_padding_hole_reused(self, text):
        _alloc(text, 4)
        _alloc(text, 16, align=16)                # leaves [0x1004, 0x1010) free
        assert _alloc(text, 12).start == 0x1004

    def test_bad_args(self, text):
        with pytest.raises(ValueError):
            _alloc(text, 4, align=3)
        with pytest.raises(ValueError, match="size must be >= 0"):
            _alloc(text, -1)
        with pytest.raises(ValueError):
            text.fits(-1)
        assert text.used == 0 and text.blocks() == []

    def test_numpy_size_becomes_python_int(self, text):
        b = _alloc(text, np.int64(12))
        assert b.size == 12 and type(b.size) is int


class TestFirstFit:
    def test_freed_hole_reused_by_lowest_address(self, text):
        a, b, c, d = (_alloc(text, 64, owner=n) for n in "abcd")
        text.free(b)
        text.free(d)                               # d's space merges with the tail
        e = _alloc(text, 32, owner="e")
        assert e.start == b.start                 # first hole, not the large tail
        f = _alloc(text, 64, owner="f")
        assert f.start == d.start                 # remaining 32-byte hole too small
        assert text.free_ranges() == [(b.start + 32, 32), (f.end, 1024 - 256)]

    def test_exact_fit_consumes_hole(self, text):
        a, b, c = (_alloc(text, 64) for _ in range(3))
        text.free(b)
        assert _alloc(text, 64).start == b.start
        assert text.free_ranges() == [(c.end, 1024 - 192)]

    def test_full_region(self, text):
        b = _alloc(text, 1024)
        assert (b.start, b.end) == (0x1000, 0x1400)
        assert text.free_bytes == 0 and text.largest_free == 0 and text.free_ranges() == []
        assert not text.fits(1) and text.fits(0)
        text.free(b)
        assert text.free_ranges() == [(0x1000, 1024)]

    def test_fits(self, text):
        _alloc(text, 1000)
        assert text.fits(24) and not text.fits(25)
        assert not text.fits(20, align=16)        # 0x13E8 -> 0x13F0 leaves 16 bytes


class TestCoalescing:
    @pytest.fixture
    def four(self, text) -> List[Block]:
        return [_alloc(text, 0x40, owner=f"b{i}") for i in range(4)]   # tail free from 0x1100

    def test_no_neighbour(self, text, four):
        text.free(four[1])
        assert text.free_ranges() == [(0x1040, 0x40), (0x1100, 0x300)]

    def test_left_neighbour(self, text, four):
        text.free(four[1])
        text.free(four[2])                          # left neighbour is free
        assert text.free_ranges() == [(0x1040, 0x80), (0x1100, 0x300)]

    def test_right_neighbour(self, text, four):
        text.free(four[2])
        text.free(four[1])                          # right neighbour is free
        assert text.free_ranges() == [(0x1040, 0x80), (0x1100, 0x300)]

    def test_both_neighbours(self, text, four):
        text.free(four[0])
        text.free(four[2])
        assert text.free_ranges() == [(0x1000, 0x40), (0x1080, 0x40), (0x1100, 0x300)]
        text.free(four[1])                          # merges with both sides
        assert text.free_ranges() == [(0x1000, 0xC0), (0x1100, 0x300)]
        assert text.largest_free == 0x300 and text.free_bytes == 0x3C0
        text.free(four[3])                          # and again: hole + block + tail
        assert text.free_ranges() == [(0x1000, 1024)]

    def test_everything_freed(self, text, four):
        for b in (four[3], four[0], four[2], four[1]):
            text.free(b)
        assert text.free_ranges() == [(0x1000, 1024)] and text.used == 0 and text.blocks() == []

    def test_padding_coalesces(self, text):
        a = _alloc(text, 1)
        b = _alloc(text, 1)                         # at 0x1004; [0x1001, 0x1004) is padding
        text.free(a)
        assert text.free_ranges() == [(0x1000, 4), (0x1005, 1024 - 5)]
        text.free(b)
        assert text.free_ranges() == [(0x1000, 1024)]


class TestFree:
    def test_double_free_names_block(self, text):
        b = _alloc(text, 64, owner="resnet.o", what=".rodata")
        text.free(b)
        with pytest.raises(ValueError) as info:
            text.free(b)
        assert str(info.value) == ("cannot free 64 bytes of .rodata from 'resnet.o' at 0x1000 in region "
                                   "'text': it is not allocated in region 'text' "
                                   "(freed twice, or allocated elsewhere)")
        assert text.free_ranges() == [(0x1000, 1024)]

    def test_foreign_block(self, text):
        other = SectionAllocator("data", 0x1000, 1024, align=4)
        b = _alloc(other, 16, owner="", what="tensor int8[16]")
        _alloc(text, 16)
        with pytest.raises(ValueError) as info:
            text.free(b)
        assert str(info.value) == ("cannot free 16 bytes of tensor int8[16] at 0x1000 in region 'data': "
                                   "it is not allocated in region 'text' (freed twice, or allocated elsewhere)")
        with pytest.raises(ValueError, match="not allocated"):
            text.free(Block("text", 0x1000, 8, "lib.o", ".text"))   # right place, wrong size
        assert text.used == 16 and other.used == 16

    def test_not_a_block(self, text):
        with pytest.raises(ValueError, match="cannot free 4096"):
            text.free(4096)

    def test_free_owner(self, text):
        _alloc(text, 10, owner="a.o")
        b1 = _alloc(text, 20, owner="b.o")
        _alloc(text, 30, owner="a.o", what=".rodata")
        _alloc(text, 0, owner="a.o", what=".bss")
        assert text.free_owner("a.o") == 40
        assert text.blocks() == [b1]
        assert text.free_ranges() == [(0x1000, b1.start - 0x1000), (b1.end, 0x1400 - b1.end)]
        assert text.free_owner("a.o") == 0 and text.free_owner("nobody") == 0

    def test_free_bytes_value(self, text):
        b = _alloc(text, 100)
        assert text.free_bytes == 924 and text.free_bytes + 1 == 925 and f"{text.free_bytes:,}" == "924"
        assert json.dumps(text.free_bytes) == "924"
        text.free(b)
        assert text.free_bytes == 1024 and text.blocks() == []

    def test_reset(self, text):
        _alloc(text, 10)
        _alloc(text, 20)
        text.reset()
        assert text.used == 0 and text.blocks() == [] and text.free_ranges() == [(0x1000, 1024)]

    def test_contains(self, text):
        b = _alloc(text, 8)
        assert b in text
        text.free(b)
        assert b not in text


class TestZeroSize:
    def test_zero_size_in_empty_region(self, text):
        z = _alloc(text, 0, what="tensor float32[0]", owner="")
        assert (z.start, z.size, z.end) == (0x1000, 0, 0x1000)
        assert text.used == 0 and text.free_ranges() == [(0x1000, 1024)]
        assert text.blocks() == [z]

    def test_zero_size_does_not_break_coalescing(self, text):
        a = _alloc(text, 16)
        z = _alloc(text, 0)
        b = _alloc(text, 16)
        assert (z.start, b.start) == (0x1010, 0x1010)
        assert text.blocks() == [a, z, b]
        text.free(a)
        text.free(b)
        assert text.free_ranges() == [(0x1000, 1024)]
        text.free(z)
        assert text.free_ranges() == [(0x1000, 1024)] and text.blocks() == []

    def test_zero_size_aligned(self, text):
        _alloc(text, 1)
        assert _alloc(text, 0, align=32).start == 0x1020

    def test_zero_size_in_full_region(self, text):
        _alloc(text, 1024)
        z = _alloc(text, 0)
        assert z.start == 0x1000 and text.free_ranges() == []

    def test_zero_size_without_aligned_address(self):
        a = SectionAllocator("tiny", 1, 2)
        e = _layout_error(a, 0, align=8)
        assert (e.needed, e.required_size) == (0, 7)

    def test_identical_zero_size_blocks_free_once_each(self, text):
        z1 = _alloc(text, 0)
        z2 = _alloc(text, 0)
        assert z1 == z2
        text.free(z1)
        text.free(z2)
        with pytest.raises(ValueError):
            text.free(z1)


class TestLayoutError:
    def test_plain_overflow(self):
        a = SectionAllocator("text", 0, 16384, align=4)
        _alloc(a, 1080, owner="runtime.o")
        e = _layout_error(a, 174704, owner="resnet.o", what=".text")
        assert str(e) == ("cannot place 174,704 bytes of .text from 'resnet.o' in region 'text' "
                          "(capacity 16,384, used 1,080, free 15,304): "
                          'set cfg["mem_layout"]["text"]["size"] >= 175,784')
        assert (e.region, e.what, e.owner, e.needed, e.capacity, e.used, e.free, e.largest_free,
                e.required_size) == ("text", ".text", "resnet.o", 174704, 16384, 1080, 15304, 15304, 175784)
        assert a.used == 1080 and len(a.blocks()) == 1

    def test_fragmentation(self):
        a = SectionAllocator("workspace", 0x20000000, 4096)
        blocks = [_alloc(a, 768, owner="", what=f"tensor uint8[768] #{i}") for i in range(4)]
        a.free(blocks[0])
        a.free(blocks[2])
        assert a.free_ranges() == [(0x20000000, 768), (0x20000600, 768), (0x20000C00, 1024)]
        e = _layout_error(a, 1200, owner="", what="tensor uint8[1200]")
        # required size: after the highest block (ends at offset 3072), not after `used` (1536)
        assert str(e) == ("cannot place 1,200 bytes of tensor uint8[1200] in region 'workspace' "
                          "(capacity 4,096, used 1,536, free 2,560, largest free block 1,024): "
                          'set cfg["mem_layout"]["workspace"]["size"] >= 4,272')
        assert (e.free, e.largest_free, e.required_size, e.owner) == (2560, 1024, 4272, None)

    def test_fragmentation_exact_capacity_used(self):
        a = SectionAllocator("text", 0x1000, 4096, align=4)
        blocks = [_alloc(a, 1024, owner=f"l{i}.o") for i in range(4)]
        a.free(blocks[0])
        a.free(blocks[2])
        e = _layout_error(a, 1536, owner="big.o")
        assert str(e) == ("cannot place 1,536 bytes of .text from 'big.o' in region 'text' "
                          "(capacity 4,096, used 2,048, free 2,048, largest free block 1,024): "
                          'set cfg["mem_layout"]["text"]["size"] >= 5,632')

    def test_alignment_blocks_fit(self):
        a = SectionAllocator("data", 0, 64)
        _alloc(a, 1, what=".data")
        e = _layout_error(a, 32, what=".data", owner="m.o", align=64)
        assert str(e) == ("cannot place 32 bytes of .data from 'm.o' in region 'data' "
                          "(capacity 64, used 1, free 63, largest free block 63): "
                          'set cfg["mem_layout"]["data"]["size"] >= 96')

    def test_required_size_aligned_after_high_water(self):
        a = SectionAllocator("args", 0x100, 64, align=4)
        _alloc(a, 10, owner="", what="args")
        e = _layout_error(a, 60, owner="", what="args", align=16)
        assert str(e) == ("cannot place 60 bytes of args in region 'args' (capacity 64, used 10, free 54): "
                          'set cfg["mem_layout"]["args"]["size"] >= 76')

    def test_owner_absent_and_hint(self):
        a = SectionAllocator("workspace", 0x20000000, 65536, align=8)
        e = _layout_error(a, 400000, owner="", what="tensor float32[100000]",
                          hint="or free tensors you no longer need")
        assert str(e) == ("cannot place 400,000 bytes of tensor float32[100000] in region 'workspace' "
                          "(capacity 65,536, used 0, free 65,536): "
                          'set cfg["mem_layout"]["workspace"]["size"] >= 400,000; '
                          "or free tensors you no longer need")
        assert e.owner is None and e.what == "tensor float32[100000]" and e.required_size == 400000

    def test_hint_with_owner(self):
        a = SectionAllocator("text", 0, 100)
        e = _layout_error(a, 101, owner="a.o", hint="or build with -Os")
        assert str(e).endswith('>= 101; or build with -Os')

    def test_empty_region(self):
        a = SectionAllocator("heap", 0x3000, 0, align=8)
        e = _layout_error(a, 8, owner="", what="heap")
        assert str(e) == ("cannot place 8 bytes of heap in region 'heap' (capacity 0, used 0, free 0): "
                          'set cfg["mem_layout"]["heap"]["size"] >= 8')

    def test_is_utvm_error(self):
        from utvm_host.errors import UtvmError
        a = SectionAllocator("text", 0, 4)
        assert isinstance(_layout_error(a, 5), UtvmError)


REGIONS = [("text", 0x1000, 0x400, 4), ("rodata", 0x1400, 0x100, 4), ("data", 0x1500, 0x100, 8),
           ("workspace", 0x20000000, 0x10000, 16)]


class TestMemoryLayout:
    def test_order_and_lookup(self):
        layout = MemoryLayout(REGIONS)
        assert layout.names == ["text", "rodata", "data", "workspace"]
        assert [a.name for a in layout] == layout.names
        assert len(layout) == 4 and "data" in layout and "bss" not in layout
        ws = layout["workspace"]
        assert (ws.start, ws.size, ws.align) == (0x20000000, 0x10000, 16)
        assert layout["workspace"] is ws

    def test_unknown_region(self):
        layout = MemoryLayout(REGIONS[:2])
        with pytest.raises(KeyError, match=r"no region 'bss' in this layout \(regions: text, rodata\)"):
            layout["bss"]

    def test_duplicate_and_overlap(self):
        with pytest.raises(ConfigError, match="region 'text' is defined twice"):
            MemoryLayout([("text", 0, 16, 1), ("text", 16, 16, 1)])
        with pytest.raises(ConfigError, match=r"region 'data' \[0x8, 0x18\) overlaps region 'text' \[0x0, 0x10\)"):
            MemoryLayout([("text", 0, 16, 1), ("data", 8, 16, 1)])
        with pytest.raises(ConfigError):
            MemoryLayout([("text", 0, 16, 3)])
        with pytest.raises(ConfigError):
            MemoryLayout([("text", 0, 16)])
        MemoryLayout([("a", 0, 16, 1), ("b", 16, 16, 1), ("c", 8, 0, 1)])   # touching / empty: fine

    def test_free_owner_and_reset(self):
        layout = MemoryLayout(REGIONS)
        _alloc(layout["text"], 100, owner="a.o")
        _alloc(layout["rodata"], 20, owner="a.o", what=".rodata")
        _alloc(layout["data"], 8, owner="b.o", what=".data")
        assert layout.free_owner("a.o") == 120
        assert layout["text"].used == 0 and layout["data"].used == 8
        layout.reset()
        assert all(a.used == 0 for a in layout)


def _small_layout() -> MemoryLayout:
    layout = MemoryLayout([("text", 0x1000, 0x400, 4), ("data", 0x1400, 0x100, 8),
                           ("workspace", 0x20000000, 0x10000, 16)])
    _alloc(layout["text"], 1080 - 1024 + 100, owner="runtime.o")
    _alloc(layout["text"], 64, owner="resnet.o", what=".text.fused")
    _alloc(layout["data"], 12, owner="resnet.o", what=".data")
    t = _alloc(layout["data"], 16, owner="", what="tensor int8[16]")
    _alloc(layout["data"], 8, owner="", what="tensor int8[8]")
    layout["data"].free(t)
    return layout


class TestMemoryMap:
    def test_snapshot_values(self):
        layout = _small_layout()
        m = layout.memory_map()
        assert m.regions == [
            RegionUsage("text", 0x1000, 1024, 220, 804, 804),
            RegionUsage("data", 0x1400, 256, 20, 236, 216),
            RegionUsage("workspace", 0x20000000, 65536, 0, 65536, 65536),
        ]
        assert m.rows == [
            MapRow("text", "runtime.o", ".text", 0x1000, 156),
            MapRow("text", "resnet.o", ".text.fused", 0x109C, 64),
            MapRow("data", "resnet.o", ".data", 0x1400, 12),
            MapRow("data", "", "tensor int8[8]", 0x1420, 8),
        ]
        _alloc(layout["workspace"], 32)
        assert m.regions[2].used == 0 and len(m.rows) == 4        # a snapshot

    def test_text(self):
        text = str(_small_layout().memory_map())
        assert text.splitlines() == [
            "text       0x00001000-0x00001400  capacity 1,024  used 220  free 804",
            "  runtime.o  .text           0x00001000  156",
            "  resnet.o   .text.fused     0x0000109c   64",
            "data       0x00001400-0x00001500  capacity 256  used 20  free 236  largest free block 216",
            "  resnet.o   .data           0x00001400   12",
            "  -          tensor int8[8]  0x00001420    8",
            "workspace  0x20000000-0x20010000  capacity 65,536  used 0  free 65,536",
            "  (empty)",
        ]

    def test_text_thousands_and_wide_addresses(self):
        a = SectionAllocator("heap", 0x7F0000000000, 2_000_000)
        _alloc(a, 1_234_567, owner="x", what="y")
        assert str(MemoryMap.from_allocators([a])).splitlines() == [
            "heap  0x7f0000000000-0x7f00001e8480  capacity 2,000,000  used 1,234,567  free 765,433",
            "  x  y  0x7f0000000000  1,234,567",
        ]

    def test_html_escapes_names(self):
        layout = MemoryLayout([("text", 0x1000, 0x400, 4)])
        _alloc(layout["text"], 8, owner="<script>alert('x')</script>", what="a&b")
        page = layout.memory_map()._repr_html_()
        assert "<script>" not in page and "alert('x')" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
        assert "a&amp;b" in page and "0x00001000" in page
        assert page.startswith("<table") and page.rstrip().endswith("</table>")
        assert page.count("<tr>") == 3             # column header, region header, one block

    def test_to_dict_is_json(self):
        m = _small_layout().memory_map()
        d = json.loads(json.dumps(m.to_dict()))
        assert d["regions"][1] == {"name": "data", "start": 0x1400, "size": 256, "used": 20,
                                   "free": 236, "largest_free": 216}
        assert d["rows"][3] == {"region": "data", "owner": "", "what": "tensor int8[8]",
                                "start": 0x1420, "size": 8}
        assert len(d["rows"]) == 4

    def test_empty_map(self):
        m = MemoryLayout([]).memory_map()
        assert str(m) == "" and m.to_dict() == {"regions": [], "rows": []}


def _model_first_fit(model: bytearray, base: int, size: int, align: int) -> Optional[int]:
    """Lowest aligned address whose [addr, addr+size) is free in the byte model."""
    for run_start, run_size in _model_runs(model, base):
        addr = align_up(run_start, align)
        if addr + size <= run_start + run_size:
            return addr
    return None


def _model_runs(model: bytearray, base: int) -> List[Tuple[int, int]]:
    runs, i, n = [], 0, len(model)
    while i < n:
        if model[i] == 0:
            j = i
            while j < n and model[j] == 0:
                j += 1
            runs.append((base + i, j - i))
            i = j
        else:
            i += 1
    return runs


@pytest.mark.parametrize("seed", range(8))
def test_random_against_byte_model(seed):
    rng = random.Random(seed)
    base = 0x2000 + rng.choice([0, 1, 3, 8])
    capacity = rng.choice([256, 1000, 4096])
    region_align = rng.choice([1, 4, 8])
    a = SectionAllocator("ws", base, capacity, region_align)
    model = bytearray(capacity)               # one byte per device byte: 0 = free, 1 = allocated
    live: List[Block] = []
    for _ in range(600):
        if live and rng.random() < 0.45:
            block = live.pop(rng.randrange(len(live)))
            a.free(block)
            for i in range(block.start - base, block.end - base):
                assert model[i] == 1
                model[i] = 0
        else:
            size = rng.choice([0, 1, 2, 3, 7, 16, 33, 64, 100, 250])
            align = rng.choice([1, 2, 4, 16, 64])
            eff = max(align, region_align)
            expected = _model_first_fit(model, base, size, eff) if size else None
            owner = f"o{rng.randrange(3)}"
            if size and expected is None:
                assert not a.fits(size, align)
                with pytest.raises(LayoutError) as info:
                    a.alloc(size, owner=owner, what="t", align=align)
                assert info.value.required_size > capacity
                continue
            block = a.alloc(size, owner=owner, what="t", align=align)
            assert block.start % eff == 0
            assert base <= block.start and block.end <= base + capacity
            if size:
                assert block.start == expected                      # first fit by address
                for i in range(block.start - base, block.end - base):
                    assert model[i] == 0                            # no overlap
                    model[i] = 1
            live.append(block)
        if rng.random() < 0.02:
            owner = f"o{rng.randrange(3)}"
            gone = [b for b in live if b.owner == owner]
            assert a.free_owner(owner) == sum(b.size for b in gone)
            for b in gone:
                model[b.start - base:b.end - base] = bytes(b.size)
            live = [b for b in live if b.owner != owner]
        used = model.count(1)
        assert a.used == used == sum(b.size for b in live)
        assert a.free_bytes == capacity - used
        runs = _model_runs(model, base)
        assert a.free_ranges() == runs                               # coalesced, sorted
        assert a.largest_free == max((s for _, s in runs), default=0)
        assert sorted(a.blocks(), key=lambda b: (b.start, b.size)) == a.blocks()
        assert len(a.blocks()) == len(live)
    for block in live:
        a.free(block)
    assert a.free_ranges() == [(base, capacity)] and a.used == 0
