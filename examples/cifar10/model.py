"""The int8 CIFAR-10 CNN of Arm's CMSIS-NN example (arm_nnexamples_cifar10), as a utvm-host graph.

conv 5x5x32 + relu, maxpool 3/2, conv 5x5x32 + relu, avgpool 3/2, conv 5x5x64 + relu,
avgpool 3/2, dense 10; int8 HWC tensors, requantization by shifts (cnn_kernels.c). No
weights may be downloaded here, so they are seeded random numbers, and each layer's output
shift is calibrated on a seeded image so activations use the int8 range. ``reference()``
computes the same arithmetic in numpy; a device must match it bit for bit.

    python examples/cifar10/model.py out/cifar10_int8.json   # writes the graph and its params
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict

import numpy as np

from utvm_host.graph import Graph, GraphBuilder

HERE = Path(__file__).resolve().parent
KERNELS = HERE / "cnn_kernels.c"


# ---- numpy twins of the C kernels (exactly the same integer arithmetic) -----------------------

def _requantize(acc: np.ndarray, out_shift: int, relu: int = 0) -> np.ndarray:
    out = np.clip(acc >> out_shift, -128, 127).astype(np.int8)
    return np.maximum(out, 0) if relu else out


def _accumulate_conv(x, w, pad, stride, out_dim):
    k = w.shape[1]
    xp = np.pad(x.astype(np.int64), ((pad, pad), (pad, pad), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(0, 1))   # H', W', C, k, k
    win = win[::stride, ::stride][:out_dim, :out_dim]
    return np.einsum("yxcij,oijc->yxo", win, w.astype(np.int64))


def conv_hwc_s8(x, w, b, dim, ch_in, ch_out, k, pad, stride, out_dim, bias_shift, out_shift, relu):
    acc = _accumulate_conv(x, w, pad, stride, out_dim)
    acc += (b.astype(np.int64) << bias_shift) + ((1 << (out_shift - 1)) if out_shift > 0 else 0)
    return _requantize(acc, out_shift, relu)


def _pool(x, dim, ch, k, pad, stride, out_dim, reduce):
    out = np.empty((out_dim, out_dim, ch), np.int8)
    for oy in range(out_dim):
        y0, y1 = max(oy * stride - pad, 0), min(oy * stride - pad + k, dim)
        for ox in range(out_dim):
            x0, x1 = max(ox * stride - pad, 0), min(ox * stride - pad + k, dim)
            out[oy, ox] = reduce(x[y0:y1, x0:x1].reshape(-1, ch).astype(np.int64))
    return out


def maxpool_hwc_s8(x, dim, ch, k, pad, stride, out_dim):
    return _pool(x, dim, ch, k, pad, stride, out_dim, lambda win: win.max(axis=0))


def avgpool_hwc_s8(x, dim, ch, k, pad, stride, out_dim):
    def mean(win):   # C's integer division truncates toward zero
        s, n = win.sum(axis=0), len(win)
        return np.sign(s) * (np.abs(s) // n)
    return _pool(x, dim, ch, k, pad, stride, out_dim, mean)


def dense_s8(x, w, b, dim_in, dim_out, bias_shift, out_shift):
    acc = w.astype(np.int64) @ x.reshape(-1).astype(np.int64)
    acc += (b.astype(np.int64) << bias_shift) + ((1 << (out_shift - 1)) if out_shift > 0 else 0)
    return _requantize(acc, out_shift)


NUMPY_KERNELS: Dict[str, Callable] = {"conv_hwc_s8": conv_hwc_s8, "maxpool_hwc_s8": maxpool_hwc_s8,
                                      "avgpool_hwc_s8": avgpool_hwc_s8, "dense_s8": dense_s8}


def reference(graph: Graph, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Run the graph in numpy; returns every tensor by name."""
    values = dict(graph.params)
    values.update(inputs)
    for node in graph.nodes:
        out = NUMPY_KERNELS[node.kernel](*[values[t] for t in node.inputs], **node.attrs)
        values[node.outputs[0]] = out.reshape(graph.tensors[node.outputs[0]].shape)
    return values


# ---- the model ---------------------------------------------------------------------------------

def _shift_for(acc: np.ndarray) -> int:
    """The right shift that maps the 99.9th percentile of |acc| to about the int8 range."""
    top = float(np.percentile(np.abs(acc), 99.9)) or 1.0
    return max(0, int(np.ceil(np.log2(top / 127.0))))


def build_graph(seed: int = 7, sources=(KERNELS,), cflags=("-O2",)) -> Graph:
    """The CIFAR-10 CNN with seeded weights (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("cifar10_int8", sources=list(sources), cflags=list(cflags))
    x = b.input("data", (32, 32, 3), "int8")
    calib = rng.integers(-128, 128, (32, 32, 3), dtype=np.int8)   # calibration image
    act = calib
    dim, ch = 32, 3

    def conv(name, ch_out):
        nonlocal x, act, dim, ch
        w = np.clip(np.round(rng.normal(0, 30, (ch_out, 5, 5, ch))), -128, 127).astype(np.int8)
        bias = rng.integers(-64, 64, ch_out, dtype=np.int8)
        shift = _shift_for(_accumulate_conv(act, w, 2, 1, dim))
        attrs = dict(dim=dim, ch_in=ch, ch_out=ch_out, k=5, pad=2, stride=1, out_dim=dim,
                     bias_shift=max(shift - 2, 0), out_shift=shift, relu=1)
        wn, bn = b.param(f"{name}_w", w), b.param(f"{name}_b", bias)
        x = b.node(name, "conv_hwc_s8", [x, wn, bn], (name, (dim, dim, ch_out), "int8"), **attrs)
        act, ch = conv_hwc_s8(act, w, bias, **attrs), ch_out

    def pool(name, kind):
        nonlocal x, act, dim
        out_dim = dim // 2
        attrs = dict(dim=dim, ch=ch, k=3, pad=0, stride=2, out_dim=out_dim)
        kernel = f"{kind}pool_hwc_s8"
        x = b.node(name, kernel, [x], (name, (out_dim, out_dim, ch), "int8"), **attrs)
        act, dim = NUMPY_KERNELS[kernel](act, **attrs), out_dim

    conv("conv1", 32)
    pool("pool1", "max")
    conv("conv2", 32)
    pool("pool2", "avg")
    conv("conv3", 64)
    pool("pool3", "avg")
    dim_in = dim * dim * ch
    w = np.clip(np.round(rng.normal(0, 30, (10, dim_in))), -128, 127).astype(np.int8)
    bias = rng.integers(-64, 64, 10, dtype=np.int8)
    shift = _shift_for(w.astype(np.int64) @ act.reshape(-1).astype(np.int64))
    logits = b.node("fc", "dense_s8", [x, b.param("fc_w", w), b.param("fc_b", bias)], ("logits", (10,), "int8"),
                    dim_in=dim_in, dim_out=10, bias_shift=max(shift - 2, 0), out_shift=shift)
    b.output(logits)
    return b.graph()


def test_image(seed: int = 2024) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (32, 32, 3), dtype=np.int8)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "cifar10_int8.json")
    g = build_graph()
    print(g, "->", g.save(out))
