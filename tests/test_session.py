"""Calls on the host device: kernels against numpy, scalars, tensors, loading and unloading."""
from __future__ import annotations

import re

import numpy as np
import pytest

from helpers import EXAMPLES, HEAP_WATCHED, KERNELS, check_heap, heap_blocks, is_host
from utvm_host import KernelError, LayoutError, Session, UtvmError, build, devices, load


class TestKernelsMatchNumpy:
    def test_vadd_float32(self, kernels, rng):
        a = rng.standard_normal(64, dtype=np.float32)
        b = rng.standard_normal(64, dtype=np.float32)
        c = np.zeros(64, np.float32)
        assert kernels["vadd"](a, b, c, 64) is None
        np.testing.assert_array_equal(c, a + b)

    def test_vadd_leaves_inputs_untouched(self, kernels):
        a = np.arange(8, dtype=np.float32)
        b = np.full(8, 3, np.float32)
        c = np.zeros(8, np.float32)
        kernels["vadd"](a, b, c, 8)
        np.testing.assert_array_equal(a, np.arange(8, dtype=np.float32))
        np.testing.assert_array_equal(b, np.full(8, 3, np.float32))

    def test_vadd_partial_length_writes_only_n(self, kernels):
        a = np.ones(16, np.float32)
        c = np.full(16, -1, np.float32)
        kernels["vadd"](a, a, c, 10)
        np.testing.assert_array_equal(c, [2] * 10 + [-1] * 6)

    @pytest.mark.parametrize("n", [1, 7, 64, 1000])
    def test_dot_int8_accumulates_in_int32(self, kernels, rng, n):
        x = rng.integers(-128, 128, n, dtype=np.int8)
        y = rng.integers(-128, 128, n, dtype=np.int8)
        got = kernels["dot_i8"](x, y, n)
        assert type(got) is int
        assert got == int(x.astype(np.int32) @ y.astype(np.int32))

    def test_dot_int8_extremes_do_not_overflow_int8(self, kernels):
        x = np.full(100, -128, np.int8)
        assert kernels["dot_i8"](x, x, 100) == 100 * 128 * 128

    @pytest.mark.parametrize("n", [1, 5, 32])
    def test_matmul_float32(self, kernels, rng, n):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        kernels["matmul"](a, b, c, n)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("n", [3, 16])
    def test_matmul_int8_exact(self, kernels, rng, n):
        a = rng.integers(-128, 128, (n, n), dtype=np.int8)
        b = rng.integers(-128, 128, (n, n), dtype=np.int8)
        c = np.empty((n, n), np.int32)
        kernels["matmul_i8"](a, b, c, n)
        np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))


@pytest.fixture(scope="module")
def mixed(sess, cfg):
    return sess.load(build([KERNELS / "mixed.c"], cfg))


class TestScalars:
    def test_every_width_in_and_double_out(self, mixed):
        got = mixed["mixed"](-5, 65535, -2_000_000_000, -(2**62), 1.5, 0.25)
        want = -5.0 + 65535 * 2.0 + (-2_000_000_000) * 3.0 + float(-(2**62)) * 4.0 + 1.5 * 5.0 + 0.25 * 6.0
        assert type(got) is float and got == want

    def test_numpy_scalars_are_accepted(self, mixed):
        got = mixed["mixed"](np.int8(1), np.uint16(2), np.int32(3), np.int64(4), np.float32(0.5), np.float64(2))
        assert got == 1 + 4 + 9 + 16 + 2.5 + 12

    def test_unsigned_64_bit_wraps_like_c(self, mixed):
        assert mixed["add_u64"](2**64 - 1, 2) == 1
        assert mixed["neg_i64"](-(2**63) + 1) == 2**63 - 1

    def test_narrow_integers(self, mixed):
        assert mixed["wrap_u8"](200, 100) == 44
        assert mixed["sub_i16"](-32768, 1) == 32767
        assert mixed["sub_i16"](-3, 4) == -7

    def test_float_return_is_float32_rounded(self, mixed):
        assert mixed["scale_f32"](0.1, 3) == float(np.float32(0.1) * np.float32(3))

    def test_bool_return(self, mixed):
        assert mixed["is_positive"](5) is True
        assert mixed["is_positive"](-5) is False

    def test_void_no_args(self, mixed):
        assert mixed["nothing"]() is None


