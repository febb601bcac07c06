"""The device runtime's own guarantees, on real devices: a kernel that writes past its workspace
buffer fails with a KernelError naming it (the runtime checks its block headers), freeing NULL
is a no-op, and Cortex-M's SysTick counter times kernels longer than its 24 bits.

The runtime's C is also unit-tested and fuzzed on this machine (tests/device_c)."""
from __future__ import annotations

import re
import statistics

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, device_cfg, vadd_works
from utvm_host import KernelError, Session, build, devices

DEVICES = ["host", "spike-rv32", "qemu-cortex-m3"]

#: Four words a kernel writes past its 64-byte buffer: to the runtime before it checked its
#: headers, {size 48, free} (rv32) or {size 48} (64-bit), a plausible free block.
FREE_BLOCK = np.array([48, 0, 0, 0], np.int32)
#: The header of the block after the first one: its header (16 bytes) and 64 bytes of data.
SECOND_HEADER = 16 + 64

CORRUPTED = ("the workspace is corrupted: a kernel wrote past its buffer over the block header at "
             r"0x([0-9a-f]+)")


@pytest.fixture(scope="module", params=DEVICES)
def rt(request):
    cfg = device_cfg(request.param)
    with Session(cfg) as sess:
        mods = sess.load(build([KERNELS / "ws_guard.c", EXAMPLES / "vadd.c"], cfg))
        yield sess, mods


def header_named(text: str, sess) -> int:
    """The header address the runtime's corruption error names, as an offset into the workspace."""
    m = re.search(CORRUPTED, text)
    assert m, text
    return int(m.group(1), 16) - sess._workspace_block.start


def still_works(mods) -> None:
    """The session is usable after the error: the workspace is sound in the next call."""
    assert mods["ws_clean"](1000) == 1
    vadd_works(mods)


class TestWorkspaceOverrun:
    def test_an_overrun_onto_a_live_block_is_a_kernel_error(self, rt):
        # Before the check the runtime trusted the header: the next allocation handed out the
        # live block behind it a second time (the kernel returned 1), and the only error was a
        # misleading one from freeing that block twice.
        sess, mods = rt
        with pytest.raises(KernelError) as e:
            mods["ws_overrun_live"](FREE_BLOCK, 4)
        assert e.value.kernel == "ws_overrun_live"
        assert re.fullmatch(r"kernel 'ws_overrun_live' failed \(returned 0\): " + CORRUPTED, str(e.value))
        assert header_named(e.value.text, sess) == SECOND_HEADER
        still_works(mods)

    def test_an_overrun_no_call_sees_is_found_after_the_task(self, rt):
        # The kernel writes over the free rest's header and returns: the runtime's check after
        # the task names it (before: no error at all).
        sess, mods = rt
        with pytest.raises(KernelError) as e:
            mods["ws_overrun_quiet"](FREE_BLOCK, 4)
        assert e.value.kernel == "ws_overrun_quiet"
        assert header_named(str(e.value), sess) == SECOND_HEADER
        still_works(mods)

    def test_in_a_batch_the_kernel_that_did_it_is_named(self, rt):
        # The next call in the batch is the first to use the workspace again: before the check
        # after each task it was handed the forged block, and nobody failed.
        sess, mods = rt
        junk = sess.tensor(FREE_BLOCK)
        calls = [mods["ws_clean"].bind(64), mods["ws_overrun_quiet"].bind(junk, 4), mods["ws_clean"].bind(32)]
        try:
            with pytest.raises(KernelError) as e:
                sess.run_batch(calls)
            assert e.value.kernel == "ws_overrun_quiet"
            assert re.search(CORRUPTED, str(e.value))
            sess.run_batch([calls[0], calls[2]])   # the same batch without it runs
        finally:
            for c in calls:
                c.free()
            junk.free()
        still_works(mods)

    def test_an_overrun_within_the_blocks_rounding_is_harmless(self, rt):
        # 60 bytes asked, 64 given: writing the last 4 is not past the block
        _, mods = rt
        assert mods["ws_overrun_live"](np.zeros(0, np.int32), 0) == 0
        still_works(mods)


def test_freeing_null_is_a_no_op(rt):
    _, mods = rt
    assert mods["ws_free_null"](0) == 0        # before: -1 and a KernelError
    still_works(mods)


def test_systick_times_kernels_longer_than_its_24_bits():
    """QEMU's Cortex-M has no DWT: the counter is SysTick, 24 bits. A kernel several wraps long
    is counted in full: its count is the short run's times the ratio of the loop lengths. QEMU
    runs with -icount (one instruction a tick), so SysTick follows the instructions, not the
    host's clock, and a loaded machine cannot skew the ratio. Before, one wrap at most was seen
    between two reads: every count stayed below 2 x 2^24."""
    device_cfg("qemu-cortex-m3")   # QEMU and the compiler are there (or the test is skipped/failed)
    cfg = devices.qemu("cortex-m3", icount=True)
    with Session(cfg) as sess:
        mod = sess.load(build([KERNELS / "ws_guard.c"], cfg, cflags=["-O1"]))
        te = mod.time_evaluator("spin", number=1, repeat=1)
        short_n = 1 << 20
        counts = [te(short_n).values[0] for _ in range(3)]
        while statistics.median(counts) < (1 << 21) and short_n < (1 << 26):   # at least 1/8 of a wrap
            short_n *= 4
            counts = [te(short_n).values[0] for _ in range(3)]
        short = statistics.median(counts)
        assert short < (1 << 24), counts
        ratio = max(2, round(5 * (1 << 24) / short))     # about five wraps: ~3 s at 25 MHz
        long_n = short_n * ratio
        assert long_n < (1 << 32)
        count = te(long_n).values[0]
        assert count > 2 * (1 << 24), (count, short, ratio)
        assert 0.4 * ratio * short < count < 2.5 * ratio * short, (count, short, ratio)
        # and the short run is still what it was: the counter's state survived the long one
        again = te(short_n).values[0]
        assert 0.4 * short < again < 2.5 * short, (again, short)


@pytest.mark.parametrize("name", ["qemu-cortex-m3", "qemu-cortex-m33"])
def test_the_first_measurement_of_a_session_counts(name):
    """SysTick counts from its first reload after the runtime starts it, which QEMU does from its
    timer thread a moment later: the runtime waits for it, so the very first measurement of a
    fresh device counts cycles (before: three times in four, every repeat read 0)."""
    cfg = device_cfg(name)
    lib = build([KERNELS / "ws_guard.c"], cfg, cflags=["-O1"])
    for _ in range(3):
        with Session(cfg) as sess:
            r = sess.load(lib).time_evaluator("spin", number=5, repeat=4)(20000)
            assert min(r.values) > 0, r.values
