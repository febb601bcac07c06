"""time_evaluator: device-side timing in one round trip, counts named for what they are."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, is_host
from utvm_host import KernelError, UtvmError, build


@pytest.fixture(scope="module")
def mods(sess, cfg):
    return sess.load(build([KERNELS / "mixed.c", EXAMPLES / "matmul.c"], cfg, cflags=["-O1"]))


class TestTimeEvaluator:
    def test_number_and_repeat_are_honoured_and_outputs_correct(self, cfg, mods):
        a = np.arange(64, dtype=np.float32).reshape(8, 8)
        c = np.zeros_like(a)
        r = mods.time_evaluator("matmul", number=7, repeat=4)(a, a, c, 8)
        assert (r.number, r.repeat, len(r.values)) == (7, 4, 4)
        np.testing.assert_allclose(c, a @ a)                  # the kernel really ran, outputs came back
        expected = {"host": "nanoseconds"}.get("host" if is_host(cfg) else "", None)
        if is_host(cfg):
            assert r.counter == "nanoseconds" and all(v > 0 for v in r.values)
            assert len(r.results) == 4 and 0 < r.mean < 0.01 and r.median > 0
            # the statistics are over the seconds (not the counts), std the population one
            assert r.mean == pytest.approx(np.mean(r.results), rel=1e-12)
            assert r.median == pytest.approx(np.median(r.results), rel=1e-12)
            assert r.std == pytest.approx(np.std(r.results), rel=1e-9, abs=1e-18)
            assert abs(r.results[0] - r.values[0] / 1e9) < 1e-15
        elif cfg["transport"].get("launch") == "spike":
            assert r.counter == "instructions"
            assert len(set(r.values)) == 1 and r.values[0] > 0  # exact: every repeat the same
            assert abs(r.mean - r.values[0] / 100e6) < 1e-12     # seconds at the configured 100 MHz
        elif cfg.abi["elf_machine"] == "EM_RISCV":
            # QEMU's counters follow the host's clock: on a loaded machine one repeat can come in
            # under the loop overhead subtracted from it, so the median is what must be positive
            assert r.counter == "cycles" and sorted(r.values)[2] > 0
            with pytest.raises(UtvmError) as e:
                r.mean
            assert str(e.value) == ("the device counts cycles at an unknown rate, so there are no seconds: set "
                                    "cfg['clock_hz'] (the raw counts are in .values)")
        else:   # Cortex-M under QEMU: SysTick at the 25 MHz core clock (QEMU has no DWT), host-clocked
            assert r.counter == "cycles" and sorted(r.values)[2] > 0
            assert abs(r.mean - sum(r.values) / 4 / 25e6) < 1e-12
        assert expected in (None, "nanoseconds")

    def test_one_repeat_matches_many(self, cfg, mods):
        # repeat=1 returns its count in registers, repeat=3 through memory: the same loop, the same kind of count.
        # Where the count is time (QEMU, the host), the loop is long enough that the loop overhead the
        # evaluator subtracts, measured apart, cannot outweigh it on a loaded machine.
        n = 500 if cfg["transport"].get("launch") == "spike" else 200_000
        one = mods.time_evaluator("count_loop", number=4, repeat=1)(n)
        three = mods.time_evaluator("count_loop", number=4, repeat=3)(n)
        if cfg["counter"]["name"] == "none":
            assert one.values == [0.0] and three.values == [0.0] * 3
        elif cfg["transport"].get("launch") == "spike":
            assert one.values == [three.values[0]] and one.values[0] > 500  # exact: identical
        else:
            assert one.values[0] > 0 and min(three.values) > 0

    def test_plain_calls_work_after_timing(self, mods):
        assert mods["add_u64"](2, 3) == 5
        mods.time_evaluator("nothing", number=3)()
        assert mods["add_u64"](2, 5) == 7

    def test_spike_counts_are_exact_and_scale_with_the_loop(self, cfg, mods):
        if cfg["transport"].get("launch") != "spike":
            pytest.skip("only Spike counts retired instructions exactly (QEMU and the host count time, which varies)")
        te = mods.time_evaluator("count_loop", number=5, repeat=2)
        r1, r1_again, r2 = te(1000), te(1000), te(2000)
        assert r1.values == r1_again.values                     # the same count twice
        per_iteration = (r2.values[0] - r1.values[0]) / 1000
        assert per_iteration == int(per_iteration) and 2 <= per_iteration <= 4   # nop, addi, bne (+ c.j)
        # A loop written in assembly: addi + bnez, two instructions an iteration, as its source says.
        asm = mods.time_evaluator("count_asm", number=5, repeat=1)
        a1, a2 = asm(1000), asm(3000)
        assert a2.values[0] - a1.values[0] == 4000
        # What is left besides the loop (the call through the shim, the prologue) is a few
        # instructions once the measured loop overhead is subtracted.
        assert 0 <= a1.values[0] - 2000 <= 20

    def test_min_repeat_ms_grows_number(self, cfg, mods):
        if not is_host(cfg):
            pytest.skip("min_repeat_ms is checked on the host, whose counter is real time; simulator seconds are modelled from cfg['clock_hz']")
        r = mods.time_evaluator("count_loop", number=1, repeat=2, min_repeat_ms=5)(20000)
        assert r.number > 1 and r.number * r.mean >= 0.004

    def test_bad_arguments(self, mods):
        with pytest.raises(TypeError) as e:
            mods.time_evaluator("nothing", number=0)
        assert str(e.value) == "number must be a positive integer, got 0"
        with pytest.raises(TypeError) as e:
            mods.time_evaluator("nothing", repeat=0)
        assert str(e.value) == "repeat must be a positive integer, got 0"
        with pytest.raises(ValueError) as e:
            mods.time_evaluator("nothing", repeat=65)
        assert str(e.value) == ("repeat=65 is more than the 64 measurements the device runtime keeps per run; ask "
                                "for fewer, or raise cfg['runtime']['repeats']")


def test_kernel_error_while_timing(sess, cfg):
    checked = sess.load(build([KERNELS / "checked.c"], cfg, include_dirs=[KERNELS / "inc"]))
    x = np.ones(4, np.float32)
    with pytest.raises(KernelError) as e:
        checked.time_evaluator("checked_scale", number=5)(x, np.zeros(4, np.float32), 0)
    assert str(e.value) == "kernel 'checked_scale' failed (returned -1): checked_scale: n must be positive"