class TestArgumentErrors:
    """Mismatches raise TypeError with a message naming the argument, before the device runs."""

    def test_wrong_arity(self, kernels):
        with pytest.raises(TypeError) as e:
            kernels["vadd"](np.zeros(4, np.float32), np.zeros(4, np.float32), 4)
        assert str(e.value) == "vadd() takes 4 arguments (a, b, c, n), got 3"

    def test_wrong_dtype(self, kernels):
        with pytest.raises(TypeError) as e:
            kernels["vadd"](np.zeros(4, np.float64), np.zeros(4, np.float32), np.zeros(4, np.float32), 4)
        assert str(e.value) == "argument 1 'a' of vadd() (const float *) needs a float32 array, got float64"

    def test_non_contiguous(self, kernels):
        a = np.zeros(8, np.float32)[::2]
        with pytest.raises(TypeError) as e:
            kernels["vadd"](a, a, np.zeros(4, np.float32), 4)
        assert str(e.value) == ("argument 1 'a' of vadd() (const float *) must be C-contiguous; "
                                "pass np.ascontiguousarray(...) instead")

    def test_read_only_output(self, kernels):
        c = np.zeros(4, np.float32)
        c.flags.writeable = False
        with pytest.raises(TypeError) as e:
            kernels["vadd"](c, c, c, 4)
        assert str(e.value) == ("argument 3 'c' of vadd() (float *) may be written by the kernel, "
                                "but the array is read-only")

    def test_array_shorter_than_length_argument(self, kernels):
        a = np.zeros(64, np.float32)
        with pytest.raises(TypeError) as e:
            kernels["vadd"](a, a, np.zeros(32, np.float32), 64)
        assert str(e.value) == "argument 3 'c' of vadd() (float *) has 32 elements but n = 64"

    def test_list_instead_of_array(self, kernels):
        with pytest.raises(TypeError) as e:
            kernels["dot_i8"]([1, 2], np.zeros(2, np.int8), 2)
        assert str(e.value) == ("argument 1 'x' of dot_i8() (const int8_t *) must be a numpy array or a "
                                "device tensor, got list")

    def test_scalar_out_of_range(self, mixed):
        with pytest.raises(TypeError) as e:
            mixed["mixed"](300, 0, 0, 0, 0.0, 0.0)
        assert str(e.value) == "argument 1 'a' of mixed() (int8_t) = 300 is out of range [-128, 127]"

    def test_float_for_integer(self, mixed):
        with pytest.raises(TypeError) as e:
            mixed["wrap_u8"](1.5, 1)
        assert str(e.value) == "argument 1 'a' of wrap_u8() (uint8_t) takes an integer, got float 1.5"

    def test_array_for_scalar(self, mixed):
        with pytest.raises(TypeError) as e:
            mixed["scale_f32"](np.zeros(1, np.float32), 1.0)
        assert str(e.value) == "argument 1 'x' of scale_f32() (float) takes a scalar, got ndarray"

    def test_unknown_kernel(self, kernels):
        with pytest.raises(KeyError) as e:
            kernels["vsub"]
        assert e.value.args[0] == ("no kernel 'vsub' in library 'vadd+dot+matmul'; "
                                   "it has: dot_i8, matmul, matmul_i8, vadd")

    def test_struct_by_value_and_variadic_are_refused(self, sess, cfg):
        mod = sess.load(build([KERNELS / "structs.c"], cfg))
        try:
            with pytest.raises(TypeError) as e:
                mod["sum_pair"]
            assert str(e.value) == ("kernel 'sum_pair' cannot be called from Python: parameter 1 (p) has type "
                                    "struct pair; kernels take pointers to scalars, or integers, floats and "
                                    "doubles by value (pass a struct through a pointer)")
            with pytest.raises(TypeError) as e:
                mod["sum_var"]
            assert str(e.value) == "kernel 'sum_var' cannot be called from Python: it is variadic (takes '...')"
            pair = np.array([40, 2], np.int32)            # a struct passed through a pointer: raw bytes
            assert mod["sum_pair_ptr"](pair) == 42
        finally:
            mod.unload()

    def test_nothing_was_run_after_type_errors(self, kernels, sess):
        heap_used = sess.region_for("heap").used
        with pytest.raises(TypeError):
            kernels["vadd"](np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.int32), 4)
        assert sess.region_for("heap").used == heap_used   # no temporary left allocated


@pytest.fixture(scope="module")
def checked(sess, cfg):
    return sess.load(build([KERNELS / "checked.c"], cfg, include_dirs=[KERNELS / "inc"]))


