"""The runtime's parts linked on demand (device_stubs/runtime/on_demand/): the error API and the
workspace allocator reach the device the first time a loaded library calls into them, stay while
the session lives, and come back after a reset."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import EXAMPLES, KERNELS, device_cfg, require_tool
from utvm_host import KernelError, LayoutError, Session, build
from utvm_host.toolchain import build_runtime, build_runtime_parts, runtime_parts_needed

DEVICES = ["host", "spike-rv32", "qemu-cortex-m3"]
WS_OUT_OF_REGION = ("kernel 'greedy_ws' failed (returned -1): "
                    "TVMBackendAllocWorkspace: request larger than the workspace region")


def _owners(sess):
    return [image.owner for image in sess.runtime_parts]


def _map_owners(sess):
    return {row.owner for row in sess.memory_map().rows}


def _checked(cfg):
    return build([KERNELS / "checked.c"], cfg, include_dirs=[KERNELS / "inc"])


def _reverse_works(mod, n: int = 300) -> None:
    x = np.arange(n, dtype=np.int32) * 7 - 1000
    y = np.zeros(n, np.int32)
    assert mod["reverse_ws"](x, y, n) == 0
    np.testing.assert_array_equal(y, x[::-1])


@pytest.mark.parametrize("device", DEVICES)
def test_parts_are_placed_when_a_library_first_calls_them(device):
    cfg = device_cfg(device)
    with Session(cfg) as sess:
        assert sess.runtime_parts == [] and not {"runtime (errors)", "runtime (workspace)"} & _map_owners(sess)
        vadd = sess.load(build([EXAMPLES / "vadd.c"], cfg))
        assert sess.runtime_parts == []                       # vadd calls neither
        checked = sess.load(_checked(cfg))
        # the allocator reports its errors through the error API: that part comes first
        assert _owners(sess) == ["runtime (errors)", "runtime (workspace)"]
        assert {"runtime (errors)", "runtime (workspace)"} <= _map_owners(sess)
        placed = {image.owner: image.symbols["TVMBackendAllocWorkspace" if "workspace" in image.owner
                                             else "TVMAPISetLastError"] for image in sess.runtime_parts}
        _reverse_works(checked)
        with pytest.raises(KernelError) as e:
            checked["greedy_ws"](0)
        assert str(e.value) == WS_OUT_OF_REGION
        with pytest.raises(KernelError) as e:
            checked["checked_scale"](np.ones(4, np.float32), np.zeros(4, np.float32), 0)
        assert e.value.text == "checked_scale: n must be positive"
        guard = sess.load(build([KERNELS / "ws_guard.c"], cfg))   # calls the allocator too: nothing new
        assert _owners(sess) == ["runtime (errors)", "runtime (workspace)"]
        assert guard["ws_clean"](256) == 1
        checked.unload()                                      # the parts stay with the session
        assert _owners(sess) == ["runtime (errors)", "runtime (workspace)"]
        assert guard["ws_clean"](256) == 1
        checked = sess.load(_checked(cfg))
        assert {i.owner: i.symbols.get("TVMBackendAllocWorkspace", i.symbols.get("TVMAPISetLastError"))
                for i in sess.runtime_parts} == placed
        sess.reset()                                          # rewritten with the runtime
        _reverse_works(checked)
        with pytest.raises(KernelError) as e:
            checked["greedy_ws"](0)
        assert str(e.value) == WS_OUT_OF_REGION
        vadd.unload()


def test_only_the_parts_a_library_calls(host_cfg):
    with Session(host_cfg) as sess:
        src = KERNELS.parent / "kernels" / "long_error.c"
        sess.load(build([src], host_cfg))
        assert _owners(sess) == ["runtime (errors)"]


def test_which_parts_a_set_of_names_needs(host_cfg):
    parts = {p.name: p for p in build_runtime_parts(host_cfg)}
    assert set(parts) == {"runtime (errors)", "runtime (workspace)"}
    errors, workspace = parts["runtime (errors)"], parts["runtime (workspace)"]
    every = list(parts.values())
    assert runtime_parts_needed(every, ["vadd", "memcpy"], {}) == []
    assert runtime_parts_needed(every, ["TVMAPISetLastError"], {}) == [errors]
    assert runtime_parts_needed(every, ["TVMFFIErrorSetRaisedFromCStrParts"], {}) == [errors]
    assert runtime_parts_needed(every, ["TVMBackendFreeWorkspace"], {}) == [errors, workspace]
    assert runtime_parts_needed(list(reversed(every)), ["TVMBackendAllocWorkspace", "TVMAPISetLastError"], {}) \
        == [errors, workspace]                                # in link order whatever the list's
    present = {"TVMFFIErrorSetRaisedFromCStr": 0x1000, "TVMAPISetLastError": 0x1010}
    assert runtime_parts_needed(every, ["TVMBackendAllocWorkspace"], present) == [workspace]
    assert runtime_parts_needed(every, ["TVMAPISetLastError"], present) == []
    # the resident runtime defines none of them, and calls none
    runtime = build_runtime(host_cfg).elf()
    assert not set(runtime.defined_symbols()) & {n for p in every for n in p.elf().defined_symbols()}


def test_plan_reserves_room_for_the_parts(host_cfg):
    with Session(host_cfg) as sess:
        lib = _checked(host_cfg)
        owners = {row.owner for row in sess.plan([lib]).rows}
        assert {"planned runtime (errors)", "planned runtime (workspace)", "planned checked"} <= owners
        assert sess.runtime_parts == []                       # nothing sent
        mod = sess.load(lib)
        assert not any(o.startswith("planned") for o in _map_owners(sess))
        assert _owners(sess) == ["runtime (errors)", "runtime (workspace)"]
        _reverse_works(mod)


def test_fits_counts_the_parts_a_library_needs(host_cfg):
    lib = _checked(host_cfg)
    with Session(host_cfg) as sess:
        runtime_text = sum(b.size for b in sess.runtime.blocks if b.what == ".text")
        sess.load(lib)
        parts_text = sum(b.size for i in sess.runtime_parts for b in i.blocks if b.what == ".text")
        lib_text = sum(b.size for m in sess.modules for b in m.image.blocks if b.what == ".text")
    cfg = host_cfg.copy()
    cfg["mem_layout"]["text"]["size"] = runtime_text + lib_text + parts_text // 2   # lib alone fits
    with Session(cfg) as sess:
        assert not sess.fits(lib)
        with pytest.raises(LayoutError):
            sess.load(lib)
        assert sess.runtime_parts == [] and sess.modules == []
        vadd = sess.load(build([EXAMPLES / "vadd.c"], cfg))   # the session goes on
        a = np.arange(8, dtype=np.float32)
        c = np.zeros(8, np.float32)
        vadd["vadd"](a, a, c, 8)
        np.testing.assert_array_equal(c, 2 * a)


def test_the_debugger_knows_the_parts():
    require_tool("gdb-multiarch")
    cfg = device_cfg("spike-rv32")
    with Session(cfg) as sess:
        with sess.debugger() as dbg:
            checked = sess.load(_checked(cfg))                # placed while gdb is attached
            dbg.break_at("TVMBackendAllocWorkspace")
            x = np.arange(8, dtype=np.int32)
            call = checked["reverse_ws"].start(x, np.zeros(8, np.int32), 8)
            frame = dbg.wait_stop()
            assert frame.function == "TVMBackendAllocWorkspace" and frame.file.endswith("utvm_workspace.c")
            dbg.delete()
            dbg.cont()
            assert call.result(timeout=30) == 0
        with sess.debugger() as dbg:                          # attached after they were placed
            assert "utvm_workspace.c" in dbg.command("info functions ^TVMBackendFreeWorkspace$")
        _reverse_works(checked)
