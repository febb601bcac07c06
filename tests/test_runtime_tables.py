"""The device runtime's table sizes come from cfg["runtime"]."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, device_cfg
from utvm_host import ConfigError, KernelError, Session, build

DEVICES = ["host", "spike-rv32", "qemu-cortex-m3"]


@pytest.fixture(scope="module", params=DEVICES)
def small(request):
    """A session whose runtime keeps 5 tasks, 4 measurements and 48 bytes of error text."""
    cfg = device_cfg(request.param)
    cfg["runtime"] = {"tasks": 5, "repeats": 4, "error_text": 48}
    with Session(cfg) as sess:
        mods = sess.load(build([EXAMPLES / "vadd.c", KERNELS / "mixed.c"], cfg))
        yield sess, mods


def test_the_tables_have_the_configured_sizes(small):
    sess, _ = small
    assert (sess.max_tasks, sess.max_repeat) == (5, 4)
    assert sess._error_sizes["utvm_last_error"] == 48


def test_a_batch_longer_than_the_task_table_runs_in_rounds(small):
    sess, mods = small
    n = 16
    a = np.arange(n, dtype=np.float32)
    x = sess.tensor(a)
    ys = [sess.tensor(a + k) for k in range(12)]
    outs = [sess.empty(n, np.float32) for _ in range(12)]
    calls = [mods["vadd"].bind(x, ys[k], outs[k], n) for k in range(12)]
    sess.run_batch(calls)   # 12 calls through a 5-task table: 3 round trips
    for k in range(12):
        np.testing.assert_array_equal(outs[k].numpy(), a + a + k)


def test_repeat_is_limited_by_the_counter_table(small):
    sess, mods = small
    r = mods.time_evaluator("count_loop", number=2, repeat=4)(50)
    assert len(r.values) == 4
    with pytest.raises(ValueError) as e:
        mods.time_evaluator("count_loop", number=2, repeat=5)
    assert str(e.value) == ("repeat=5 is more than the 4 measurements the device runtime keeps per run; ask for "
                            "fewer, or raise cfg['runtime']['repeats']")


def test_error_text_is_cut_to_the_configured_length(small):
    sess, _ = small
    cfg = sess.cfg
    long = sess.load(build([KERNELS / "long_error.c"], cfg))
    with pytest.raises(KernelError) as e:
        long["long_error"](0)
    text = str(e.value)
    message = "long_error: " + "x" * 100
    cut = message[:48 - 4] + "..."    # 47 characters and the terminating zero; the cut is marked
    assert cut in text and message not in text
    with pytest.raises(KernelError) as e:   # short messages are whole
        long["long_error"](1)
    assert "long_error: short" in str(e.value)


class TestValidation:
    @pytest.mark.parametrize("runtime, message", [
        ({"task": 5}, "unknown key 'task' in cfg['runtime']; known keys: tasks, repeats, error_text"),
        ({"tasks": 0}, "cfg['runtime']['tasks'] must be >= 1, got 0"),
        ({"tasks": 127}, "cfg['runtime']['tasks'] = 127 is more than 126, the largest the runtime supports"),
        ({"error_text": "big"}, "cfg['runtime']['error_text'] must be an integer, got 'big'"),
        ([5], "cfg['runtime'] must be a dict like {'tasks': 64}, got [5]"),
    ])
    def test_bad_tables_are_refused(self, host_cfg, runtime, message):
        cfg = host_cfg.copy()
        cfg["runtime"] = runtime
        with pytest.raises(ConfigError) as e:
            cfg.validate()
        assert str(e.value) == message

    def test_console_float_must_be_a_bool(self, host_cfg):
        cfg = host_cfg.copy()
        cfg["console_float"] = "yes"
        with pytest.raises(ConfigError) as e:
            cfg.validate()
        assert str(e.value) == "cfg['console_float'] must be True or False, got 'yes'"

    def test_defines_follow_the_config(self, host_cfg):
        cfg = host_cfg.copy()
        assert cfg.runtime_defines() == {"UTVM_CONSOLE_FD": 63, "UTVM_MAX_TASKS": 64, "UTVM_MAX_REPEAT": 64,
                                         "UTVM_ERROR_LEN": 512}
        cfg["console_float"] = True
        cfg["runtime"] = {"tasks": 8}
        assert cfg.runtime_defines() == {"UTVM_CONSOLE_FD": 63, "UTVM_CONSOLE_FLOAT": None, "UTVM_MAX_TASKS": 8,
                                         "UTVM_MAX_REPEAT": 64, "UTVM_ERROR_LEN": 512}