class TestKernelErrors:
    def test_kernel_error_carries_the_text(self, checked):
        x = np.ones(4, np.float32)
        with pytest.raises(KernelError) as e:
            checked["checked_scale"](x, np.zeros(4, np.float32), 0)
        assert str(e.value) == "kernel 'checked_scale' failed (returned -1): checked_scale: n must be positive"
        assert (e.value.kernel, e.value.status, e.value.text) == ("checked_scale", -1,
                                                                 "checked_scale: n must be positive")

    def test_success_after_error_and_include_dirs_reach_the_compiler(self, checked):
        x = np.arange(4, dtype=np.float32)
        y = np.zeros(4, np.float32)
        assert checked["checked_scale"](x, y, 4) == 0
        np.testing.assert_array_equal(y, 2 * x)          # SCALE from inc/scale.h

    def test_workspace_alloc_and_free(self, checked, rng):
        x = rng.integers(-1000, 1000, 300, dtype=np.int32)
        y = np.zeros(300, np.int32)
        for _ in range(3):                               # freed each time: never runs out
            assert checked["reverse_ws"](x, y, 300) == 0
            np.testing.assert_array_equal(y, x[::-1])

    def test_workspace_exhaustion_is_a_kernel_error(self, checked):
        with pytest.raises(KernelError) as e:
            checked["greedy_ws"](0)
        assert str(e.value) == ("kernel 'greedy_ws' failed (returned -1): "
                                "TVMBackendAllocWorkspace: request larger than the workspace region")


class TestTensors:
    def test_tensor_round_trip(self, sess, rng):
        a = rng.standard_normal((3, 5), dtype=np.float32)
        t = sess.tensor(a)
        assert (t.shape, t.dtype, t.nbytes) == ((3, 5), np.dtype(np.float32), 60)
        np.testing.assert_array_equal(t.numpy(), a)
        t.free()

    def test_tensors_in_place(self, sess, kernels):
        a = np.arange(64, dtype=np.float32)
        t = sess.tensor(a)
        u = sess.empty((64,), "float32")
        kernels["vadd"](t, t, u, 64)
        np.testing.assert_array_equal(u.numpy(), 2 * a)
        kernels["vadd"](u, t, u, 64)                     # output feeds the next call, no copies
        np.testing.assert_array_equal(u.numpy(), 3 * a)
        t.free(); u.free()

    def test_mixing_tensors_and_arrays(self, sess, kernels):
        t = sess.tensor(np.ones(16, np.float32))
        c = np.zeros(16, np.float32)
        kernels["vadd"](t, np.full(16, 2, np.float32), c, 16)
        np.testing.assert_array_equal(c, np.full(16, 3, np.float32))
        t.free()

    def test_zeros_and_copyfrom(self, sess):
        t = sess.zeros((4,), "int16")
        np.testing.assert_array_equal(t.numpy(), np.zeros(4, np.int16))
        t.copyfrom(np.array([1, -2, 3, -4], np.int16))
        np.testing.assert_array_equal(t.numpy(), [1, -2, 3, -4])
        with pytest.raises(TypeError) as e:
            t.copyfrom(np.zeros(4, np.int32))
        assert str(e.value) == "copyfrom() needs a int16 array of shape (4,), got int32 (4,)"
        t.free()

    def test_tensor_dtype_checked(self, sess, kernels):
        t = sess.tensor(np.zeros(4, np.int32))
        with pytest.raises(TypeError) as e:
            kernels["vadd"](t, t, t, 4)
        assert str(e.value) == "argument 1 'a' of vadd() (const float *) needs a float32 array, got int32"
        t.free()

    def test_free_returns_memory_and_use_after_free_raises(self, sess, kernels):
        heap = sess.region_for("heap")
        before = heap.used
        t = sess.empty((1000,), "float64")
        assert heap.used == before + 8000
        t.free()
        assert heap.used == before
        with pytest.raises(UtvmError) as e:
            t.numpy()
        assert str(e.value) == f"<Tensor float64[1000] at 0x{t.addr:x} freed> was freed"
        with pytest.raises(TypeError) as e:
            kernels["vadd"](t, t, t, 4)
        assert "is a freed tensor" in str(e.value)

    def test_garbage_collected_tensor_frees_memory(self, sess):
        import gc
        heap = sess.region_for("heap")
        before = heap.used
        t = sess.empty((256,), "int32")
        assert heap.used == before + 1024
        del t
        gc.collect()
        assert heap.used == before

    def test_heap_overflow_is_a_layout_error(self, sess):
        heap = sess.region_for("heap")
        with pytest.raises(LayoutError) as e:
            sess.empty((heap.size,), "float32")
        n = heap.size
        text = str(e.value)
        head = (f"cannot place {4 * n:,} bytes of tensor float32[{n}] in memory region '{heap.name}' (capacity {n:,}, "
                f"used {heap.used:,}, free {heap.free_bytes:,}, largest free block {heap.largest_free:,}); it holds: ")
        assert text.startswith(head)
        assert "runtime " in text[len(head):]                      # the occupants, with their sizes
        assert text.endswith("; free tensors or unload a library you no longer need, or give the device more "
                             "memory (cfg[\"memory\"])")
        assert (e.value.region, e.value.needed, e.value.capacity) == (heap.name, 4 * n, n)


