"""Small helpers shared by the benchmark scripts (timing loops that report medians)."""
from __future__ import annotations

import statistics
import time
from typing import Callable, List


def repeat(fn: Callable[[], object], *, number: int, repeat: int = 5) -> List[float]:
    """Seconds per call of ``fn``: ``repeat`` samples, each the mean of ``number`` calls."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return samples


def met(value: float, goal: float, at_most: bool = True) -> str:
    """"OK" when ``value`` meets ``goal`` (at most it, or with ``at_most=False`` at least it), else "MISSED"."""
    return "OK" if (value <= goal if at_most else value >= goal) else "MISSED"


def median(samples: List[float]) -> float:
    return statistics.median(samples)


def gdb_restore_dump(gdb_arch: str, target: str, addr: int, size: int, src, dst) -> tuple:
    """Seconds gdb-multiarch spends in `restore` of ``src`` and in `dump` to ``dst`` at ``addr``,
    timed inside gdb (its start-up and connection are not counted). ``target`` is the connect
    command, e.g. ``target remote 127.0.0.1:1234``."""
    import subprocess
    script = [
        f"set architecture {gdb_arch}", "set remotetimeout 60", target,
        "python import time; t0 = time.perf_counter()",
        f"restore {src} binary 0x{addr:x}",
        "python t1 = time.perf_counter()",
        f"dump binary memory {dst} 0x{addr:x} 0x{addr + size:x}",
        "python t2 = time.perf_counter(); print('UTVM_TIMES', t1 - t0, t2 - t1)",
        "detach",
    ]
    argv = ["gdb-multiarch", "-nx", "-batch"] + [a for cmd in script for a in ("-ex", cmd)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout
    line = next(l for l in out.splitlines() if l.startswith("UTVM_TIMES"))
    return tuple(float(v) for v in line.split()[1:])


def device(name: str):
    """A device config by short name: host, spike (rv32imac), or a QEMU machine name."""
    from utvm_host import devices
    if name == "host":
        return devices.host()
    if name == "spike":
        return devices.spike(isa="rv32imac")
    return devices.qemu(name)
