"""Automatic layout (the default): placement from the device's memory, plan(), fits(), and the
allocator's invariants under random use."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES
from utvm_host import LayoutError, Session, build
from utvm_host.layout import MemoryLayout

KiB = 1024
#: The fixed sizes a µTVM-era config carried (its text section was 16 KiB).
MICRO_TVM_STYLE = {"text": 16 * KiB, "rodata": 8 * KiB, "data": 4 * KiB, "bss": 4 * KiB}


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    """A library with 30-80 KB of code (by target): more than a µTVM-style text section holds."""
    path = tmp_path_factory.mktemp("big") / "big_kernels.c"
    lines = ["#include <stdint.h>"]
    for i in range(96):
        lines.append(f"int32_t k{i}(const int32_t *x, int32_t *y, int32_t n) {{ int32_t acc = {i};\n"
                     f"  for (int32_t j = 0; j < n; j++) {{ acc = acc * {i + 3} + x[j]; y[j] = acc ^ (acc >> {i % 7 + 1}); }}\n"
                     "  return acc; }")
    path.write_text("\n".join(lines) + "\n")
    return path


class TestAutoLayout:
    def test_holds_what_fixed_defaults_cannot(self, cfg, big_source):
        lib = build([big_source], cfg, cflags=["-O3", "-funroll-all-loops"])
        fixed = cfg.copy()
        for kind, size in MICRO_TVM_STYLE.items():
            fixed["mem_layout"][kind]["size"] = size          # the seed's idiom: a hand layout
        with Session(fixed) as sess:
            with pytest.raises(LayoutError) as e:
                sess.load(lib)
            assert e.value.region == "text" and e.value.needed > 16 * KiB
        with Session(cfg) as sess:                            # layout="auto": no sizes anywhere
            assert sess.layout.automatic
            mod = sess.load(lib)
            vadd = sess.load(build([EXAMPLES / "vadd.c", EXAMPLES / "matmul.c"], cfg))
            x = np.arange(32, dtype=np.int32)
            y = np.zeros(32, np.int32)
            acc = mod["k5"](x, y, 32)
            want = 5
            for v in x:
                want = (want * 8 + int(v)) & 0xFFFFFFFF
            assert acc == (want - (1 << 32) if want >= 1 << 31 else want)
            a = np.ones(8, np.float32); c = np.zeros(8, np.float32)
            vadd["vadd"](a, a, c, 8)
            np.testing.assert_array_equal(c, 2 * a)

    def test_plan_checks_the_whole_set_before_any_upload(self, cfg, big_source):
        with Session(cfg) as sess:
            libs = [build([EXAMPLES / "vadd.c"], cfg), build([EXAMPLES / "dot.c"], cfg)]
            heap = sess.region_for("heap")
            before = sess.memory_map().to_dict()
            too_much = [((heap.free_bytes // 4,), "float32"), ((heap.free_bytes // 4,), "float32")]
            with pytest.raises(LayoutError) as e:
                sess.plan(libs, tensors=too_much)
            n = heap.free_bytes // 4
            text = str(e.value)
            assert text.startswith(f"cannot place {4 * n:,} bytes of tensor float32[{n}] in memory region "
                                   f"'{heap.name}' (capacity {heap.size:,}, used ")
            assert "runtime " in text.split("; it holds: ", 1)[1] and text.endswith(
                "; free tensors or unload a library you no longer need, or give the device more memory (cfg[\"memory\"])")
            assert sess.memory_map().to_dict() == before          # nothing reserved, nothing sent
            plan = sess.plan(libs, tensors=[((64,), "float32")])
            planned = [r for r in plan.rows if r.owner.startswith("planned") or r.owner == "planned"]
            assert {r.owner for r in planned} == {"planned vadd", "planned dot", "planned"}
            vadd_text = next(r for r in planned if r.owner == "planned vadd" and r.what == ".text")
            mod = sess.load(libs[0])                                # uses its reservation
            assert next(b for b in mod.image.blocks if b.what == ".text").start == vadd_text.start
            t = sess.empty((64,), "float32")                       # takes the planned tensor room
            assert not [r for r in sess.memory_map().rows if r.owner == "planned"] and t.nbytes == 256

    def test_fits_answers_without_loading(self, cfg, big_source):
        with Session(cfg) as sess:
            lib = build([EXAMPLES / "vadd.c"], cfg)
            before = sess.memory_map().to_dict()
            assert sess.fits(lib) is True
            assert sess.memory_map().to_dict() == before
            heap = sess.region_for("heap")
            hog = sess.empty((heap.largest_free,), "uint8")           # fill the data region
            code = sess.region_for("text")
            if code is heap:                                          # one region for all: now full
                assert sess.fits(lib) is False
            hog.free()
            assert sess.fits(lib) is True


KINDS = {"text": ["code", "ram"], "rodata": ["code", "ram"], "heap": ["ram"], "data": ["ram"]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 3000), st.sampled_from([1, 4, 16, 64]),
                          st.booleans()), max_size=60))
def test_random_place_and_free_keeps_the_invariants(ops):
    layout = MemoryLayout([("code", 0x1000, 8192, 16), ("ram", 0x20000000, 16384, 16)], kinds=KINDS)
    live = []
    for kind, size, align, free_one in ops:
        if free_one and live:
            layout.free(live.pop(len(live) // 2))
        else:
            try:
                live.append(layout.place(kind, size, owner="t", what=kind, align=align))
            except LayoutError as e:
                assert e.needed == size and str(e).startswith(f"cannot place {size:,} bytes of {kind}")
        for region in layout:
            blocks = sorted((b for b in region.blocks() if b.size), key=lambda b: b.start)
            for a, b in zip(blocks, blocks[1:]):
                assert a.end <= b.start                                 # no two live blocks overlap
            assert all(region.start <= b.start and b.end <= region.end for b in blocks)
            assert region.used + region.free_bytes == region.size       # free space is conserved
            assert region.used == sum(b.size for b in region.blocks())
    for block in live:
        layout.free(block)
    assert [(r.used, r.free_ranges()) for r in layout] == [(0, [(0x1000, 8192)]), (0, [(0x20000000, 16384)])]


def test_memory_map_picture(host_cfg, tmp_path):
    with Session(host_cfg) as sess:
        sess.load(build([EXAMPLES / "vadd.c"], host_cfg))
        t = sess.tensor(np.zeros(1000, np.float32))
        mm = sess.memory_map()
        out = mm.plot(str(tmp_path / "map.png"), title="host device")
    data = (tmp_path / "map.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, int(110 * (1.1 + 0.9 * len(mm.regions))))
    assert out == str(tmp_path / "map.png")
    text = str(mm)
    assert "vadd" in text and "tensor float32[1000]" in text and "runtime" in text
    assert t.nbytes == 4000


def test_map_reports_measured_stack_and_workspace(cfg):
    from helpers import KERNELS
    with Session(cfg) as sess:
        mod = sess.load(build([KERNELS / "checked.c"], cfg, include_dirs=[KERNELS / "inc"]))
        x = np.arange(300, dtype=np.int32)
        y = np.zeros(300, np.int32)
        assert mod["reverse_ws"](x, y, 300) == 0
        notes = sess.memory_map().notes
        usage = mod.library.stack_usage
        assert set(usage) == {"checked_scale", "reverse_ws", "greedy_ws"}   # checked.c's functions, no shims
        # Each calls out (the error API, the workspace allocator), so each frame holds at least
        # the return address; reverse_ws keeps five values live across its calls, greedy_ws none.
        assert all(n >= cfg.pointer_size for n in usage.values()), usage
        assert usage["reverse_ws"] > usage["greedy_ws"], usage
        fn = max(usage, key=lambda f: (usage[f], f))
        assert notes[0] == (f"stack: {sess.stack_block.size:,} bytes reserved; the largest kernel frame is "
                            f"{usage[fn]:,} bytes ({fn} in checked; gcc -fstack-usage, calls add up)")
        # 1,200 + 64 bytes asked for, each block with a 16-byte header: the runtime's own count
        assert notes[1] == (f"workspace: {sess._workspace_block.size:,} bytes "
                            "reserved; the last call used 1,296 at most")