class TestLoadUnload:
    def test_two_loaded_one_unloaded_third_placed_in_freed_space(self, cfg):
        with Session(cfg) as sess:
            big = build([EXAMPLES / "matmul.c"], cfg, name="big")
            small = build([EXAMPLES / "vadd.c"], cfg, name="small")
            third = build([EXAMPLES / "dot.c"], cfg, name="third")
            m1 = load(big)
            m2 = load(small)
            text1 = next(b for b in m1.image.blocks if b.what == ".text")
            code = sess.region_for("text")
            high_before = max(b.end for b in code.blocks())
            m1.unload()
            assert not m1.loaded
            assert text1 not in code.blocks()                 # its space went back to the region
            with pytest.raises(UtvmError) as e:
                m1["matmul"]
            assert str(e.value) == "module 'big' was unloaded; load its library again"
            m3 = load(third)
            text3 = next(b for b in m3.image.blocks if b.what == ".text")
            assert text3.end <= high_before                   # placed in freed space: nothing grew
            assert max(b.end for b in code.blocks()) <= high_before
            x = np.arange(10, dtype=np.int8)
            assert m3["dot_i8"](x, x, 10) == int((x.astype(np.int32) ** 2).sum())
            a = np.ones(4, np.float32); c = np.zeros(4, np.float32)
            m2["vadd"](a, a, c, 4)                       # the other library is unharmed
            np.testing.assert_array_equal(c, 2 * a)
            owners = {row.owner for row in sess.memory_map().rows} - {"device"}   # device: reserved vectors
            assert owners == {"runtime", "small", "third"}

    def test_library_calls_another_library(self, cfg):
        with Session(cfg) as sess:
            base = sess.load(build([EXAMPLES / "vadd.c"], cfg))
            user = sess.load(build([KERNELS / "uses_vadd.c"], cfg))
            a = np.arange(8, dtype=np.float32); b = np.ones(8, np.float32); c = np.zeros(8, np.float32)
            user["vadd_twice"](a, b, c, 8)
            np.testing.assert_array_equal(c, 2 * a + b)
            with pytest.raises(UtvmError) as e:
                base.unload()
            assert str(e.value) == "cannot unload 'vadd': 'uses_vadd' calls into it; unload it first"
            user.unload()
            base.unload()

    def test_same_library_twice_gets_distinct_owners(self, cfg):
        with Session(cfg) as sess:
            lib = build([EXAMPLES / "vadd.c"], cfg)
            m1, m2 = sess.load(lib), sess.load(lib)
            assert (m1.name, m2.name) == ("vadd", "vadd#2")
            a = np.ones(3, np.float32); c = np.zeros(3, np.float32)
            m2["vadd"](a, a, c, 3)
            np.testing.assert_array_equal(c, [2, 2, 2])

    def test_text_overflow_names_the_fix(self, cfg):
        with Session(cfg) as probe:
            runtime = next(b for b in probe.runtime.blocks if b.what == ".text")
            text_size = runtime.size + 256                     # room for the runtime and a little more
        cfg = cfg.copy()
        cfg["mem_layout"]["text"]["size"] = text_size          # the seed's idiom
        with Session(cfg) as sess:
            assert not sess.layout.automatic                   # editing mem_layout chose the hand layout
            runtime_text = sess.layout["text"].used
            lib = build([EXAMPLES / "matmul.c", EXAMPLES / "vadd.c", EXAMPLES / "dot.c"], cfg,
                        cflags=["-O3", "-funroll-loops"], name="big")
            with pytest.raises(LayoutError) as e:
                sess.load(lib)
            err = e.value
            assert (err.region, err.what, err.owner, err.capacity) == ("text", ".text", "big", text_size)
            assert err.used == runtime_text and err.needed > text_size - runtime_text
            assert str(err) == (
                f"cannot place {err.needed:,} bytes of .text from 'big' in region 'text' (capacity {text_size:,}, "
                f"used {runtime_text:,}, free {text_size - runtime_text:,}): set cfg[\"mem_layout\"][\"text\"][\"size\"] "
                f">= {err.required_size:,}; or unload a library (sess.memory_map() shows what is loaded)")
            assert sess.modules == [] and sess.layout["text"].used == runtime_text   # nothing half-loaded
            cfg2 = cfg.copy()
            cfg2["mem_layout"]["text"]["size"] = err.required_size                   # the fix works
            with Session(cfg2) as sess2:
                mod = sess2.load(lib)
                assert mod["dot_i8"](np.ones(3, np.int8), np.ones(3, np.int8), 3) == 3


