"""Host-driven execution of a whole model: a :class:`~utvm_host.graph.Graph` run node by node
on a session (:class:`GraphExecutor`), and the per-node :class:`Profile` of one run.

The graph model, its validation and its memory planner are :mod:`utvm_host.graph`'s; this
module adds what needs a session.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .errors import ConfigError, LayoutError
from .graph import Graph
from .session import BoundCall, Session, Tensor


@dataclass
class NodeProfile:
    """One node's device count in a profiled run and its ``share`` of the total."""
    node: str
    kernel: str
    count: int
    share: float


class Profile:
    """Per-node device counts of one run (``cfg["counter"]`` units) and each node's share."""

    def __init__(self, rows: List[NodeProfile], counter: str, batch: Optional[int] = None):
        self.rows, self.counter = rows, counter
        self.total = sum(r.count for r in rows)
        #: The whole run as the device counted it, the runtime's loop between nodes included.
        self.batch = batch

    def __str__(self) -> str:
        width = max([len(r.node) for r in self.rows] + [4])
        kw = max([len(r.kernel) for r in self.rows] + [6])
        lines = [f"{'node':{width}s}  {'kernel':{kw}s}  {self.counter:>14s}  share"]
        lines += [f"{r.node:{width}s}  {r.kernel:{kw}s}  {r.count:>14,}  {100 * r.share:5.1f}%" for r in self.rows]
        lines.append(f"{'total':{width}s}  {'':{kw}s}  {self.total:>14,}  100.0%")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(r.node)}</td><td>{html.escape(r.kernel)}</td>"
                       f"<td style='text-align:right'>{r.count:,}</td><td style='text-align:right'>"
                       f"{100 * r.share:.1f}%</td></tr>" for r in self.rows)
        return (f"<table><tr><th>node</th><th>kernel</th><th>{html.escape(self.counter)}</th><th>share</th></tr>"
                f"{rows}<tr><th>total</th><th></th><th style='text-align:right'>{self.total:,}</th><th>100%</th>"
                "</tr></table>")


