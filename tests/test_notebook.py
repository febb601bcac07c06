"""Notebook habits: HTML views, progress bars on slow transfers, quiet logging."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from utvm_host import Session, build, devices

from helpers import EXAMPLES


def test_html_views_name_what_a_notebook_user_looks_for():
    with Session(devices.host()) as sess:
        mod = sess.load(build([EXAMPLES / "vadd.c"], sess.cfg))
        page = sess._repr_html_()
        assert "<b>utvm-host session</b>" in page and "host (" in page and "vadd (" in page
        assert "runtime" in page and "</table>" in page   # the memory map comes along
        assert "&lt;Function void vadd(const float *a, const float *b, float *c, int32_t n)&gt;" in mod._repr_html_()
        a = np.ones(8, np.float32)
        r = mod.time_evaluator("vadd", number=4, repeat=3)(a, a, a.copy(), 8)
        html = r._repr_html_()
        assert "4 call(s) per repeat, 3 repeat(s)" in html and html.count("<tr>") == 4
        assert sess.memory_map()._repr_html_().startswith("<")


class RecordingBar:
    """Stands in for tqdm to record what a bar is told (the terminal is not a TTY under pytest)."""
    made = []

    def __init__(self, total, **kw):
        self.total, self.kw, self.updates = total, kw, []
        RecordingBar.made.append(self)

    def update(self, n):
        self.updates.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_slow_transfers_report_progress_in_pieces(monkeypatch):
    import tqdm.auto
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    with Session(devices.host()) as sess:
        monkeypatch.setitem(sess.PROGRESS_BYTES, "host", 256 * 1024)   # as if the host were a slow link
        data = np.random.default_rng(1).integers(0, 255, 1 << 20, dtype=np.uint8)
        t = sess.tensor(data)
        back = t.numpy()
        small = sess.tensor(np.ones(100, np.uint8))
    np.testing.assert_array_equal(back, data)
    assert small.nbytes == 100 and len(RecordingBar.made) == 2   # the small one shows no bar
    write, read = RecordingBar.made
    assert write.total == read.total == 1 << 20 and sum(write.updates) == sum(read.updates) == 1 << 20
    assert len(write.updates) > 1 and write.kw["unit"] == "B" and write.kw["desc"] == "tensor uint8[1048576]"


def test_the_library_is_quiet_unless_logging_is_configured():
    code = ("import logging, utvm_host; logging.getLogger('utvm_host.toolchain').warning('compiler warnings')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == ""
    code += "\nlogging.basicConfig(); logging.getLogger('utvm_host.toolchain').warning('shown')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stderr == "WARNING:utvm_host.toolchain:shown\n"