class TestSessionState:
    def test_load_outside_a_session(self, cfg):
        lib = build([EXAMPLES / "vadd.c"], cfg)
        with pytest.raises(UtvmError) as e:
            load(lib)
        assert str(e.value) == ("no open session: use `with Session(cfg) as sess:` and call load() inside it "
                                "(or sess.load(lib))")

    def test_closed_session_refuses(self, cfg):
        sess = Session(cfg)
        with sess:
            mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
        with pytest.raises(UtvmError) as e:
            mod["vadd"](np.ones(1, np.float32), np.ones(1, np.float32), np.ones(1, np.float32), 1)
        assert str(e.value) == "module 'vadd' was unloaded; load its library again"
        with pytest.raises(UtvmError) as e:
            sess.load(build([EXAMPLES / "vadd.c"], cfg))
        assert str(e.value) == "the session is closed; open a new one with `with Session(cfg) as sess:`"

    def test_two_sessions_side_by_side(self, cfg, host_cpu_children):
        before = set(host_cpu_children())
        with Session(cfg) as s1, Session(cfg) as s2:
            lib = build([EXAMPLES / "vadd.c"], cfg)
            m1, m2 = s1.load(lib), s2.load(lib)
            a = np.ones(4, np.float32); c1 = np.zeros(4, np.float32); c2 = np.zeros(4, np.float32)
            m1["vadd"](a, a, c1, 4)
            m2["vadd"](a, c1, c2, 4)
            np.testing.assert_array_equal(c2, [3, 3, 3, 3])
            mine = set(host_cpu_children()) - before
            per_session = 1 if is_host(cfg) else len(s1._processes)    # a CPU; Spike + OpenOCD; QEMU
            assert len(mine) == 2 * per_session and len(s2._processes) == len(s1._processes)
        assert set(host_cpu_children()) == before

    def test_unknown_transport_is_refused_plainly(self):
        cfg = devices.host()
        cfg["transport"]["kind"] = "jtag-over-carrier-pigeon"
        with pytest.raises(UtvmError) as e:
            Session(cfg).open()
        assert str(e.value) == ("device 'host' uses transport 'jtag-over-carrier-pigeon', which this version of "
                                "utvm-host cannot drive (it knows 'host', 'openocd', 'gdb' and 'serial')")


class TestTracing:
    def test_trace_logs_transfers_with_hex_dumps(self, cfg, caplog):
        import logging
        caplog.set_level(logging.DEBUG, logger="utvm_host.transport.tracing")
        with Session(cfg, trace=True) as sess:
            mod = sess.load(build([EXAMPLES / "dot.c"], cfg))
            caplog.clear()
            x = np.array([1, 2, 3, 4], np.int8)
            assert mod["dot_i8"](x, x, 4) == 30
        text = caplog.text
        assert re.search(r"write 0x[0-9a-f]+, 4 bytes\n  [0-9a-f]{8}: 01 02 03 04 ", text)   # the array
        assert "01 02 03 04" in text and "|....|" in text
        assert "run   entry 0x" in text and "stop  StopInfo(kind='done'" in text


def test_fill_bytes_on_the_device(sess):
    t = sess.tensor(np.arange(10, dtype=np.int32))
    t.fill_bytes(0xAB)
    assert t.numpy().tobytes() == b"\xab" * 40
    t.fill_bytes(0)
    np.testing.assert_array_equal(t.numpy(), np.zeros(10, np.int32))
    t.free()