class GraphExecutor:
    """Runs a :class:`~utvm_host.graph.Graph` on a session, host-driven.

    Construction builds the kernels into one library, plans the whole model's memory (library,
    params, activation arena, inputs, outputs) before anything is sent (a
    :class:`~utvm_host.errors.LayoutError` says what does not fit), loads the library, uploads
    the params once and prepares every node's call on the device. ``run()`` is then one round
    trip per 64 nodes: only inputs (``set_input``) and outputs (``get_output``) cross the link.

    Parameters
    ----------
    graph : Graph
        The model.
    sess : Session
        An open session on the device.

    Raises
    ------
    LayoutError
        The model does not fit (nothing was sent).
    ConfigError
        A node calls a kernel the graph's sources do not define.
    """

    def __init__(self, graph: Graph, sess: Session):
        self.graph, self.sess = graph, sess
        self.library = graph.build(sess.cfg)
        self.plan = graph.plan()
        self._check_fit()
        self.module = sess.load(self.library)
        self._params = sess.empty(max(self.plan.params_size, 1), "uint8")
        self._arena = sess.empty(max(self.plan.arena_size, 1), "uint8")
        self._upload_params()
        self.tensors: Dict[str, Tensor] = self._place_tensors()
        self.calls: List[BoundCall] = [self._bind(node) for node in graph.nodes]

    def _check_fit(self) -> None:
        """Plan everything on the device first; a LayoutError says what the graph needs."""
        graph, sess, specs = self.graph, self.sess, self.graph.tensors
        io = graph.inputs + graph.outputs
        try:
            sess.plan([self.library], [(max(self.plan.params_size, 1), "uint8"),
                                       (max(self.plan.arena_size, 1), "uint8")]
                      + [(specs[t].shape, specs[t].dtype) for t in io])
        except LayoutError as exc:
            io_bytes = sum(specs[t].nbytes for t in io)
            raise LayoutError(
                f"graph '{graph.name}' does not fit on '{sess.cfg.name}' (nothing was sent): it needs its kernels "
                f"({self.library.size:,} bytes before linking), params {self.plan.params_size:,}, activations "
                f"{self.plan.arena_size:,} (liveness-planned; {self.plan.no_reuse:,} without reuse) and inputs/"
                f"outputs {io_bytes:,} bytes. {exc}", region=exc.region, what=exc.what, owner=exc.owner,
                needed=exc.needed, capacity=exc.capacity, used=exc.used, free=exc.free,
                largest_free=exc.largest_free, required_size=exc.required_size) from None

    def _upload_params(self) -> None:
        """All params in one transfer, at their planned offsets."""
        blob = bytearray(self.plan.params_size)
        for name, offset in self.plan.param_offsets.items():
            raw = self.graph.params[name].tobytes()
            blob[offset:offset + len(raw)] = raw
        if blob:
            self.sess.write_bulk(self._params.addr, bytes(blob), f"params of {self.graph.name}")

    def _place_tensors(self) -> Dict[str, Tensor]:
        """Inputs and outputs in their own buffers; params and intermediates as views of theirs."""
        specs, sess = self.graph.tensors, self.sess
        tensors = {t: sess.empty(specs[t].shape, specs[t].dtype) for t in self.graph.inputs + self.graph.outputs}
        for name, offset in self.plan.param_offsets.items():
            tensors[name] = self._params.view(offset, specs[name].shape, specs[name].dtype)
        for name, offset in self.plan.arena_offsets.items():
            tensors[name] = self._arena.view(offset, specs[name].shape, specs[name].dtype)
        return tensors

    def _bind(self, node) -> BoundCall:
        """The node's call, its tensors bound, prepared on the device."""
        if node.kernel not in self.module:
            raise ConfigError(f"graph '{self.graph.name}': node '{node.name}' calls kernel '{node.kernel}', which "
                              f"its sources do not define; they define: {', '.join(self.module.kernels())}")
        args = [self.tensors[a] if isinstance(a, str) and a in self.tensors else a for a in node.args]
        return self.module[node.kernel].bind(*args, label=f"node '{node.name}' (kernel '{node.kernel}')")

    def set_input(self, name: str, value: Any) -> None:
        """Write a graph input to the device.

        Parameters
        ----------
        name : str
            A graph input.
        value : array_like
            A numpy array of its declared shape and dtype.

        Raises
        ------
        KeyError
            ``name`` is not an input.
        TypeError
            ``value`` has another shape or dtype.
        """
        if name not in self.graph.inputs:
            raise KeyError(f"'{name}' is not an input of graph '{self.graph.name}'; its inputs: {self.graph.inputs}")
        spec = self.graph.tensors[name]
        arr = np.asarray(value)
        if arr.shape != spec.shape or arr.dtype != spec.dtype:
            raise TypeError(f"input '{name}' needs a {spec.dtype.name} array of shape {spec.shape}, got "
                            f"{arr.dtype.name} {arr.shape}")
        self.tensors[name].copyfrom(arr)

    def run(self, timeout: Optional[float] = None) -> None:
        """Run every node once, in order, on the device.

        Parameters
        ----------
        timeout : float, optional
            Seconds the device may take (the session's default otherwise).
        """
        self.sess.run_batch(self.calls, timeout=timeout)

    def get_output(self, index: Union[int, str] = 0) -> np.ndarray:
        """A graph output, read from the device.

        Parameters
        ----------
        index : int or str
            The output's position or name.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        KeyError
            ``index`` names no output.
        """
        name = self.graph.outputs[index] if isinstance(index, int) else index
        if name not in self.graph.outputs:
            raise KeyError(f"'{name}' is not an output of graph '{self.graph.name}'; its outputs: {self.graph.outputs}")
        return self.tensors[name].numpy()

    def profile(self, timeout: Optional[float] = None) -> Profile:
        """Run once with each node's device counter difference recorded.

        Parameters
        ----------
        timeout : float, optional
            Seconds the device may take.

        Returns
        -------
        Profile
            Per-node counts and shares, and the whole batch's count.
        """
        counts = self.sess.run_batch(self.calls, timeout=timeout, profile=True)
        total = sum(counts) or 1
        rows = [NodeProfile(n.name, n.kernel, c, c / total) for n, c in zip(self.graph.nodes, counts)]
        return Profile(rows, self.sess.cfg["counter"]["name"], self.sess.last_batch_count)

    def memory_report(self) -> Dict[str, int]:
        """Bytes the graph takes on the device.

        Returns
        -------
        dict
            ``code`` (the kernels' library, all sections), ``runtime``, ``params``,
            ``activations`` (the arena's peak) and ``activations_no_reuse``, ``io`` (inputs and
            outputs), ``stack`` (the region; ``largest_frame`` is the deepest kernel frame gcc
            measured) and ``workspace_peak`` (of the last run).
        """
        io = sum(self.graph.tensors[t].nbytes for t in self.graph.inputs + self.graph.outputs)
        frames = self.library.stack_usage
        return {"code": self.module.image.size, "runtime": self.sess.runtime.size,
                "params": self.plan.params_size, "activations": self.plan.arena_size,
                "activations_no_reuse": self.plan.no_reuse, "io": io, "stack": self.sess.stack_block.size,
                "largest_frame": max(frames.values(), default=0), "workspace_peak": self.sess.workspace_peak}

    def close(self) -> None:
        """Free the device memory and unload the kernels."""
        for call in self.calls:
            call.free()
        self.calls = []
        self.tensors = {}
        for t in (self._params, self._arena):
            t.free()
        if self.module.loaded:
            self.module.unload()


__all__ = ["GraphExecutor", "Profile", "NodeProfile"]
