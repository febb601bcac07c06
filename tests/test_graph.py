"""Whole models: the graph format, the memory planner, the host-driven executor on every device,
and standalone firmware on Spike and QEMU Cortex-M, all checked bit for bit against numpy."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from utvm_host import ConfigError, KernelError, LayoutError, Session, devices
from utvm_host.export import export_firmware
from utvm_host.executor import GraphExecutor
from utvm_host.graph import Graph, GraphBuilder
from utvm_host.transport import CountingTransport

from helpers import device_cfg, is_host, require_qemu, require_spike, require_tvm

sys.path.insert(0, str(Path(__file__).parent.parent / "examples" / "cifar10"))
import model as cifar  # noqa: E402  (the example model: kernels, builder, numpy reference)


@pytest.fixture(scope="module")
def graph():
    return cifar.build_graph()


@pytest.fixture(scope="module")
def image():
    return cifar.test_image()


@pytest.fixture(scope="module")
def expected(graph, image):
    return cifar.reference(graph, {"data": image})


def tiny_graph(tmp_path, body: str, kernel: str = "scale") -> Graph:
    src = tmp_path / "tiny.c"
    src.write_text('#include <stdint.h>\n#include "utvm_runtime.h"\n' + body)
    b = GraphBuilder("tiny", sources=[src])
    x = b.input("x", (8,), "int32")
    y = b.node("first", kernel, [x], ("y", (8,), "int32"), n=8, k=3)
    z = b.node("second", kernel, [y], ("z", (8,), "int32"), n=8, k=-1)
    b.output(z)
    return b.graph()


SCALE = "void scale(const int32_t *x, int32_t *y, int32_t n, int32_t k) { for (int i = 0; i < n; i++) y[i] = x[i] * k; }\n"


# ---- the format ----------------------------------------------------------------------------

def test_graph_round_trips_through_json_and_npz(graph, tmp_path):
    path = graph.save(tmp_path / "model" / "cifar10_int8.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "utvm-host-graph" and doc["version"] == 1 and doc["params"] == "cifar10_int8.npz"
    assert [n["name"] for n in doc["nodes"]] == ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc"]
    assert doc["nodes"][0]["attrs"]["dim"] == 32 and doc["nodes"][0]["inputs"] == ["data", "conv1_w", "conv1_b"]
    back = Graph.load(path)
    # a graph file names only files in its folder: a source outside it is copied in
    assert doc["sources"] == ["cifar10_int8_sources/cnn_kernels.c"]
    assert back.sources[0] == (tmp_path / "model" / "cifar10_int8_sources" / "cnn_kernels.c").resolve()
    assert back.sources[0].read_bytes() == cifar.KERNELS.read_bytes()
    assert set(back.params) == set(graph.params)
    for name, arr in graph.params.items():
        np.testing.assert_array_equal(back.params[name], arr)
        assert back.params[name].dtype == arr.dtype
    assert [(n.name, n.kernel, n.inputs, n.outputs, n.attrs) for n in back.nodes] == \
        [(n.name, n.kernel, n.inputs, n.outputs, n.attrs) for n in graph.nodes]


def test_inconsistent_graphs_are_refused_with_the_reason(tmp_path):
    b = GraphBuilder("bad", sources=[tmp_path / "k.c"])
    x = b.input("x", (4,), "int8")
    b.node("n1", "k", ["y"], ("z", (4,), "int8"))
    b.tensors["y"] = b.tensors["z"]
    with pytest.raises(ConfigError) as e:
        b.graph()
    assert str(e.value) == "graph 'bad': node 'n1' reads 'y' before any node produces it (nodes run in file order)"
    b = GraphBuilder("bad", sources=[])
    x = b.input("x", (4,), "int8")
    b.node("n1", "k", [x], ("y", (4,), "int8"))
    b.node("n2", "k", [x], ("y2", (4,), "int8"))
    b.nodes[1].outputs = ["y"]
    with pytest.raises(ConfigError, match=r"^graph 'bad': tensor 'y' is produced twice \(again by node 'n2'\)$"):
        b.graph()
    b = GraphBuilder("bad", sources=[])
    b.param("w", np.zeros(3, np.int8))
    b.params["w"] = np.zeros(4, np.int8)
    with pytest.raises(ConfigError, match=r"^graph 'bad': param 'w' is int8\[4\] in the params file but declared "
                                          r"int8\[3\]$"):
        b.graph()
    (tmp_path / "x.json").write_text(json.dumps({"format": "onnx"}))
    with pytest.raises(ConfigError, match=r"is not a utvm-host-graph version 1 file \(format 'onnx', version None\)"):
        Graph.load(tmp_path / "x.json")


# ---- the memory plan ----------------------------------------------------------------------

def test_plan_reuses_memory_of_dead_tensors_and_never_overlaps_live_ones(graph):
    plan = graph.plan()
    assert plan.params_size >= sum(a.nbytes for a in graph.params.values())
    assert plan.no_reuse == 32768 + 8192 + 8192 + 2048 + 4096 + 1024
    assert plan.arena_size == 40960 < plan.no_reuse   # conv1 (32 KiB) + pool1 (8 KiB) live together, at most
    live = graph.intermediates
    for a in live:
        for b in live:
            if a >= b:
                continue
            (fa, la), (fb, lb) = plan.lifetimes[a], plan.lifetimes[b]
            oa, ob = plan.arena_offsets[a], plan.arena_offsets[b]
            sa, sb = graph.tensors[a].nbytes, graph.tensors[b].nbytes
            if fa <= lb and fb <= la:   # alive at the same time: disjoint memory
                assert oa + sa <= ob or ob + sb <= oa, (a, b)
    assert any(plan.arena_offsets[a] == plan.arena_offsets[b] for a in live for b in live if a < b)


# ---- host-driven, every device -------------------------------------------------------------

@pytest.fixture(scope="module")
def executor(sess, graph):
    ex = GraphExecutor(graph, sess)
    yield ex
    ex.close()


def test_cifar10_host_driven_matches_numpy_bit_exactly(executor, image, expected):
    executor.set_input("data", image)
    executor.run()
    out = executor.get_output(0)
    assert out.dtype == np.int8 and out.shape == (10,)
    np.testing.assert_array_equal(out, expected["logits"])
    # the last intermediate is still in the arena (earlier ones share memory with later ones)
    np.testing.assert_array_equal(executor.tensors["pool3"].numpy(), expected["pool3"])


def test_second_inference_moves_only_inputs_and_outputs(sess, cfg, executor, graph, expected):
    image2 = cifar.test_image(99)
    want = cifar.reference(graph, {"data": image2})["logits"]
    executor.set_input("data", cifar.test_image())   # the batch's task table is written by this run
    executor.run()
    counting = sess.transport = CountingTransport(sess.transport)
    verify, sess.verify = sess.verify, False   # UTVM_HOST_VERIFY=1 would add its read-backs to the count
    try:
        executor.set_input("data", image2)
        executor.run()
        out = executor.get_output("logits")
        # debugger links report the runtime's summary in registers; the host device's memory is
        # local, and there the two status words are read from it
        status = 8 if is_host(cfg) else 0
        # written: the input alone (the run record is written only when the task count changes:
        # the runtime counts run ids itself)
        assert (counting.bytes_written, counting.bytes_read, counting.runs) == (32 * 32 * 3, 10 + status, 1)
    finally:
        sess.transport = counting.inner
        sess.verify = verify
    np.testing.assert_array_equal(out, want)


def test_profile_names_every_node_and_adds_up(executor, sess):
    prof = executor.profile()
    assert [r.node for r in prof.rows] == ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc"]
    assert prof.total == sum(r.count for r in prof.rows) and prof.counter == sess.cfg["counter"]["name"]
    assert abs(sum(r.share for r in prof.rows) - 1) < 1e-9
    convs = sum(r.share for r in prof.rows if r.kernel == "conv_hwc_s8")
    assert convs > 0.8, str(prof)   # the convolutions dominate on every device
    assert prof.batch >= prof.total
    text = str(prof)
    assert text.splitlines()[0].split() == ["node", "kernel", sess.cfg["counter"]["name"], "share"]
    assert "<table>" in prof._repr_html_()


def test_memory_report(executor, graph):
    report = executor.memory_report()
    assert report["params"] == graph.plan().params_size and report["activations"] == 40960
    assert report["activations_no_reuse"] == 56320 and report["io"] == 3072 + 10
    assert report["code"] > 500 and report["runtime"] > 500 and 0 < report["largest_frame"] < report["stack"]


def test_node_error_names_the_node_and_the_session_goes_on(sess, tmp_path):
    body = SCALE.replace("{ for", "{ if (k < 0) { TVMAPISetLastError(\"negative k\"); return; } for")
    ex = GraphExecutor(tiny_graph(tmp_path, body), sess)
    try:
        ex.set_input("x", np.arange(8, dtype=np.int32))
        with pytest.raises(KernelError) as e:
            ex.run()
        assert str(e.value) == "node 'second' (kernel 'scale') failed: negative k"
        np.testing.assert_array_equal(ex.tensors["y"].numpy(), 3 * np.arange(8))   # the first node ran
    finally:
        ex.close()
    ex = GraphExecutor(tiny_graph(tmp_path, SCALE), sess)
    ex.set_input("x", np.arange(8, dtype=np.int32))
    ex.run()
    np.testing.assert_array_equal(ex.get_output(), -3 * np.arange(8))
    ex.close()


def test_more_nodes_than_the_task_table_run_in_several_round_trips(sess, tmp_path):
    src = tmp_path / "inc.c"
    src.write_text("#include <stdint.h>\nvoid inc(const int32_t *x, int32_t *y) { y[0] = x[0] + 1; }\n")
    b = GraphBuilder("chain", sources=[src])
    t = b.input("x", (1,), "int32")
    for i in range(150):
        t = b.node(f"inc{i}", "inc", [t], (f"t{i}", (1,), "int32"))
    b.output(t)
    ex = GraphExecutor(b.graph(), sess)
    assert ex.plan.arena_size == 32   # two 16-byte slots alternate along the chain
    counting = sess.transport = CountingTransport(sess.transport)
    try:
        ex.set_input("x", np.array([5], np.int32))
        ex.run()
        assert counting.runs == 3
    finally:
        sess.transport = counting.inner
    assert ex.get_output()[0] == 155
    ex.close()


def test_a_model_too_big_is_refused_before_anything_is_sent(graph):
    require_spike()
    with Session(devices.spike(isa="rv32imac", memory_size=128 * 1024)) as sess:
        counting = sess.transport = CountingTransport(sess.transport)
        with pytest.raises(LayoutError) as e:
            GraphExecutor(graph, sess)
        assert str(e.value).startswith(
            "graph 'cifar10_int8' does not fit on 'spike-rv32imac' (nothing was sent): it needs its kernels (")
        assert ("params 89,584, activations 40,960 (liveness-planned; 56,320 without reuse) and inputs/outputs "
                "3,082 bytes. cannot place 40,960 bytes of tensor uint8[40960] in memory region 'ram'") in str(e.value)
        assert counting.bytes_written == 0 and not sess.modules
        assert "planned" not in str(sess.memory_map())


# ---- standalone firmware -------------------------------------------------------------------

FIRMWARE_DEVICES = {"spike-rv32": require_spike, "qemu-cortex-m3": require_qemu("qemu-system-arm", "arm-none-eabi-gcc"),
                    "qemu-cortex-m33": require_qemu("qemu-system-arm", "arm-none-eabi-gcc")}


@pytest.mark.parametrize("device", list(FIRMWARE_DEVICES))
def test_standalone_firmware_matches_host_driven_and_numpy(device, graph, image, expected, tmp_path):
    cfg = device_cfg(device)
    fw = export_firmware(graph, cfg, tmp_path / "cifar10.elf", inputs={"data": image})
    assert fw.memory["params"] == graph.plan().params_size and fw.memory["rodata"] >= fw.memory["params"]
    assert fw.memory["bss"] >= fw.memory["activations"] == 40960
    run = fw.run()
    assert run.status == 0, run.console
    np.testing.assert_array_equal(run.outputs["logits"], expected["logits"])
    assert run.count > 0 and f"utvm-graph cifar10_int8 status 0\nutvm-count {run.count}\n" in run.console
    with Session(cfg) as sess:   # the same model host-driven on the same device
        ex = GraphExecutor(graph, sess)
        ex.set_input("data", image)
        ex.run()
        np.testing.assert_array_equal(ex.get_output(), run.outputs["logits"])
        if device.startswith("spike"):   # instructions: standalone within 1% of host-driven
            prof = ex.profile()
            assert 0.99 <= run.count / prof.batch <= 1.01, (run.count, prof.batch)
    image2 = cifar.test_image(5)
    fw.set_input("data", image2)   # patched in the ELF file
    run2 = fw.run()
    np.testing.assert_array_equal(run2.outputs["logits"], cifar.reference(graph, {"data": image2})["logits"])


def test_firmware_reports_a_kernel_error_with_status_1(tmp_path):
    require_qemu("qemu-system-arm", "arm-none-eabi-gcc")()
    body = SCALE.replace("{ for", "{ if (k < 0) { TVMAPISetLastError(\"negative k\"); return; } for")
    fw = export_firmware(tiny_graph(tmp_path, body), devices.qemu("cortex-m3"), tmp_path / "tiny.elf",
                         inputs={"x": np.arange(8, dtype=np.int32)})
    run = fw.run()
    assert run.status == 1
    assert "utvm-error node 'second' (kernel 'scale'): negative k\n" in run.console and "utvm-graph tiny status 1" in run.console


def test_firmware_is_refused_for_devices_it_cannot_end_on(graph, tmp_path):
    with pytest.raises(ConfigError) as e:
        export_firmware(graph, devices.host(), tmp_path / "x.elf")
    assert str(e.value) == ("standalone firmware is built for RISC-V (run on Spike) and Cortex-M (semihosting) "
                            f"devices; 'host' is {devices.host().abi['elf_machine']}: run the graph there with "
                            "GraphExecutor")
    with pytest.raises(ConfigError, match="ends through Spike's HTIF; 'qemu-riscv32' is not a Spike device"):
        export_firmware(graph, devices.qemu("riscv32"), tmp_path / "x.elf")


# ---- TVM kernels in a graph ----------------------------------------------------------------

def test_tvm_generated_kernels_in_a_graph_host_driven_and_standalone(tmp_path):
    tvm = require_tvm()
    from tvm import te, topi
    x = te.placeholder((4, 16), name="X")
    w = te.placeholder((8, 16), name="W")
    dense = te.create_prim_func([x, w, topi.nn.relu(topi.nn.dense(x, w))]).with_attr("global_symbol", "dense_relu")
    a = te.placeholder((4, 8), name="A")
    s = te.var("s", dtype="float32")
    scale = te.create_prim_func([a, te.compute((4, 8), lambda i, j: a[i, j] * s, name="B"), s])
    src = tmp_path / "tvm_kernels.c"
    src.write_text(tvm.tirx.build(tvm.IRModule({"dense_relu": dense, "scale": scale.with_attr("global_symbol", "scale")}),
                                  target="c").inspect_source())
    rng = np.random.default_rng(3)
    wv = rng.standard_normal((8, 16)).astype(np.float32)
    b = GraphBuilder("tvm_mlp", sources=[src])
    xin = b.input("x", (4, 16), "float32")
    h = b.node("fc", "dense_relu", [xin, b.param("w", wv)], ("h", (4, 8), "float32"))
    y = b.node("scale", "scale", [h], ("y", (4, 8), "float32"), s=0.5)
    b.output(y)
    g = b.graph()
    xv = rng.standard_normal((4, 16)).astype(np.float32)
    want = np.maximum(xv @ wv.T, 0) * np.float32(0.5)
    with Session(devices.host()) as sess:
        ex = GraphExecutor(g, sess)
        ex.set_input("x", xv)
        ex.run()
        np.testing.assert_allclose(ex.get_output(), want, rtol=1e-5)
    require_qemu("qemu-system-arm", "arm-none-eabi-gcc")()
    run = export_firmware(g, devices.qemu("cortex-m33"), tmp_path / "mlp.elf", inputs={"x": xv}).run()
    assert run.status == 0, run.console
    np.testing.assert_allclose(run.outputs["y"], want, rtol=1e-5)

