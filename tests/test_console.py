"""The device console: printf from kernels on every device, read with sess.console."""
from __future__ import annotations

import numpy as np
import pytest

from utvm_host import DeviceFault, KernelError, build

from conftest import KERNELS


@pytest.fixture(scope="module")
def noisy(sess, cfg):
    return sess.load(build([KERNELS / "noisy.c"], cfg))


def test_printf_reaches_sess_console(sess, noisy):
    sess.console.read()
    assert noisy["noisy"](np.arange(10, dtype=np.int32), 10) == 45
    assert sess.console.read() == "sum=45\n"
    assert sess.console.read() == ""   # read() consumes


def test_formats_match_c(sess, noisy):
    sess.console.read()
    noisy["formats"]()
    assert sess.console.read() == (
        "[-42|    7|7    |-0007|4000000000|ff|0000BEEF|10|-1|-1234567890123|12]\n"
        "[abc|    ab|ab    |z|%|0x1234|3.14|-0.500000|3|1000000.000000]\n"
        "puts adds a newline\n"
        "!")   # a partial line is flushed at the end of the call


def test_long_output_arrives_whole_and_in_order(sess, noisy):
    sess.console.read()
    noisy["chatter"](300)
    lines = sess.console.read().splitlines()
    assert len(lines) == 300
    assert lines[0] == "line 0000 of 300: 0123456789abcdefghij" and lines[-1].startswith("line 0299 of 300")
    noisy["noisy"](np.ones(3, np.int32), 3)
    noisy["noisy"](np.ones(4, np.int32), 4)
    assert sess.console.read() == "sum=3\nsum=4\n"   # unread text accumulates across calls


def test_what_a_failing_call_printed_is_in_the_error(sess, noisy):
    sess.console.read()
    with pytest.raises(KernelError) as e:
        noisy["failing"](7)
    assert str(e.value) == "kernel 'failing' failed (returned -1): bad n\nthe device printed:\nabout to fail with 7"
    assert e.value.console == "about to fail with 7\n"
    with pytest.raises(DeviceFault) as e:
        noisy["crash"]()
    assert e.value.console == "writing through 0x90000000\n"
    assert str(e.value).endswith("the device printed:\nwriting through 0x90000000")
    assert noisy["noisy"](np.ones(2, np.int32), 2) == 2   # the session goes on
