"""The int8 CIFAR-10 CNN end to end: write the graph, run it host-driven on a device (profile and
memory report), export standalone firmware, run that with no session, and check both against
numpy bit for bit.

    python examples/cifar10/run.py                    # host-driven on the host device only
    python examples/cifar10/run.py spike-rv32 qemu-cortex-m3 qemu-cortex-m33
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model  # noqa: E402

from utvm_host import Session, devices  # noqa: E402
from utvm_host.export import export_firmware  # noqa: E402
from utvm_host.executor import GraphExecutor  # noqa: E402
from utvm_host.graph import Graph  # noqa: E402



def main(names) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = model.build_graph().save(Path(tmp) / "cifar10_int8.json")
        g = Graph.load(path)                      # the JSON + .npz a user would ship
        print(g)
        img = model.test_image()
        want = model.reference(g, {"data": img})["logits"]
        print("numpy reference logits:", want)
        for name in names:
            cfg = devices.by_name(name)
            with Session(cfg) as sess:
                ex = GraphExecutor(g, sess)
                ex.set_input("data", img)
                ex.run()
                out = ex.get_output(0)
                assert np.array_equal(out, want), (name, out, want)
                print(f"\n{cfg.name}: host-driven logits match numpy bit for bit")
                print(ex.profile())
                print("memory (bytes):", ex.memory_report())
            if name == "host":
                continue
            fw = export_firmware(g, cfg, Path(tmp) / f"{name}.elf", inputs={"data": img})
            run = fw.run()
            assert run.status == 0 and np.array_equal(run.outputs["logits"], want), run.console
            print(f"{cfg.name}: standalone firmware ({fw.path.stat().st_size:,} byte ELF) prints the same logits; "
                  f"{run.count:,} {run.counter}")
            print("firmware memory (bytes):", fw.memory)


if __name__ == "__main__":
    main(sys.argv[1:] or ["host"])
