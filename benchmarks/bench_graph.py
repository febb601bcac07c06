"""One int8 CIFAR-10 inference (examples/cifar10) on Spike rv32imac, host-driven vs standalone,
measured side by side in one run:

- device instructions, standalone / host-driven (goal <= 1.05): the same kernels, the same
  memory plan; host-driven adds the runtime's task loop, standalone a generated call sequence
- host-driven wall time split into device and link (goal: dominated by the device): the link
  part is writing the input, reading the output and one round trip of an empty batch
- bytes crossing the link per inference after the first
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "examples" / "cifar10"))
from _common import median, repeat  # noqa: E402

import model as cifar  # noqa: E402
from utvm_host import Session, build, devices  # noqa: E402
from utvm_host.export import export_firmware  # noqa: E402
from utvm_host.executor import GraphExecutor  # noqa: E402
from utvm_host.transport import CountingTransport  # noqa: E402


def main() -> None:
    isa = sys.argv[1] if len(sys.argv) > 1 else "rv32imac"
    cfg = devices.spike(isa=isa)
    graph = cifar.build_graph()
    image = cifar.test_image()
    want = cifar.reference(graph, {"data": image})["logits"]
    with tempfile.TemporaryDirectory() as tmp, Session(cfg) as sess:
        t0 = time.perf_counter()
        ex = GraphExecutor(graph, sess)
        setup = time.perf_counter() - t0
        ex.set_input("data", image)
        prof = ex.profile()

        def inference():
            ex.set_input("data", image)
            ex.run()
            return ex.get_output()
        assert (inference() == want).all()
        wall = median(repeat(inference, number=1, repeat=3))
        write = median(repeat(lambda: ex.set_input("data", image), number=3, repeat=3))
        read = median(repeat(ex.get_output, number=3, repeat=3))
        src = Path(tmp) / "nop.c"
        src.write_text("void nop(void) {}\n")
        nop = sess.load(build([src], cfg))["nop"].bind()
        trip = median(repeat(lambda: sess.run_batch([nop]), number=3, repeat=3))
        inference()   # the batch's task table is written again after the empty batch
        counting = sess.transport = CountingTransport(sess.transport)
        inference()
        traffic = (counting.bytes_written, counting.bytes_read, counting.runs)
        sess.transport = counting.inner

        fw = export_firmware(graph, cfg, Path(tmp) / "cifar10.elf", inputs={"data": image})
        t0 = time.perf_counter()
        run = fw.run()
        fw_wall = time.perf_counter() - t0
        assert run.status == 0 and (run.outputs["logits"] == want).all()

    link = write + read + trip
    print(f"CIFAR-10 int8 CNN on Spike {isa} (7 nodes, {sum(a.nbytes for a in graph.params.values()):,} bytes of params)")
    print(f"  setup (build, plan, load, upload params once, bind nodes): {setup:.2f} s")
    print(f"  device instructions: host-driven {prof.batch:,} (nodes {prof.total:,}), standalone {run.count:,}")
    print(f"  standalone / host-driven instructions: {run.count / prof.batch:.5f}   (goal <= 1.05)")
    print(f"  host-driven inference wall {wall * 1e3:.0f} ms: link {link * 1e3:.1f} ms "
          f"(input write {write * 1e3:.1f}, output read {read * 1e3:.1f}, round trip {trip * 1e3:.1f}) = "
          f"{100 * link / wall:.1f}%, device {100 * (1 - link / wall):.1f}%")
    print(f"  standalone run wall (Spike process start to exit): {fw_wall * 1e3:.0f} ms")
    print(f"  link traffic per inference after the first: {traffic[0]:,} bytes written, {traffic[1]:,} read, "
          f"{traffic[2]} run")
    print(str(prof))
    print("firmware memory:", fw.memory)


if __name__ == "__main__":
    main()
