"""Shared fixtures and hooks; the helpers the tests share are in helpers.py. Tools that are
missing skip their tests on a developer machine, but fail them under CI=true: a broken install
step must never turn the suite green by skipping."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from utvm_host import Session, build, devices

# This run's temporary files (session folders among them) in a folder of its own, so checks for
# leftovers see only this run's, even with other test runs on the machine. 0711: other users may
# pass through (tests acting as another user need to reach what they try to open) but not list it.
_RUN_TMP = tempfile.mkdtemp(prefix="utvm-host-tests-")
os.chmod(_RUN_TMP, 0o711)
os.environ["TMPDIR"] = tempfile.tempdir = _RUN_TMP

# The helpers the tests share live in helpers.py; those conftest uses are imported here, and so
# are the names tests/device_c/ still imports from conftest (require_tool).
from helpers import (  # noqa: E402,F401
    CROSS, DEVICES, EXAMPLES, HEAP_WATCHED, IN_CI, KERNELS, check_heap, device_cfg, device_children,
    heap_blocks, is_host, line_of, load_and_check_vadd, missing, require_qemu, require_spike,
    require_tool, require_tvm, session_for, session_folders, vadd_works)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "keeps_heap: the test leaves tensors on a shared session's heap on purpose "
                   "(say why at the test); the heap check (heap_back_to_baseline) skips it")


@pytest.fixture(params=list(CROSS))
def cross_cfg(request):
    """A device config per cross target (its compiler must be installed)."""
    tool, make = CROSS[request.param]
    require_tool(tool)
    return make()


@pytest.fixture(scope="session")
def host_cfg():
    return devices.host()


@pytest.fixture(scope="module", params=list(DEVICES))
def cfg(request):
    """The device config of each device in DEVICES (tests using it run once per device)."""
    return device_cfg(request.param)


@pytest.fixture(scope="module")
def sess(cfg):
    """One session per device and test module (opening one starts processes). Opened without
    `with`, so it is not the current session that a bare load() would use."""
    yield from session_for(cfg)


@pytest.fixture(scope="module")
def kernels(sess, cfg):
    """The example kernels (vadd, dot_i8, matmul, matmul_i8) loaded once per module and device."""
    lib = build([EXAMPLES / "vadd.c", EXAMPLES / "dot.c", EXAMPLES / "matmul.c"], cfg, cflags=["-O2"])
    return sess.load(lib)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def host_cpu_children():
    return device_children


def pytest_sessionfinish(session, exitstatus):
    """After every test: no device process may be left running."""
    import gc
    gc.collect()
    shutil.rmtree(_RUN_TMP, ignore_errors=True)
    left = device_children()
    if left:
        print(f"\nERROR: {len(left)} device process(es) left running after the tests: {left}")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """In the fault suite (tests/faults/), every test leaves no more device processes and no
    more session folders than it found, however the device died."""
    if "faults" not in Path(str(request.node.fspath)).parts:
        yield
        return
    import gc
    processes, folders = len(device_children()), session_folders()
    yield
    gc.collect()
    left = len(device_children())
    assert left <= processes, f"{left - processes} device process(es) left running by {request.node.name}"
    assert session_folders() <= folders, f"session folders left by {request.node.name}: " \
                                         f"{sorted(session_folders() - folders)}"


# -- the heap of shared sessions ----------------------------------------------------------------

#: Whether the test's call phase raised (failed, skipped, xfailed): its frames then stay alive in
#: the traceback and keep its tensors, so the heap check would only repeat the failure.
_CALL_RAISED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call":
        item.stash[_CALL_RAISED] = call.excinfo is not None
    return report


def _sessions_in(value) -> list:
    """The sessions a fixture value is or holds (a session, or a tuple/list/dict with some)."""
    if isinstance(value, Session):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, Session)]
    return []


def shared_sessions(request) -> list:
    """The open sessions the test gets from fixtures wider than one test (module, class,
    session scope: shared with other tests). Those are set up before function-scoped fixtures,
    so they are already there when an autouse function fixture runs."""
    found = []
    defs = request.node._fixtureinfo.name2fixturedefs
    for name in request.fixturenames:
        if name == "request" or name not in defs or defs[name][-1].scope == "function":
            continue
        for s in _sessions_in(request.getfixturevalue(name)):
            if s.is_open and all(s is not t for t in found):
                found.append(s)
    return found


@pytest.fixture(autouse=True)
def heap_back_to_baseline(request):
    """A test that uses a shared session (a fixture of module, class or session scope that is
    or holds a Session) leaves its heap back at the baseline taken before it: every tensor,
    staged argument block, bound call and planned tensor it allocated there is freed by the end
    of the test (a tensor that nothing references is freed when garbage is collected); the
    error names the blocks left. Tests marked keeps_heap are exempt; a test that raised is not
    checked (its traceback keeps its tensors alive: the failure is the news)."""
    if request.node.get_closest_marker("keeps_heap"):
        yield
        return
    watched = [(s, heap_blocks(s)) for s in shared_sessions(request)]
    request.node.stash[HEAP_WATCHED] = [s for s, _ in watched]
    yield
    if request.node.stash.get(_CALL_RAISED, True):
        return
    for s, baseline in watched:
        if s.is_open:   # a test that closed the session took its memory with it
            check_heap(s, baseline, request.node.nodeid)