class TestHeapCheck:
    """conftest's heap_back_to_baseline: a test on a shared session leaves nothing it allocated
    on the session's heap. These call its check directly; the test after the class runs it in a
    pytest of its own."""

    def test_it_watches_the_shared_session(self, sess, request):
        assert request.node.stash[HEAP_WATCHED] == [sess]

    def test_it_names_a_leaked_tensor_and_passes_once_it_is_freed(self, sess):
        baseline = heap_blocks(sess)
        t = sess.empty((3, 5), "int16")
        try:
            assert heap_blocks(sess) == baseline | {t.block}
            with pytest.raises(AssertionError) as e:
                check_heap(sess, baseline, "a leaky test")
            assert str(e.value).startswith(
                f"the device heap of {sess!r} is not back to its baseline after a leaky test: 1 block(s), 30 bytes, "
                f"left allocated: 30 bytes of tensor int16[3, 5] at 0x{t.addr:x} in region '{t.block.region}'")
        finally:
            t.free()
        check_heap(sess, baseline, "the test once it freed its tensor")

    def test_it_counts_a_tensor_nothing_references_as_freed(self, sess):
        baseline = heap_blocks(sess)
        sess.empty(7, "float32")   # unreferenced at once: freed when garbage is collected
        check_heap(sess, baseline)

    def test_it_names_planned_tensor_reservations(self, sess):
        baseline = heap_blocks(sess)
        sess.plan(tensors=[((2, 2), "float64")])
        try:
            [planned] = heap_blocks(sess) - baseline
            with pytest.raises(AssertionError) as e:
                check_heap(sess, baseline)
            assert str(e.value).endswith(f"1 block(s), 32 bytes, left allocated: 32 bytes of tensor float64[2, 2] "
                                         f"from 'planned' at 0x{planned.start:x} in region '{planned.region}'")
        finally:
            sess.empty((2, 2), "float64").free()   # takes the reservation, then returns it
        assert heap_blocks(sess) == baseline


HEAP_CHECKED_TESTS = """
import pytest
from helpers import session_for
from utvm_host import devices

KEPT = []


@pytest.fixture(scope="module")
def shared():
    yield from session_for(devices.host())


def test_leaks(shared):
    KEPT.append(shared.empty(5, "int16"))


@pytest.mark.keeps_heap
def test_keeps_on_purpose(shared):
    KEPT.append(shared.empty(6, "int16"))


def test_fails_holding_a_tensor(shared):
    t = shared.empty(7, "int16")
    assert t is None


def test_tidy(shared):
    t = shared.empty(8, "int16")
    t.free()
    shared.empty(9, "int16")   # unreferenced: garbage


def test_own_session_is_not_watched():
    from utvm_host import Session
    with Session(devices.host()) as s:
        t = s.empty(10, "int16")


def test_frees_what_others_allocated(shared):
    for t in KEPT:
        t.free()
"""


def test_the_heap_check_fails_a_test_that_leaves_a_tensor(tmp_path):
    """The check end to end, in a pytest of its own with this conftest: a leak errors the test
    that leaked, naming the block; keeps_heap exempts a test; a failed test is reported once."""
    import shutil
    import subprocess
    import sys
    import xml.etree.ElementTree as ET
    from pathlib import Path
    here = Path(__file__).parent
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(here / name, tmp_path / name)
    (tmp_path / "test_heap_checked.py").write_text(HEAP_CHECKED_TESTS)
    report = tmp_path / "report.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}",
                          f"--junitxml={report}", str(tmp_path / "test_heap_checked.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert report.is_file(), run.stdout + run.stderr
    outcome = {}
    for case in ET.parse(report).iter("testcase"):
        problems = [(p.tag, p.get("message", "")) for p in case if p.tag in ("error", "failure", "skipped")]
        outcome[case.get("name")] = problems
    assert list(outcome) == ["test_leaks", "test_keeps_on_purpose", "test_fails_holding_a_tensor", "test_tidy",
                             "test_own_session_is_not_watched", "test_frees_what_others_allocated"]
    [(tag, message)] = outcome["test_leaks"]
    assert tag == "error" and "is not back to its baseline after test_heap_checked.py::test_leaks: 1 block(s), " \
                              "10 bytes, left allocated: 10 bytes of tensor int16[5] at 0x" in message, message
    assert outcome["test_keeps_on_purpose"] == []
    assert [tag for tag, _ in outcome["test_fails_holding_a_tensor"]] == ["failure"]
    # test_tidy runs while the failed test's tensor is freed: that is not its leak
    assert outcome["test_tidy"] == [] and outcome["test_own_session_is_not_watched"] == []
    assert outcome["test_frees_what_others_allocated"] == []
