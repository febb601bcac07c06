"""The examples a user runs first, run as a user runs them (their output is quoted in the README)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import require_spike, require_tool

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(*argv, timeout=300):
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, timeout=timeout)


def test_debug_fault_example_prints_what_the_readme_shows():
    require_spike()
    require_tool("gdb-multiarch")
    out = run(EXAMPLES / "debug_fault.py")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "stopped in scatter at scatter.c:8: store/AMO access fault (mcause 7)"
    m = re.fullmatch(r"  locals: \{'slot': '0x([0-9a-f]+)', 'i': '3'\}", lines[1])
    slot = int(m.group(1), 16)
    m = re.fullmatch(r"  slot = 0x([0-9a-f]+), dst = 0x([0-9a-f]+), idx\[i\] = 268435456", lines[2])
    assert int(m.group(1), 16) == slot == (int(m.group(2), 16) + 4 * 0x10000000) % (1 << 32)
    assert lines[3] == f"  the faulting address: 0x{slot:x}"
    assert lines[4].startswith("the call ends in DeviceFault: kernel 'scatter' crashed: store/AMO access fault "
                               "(mcause 7) at scatter+0x")
    assert lines[4].endswith(f"(scatter.c:8), mtval=0x{slot:x}; the device was stopped and its 1 library reloaded")
    assert lines[5:] == ["dst after the fault: [1. 2. 3. 0. 0. 0. 0. 0.]",
                         "dst after a good call: [1. 2. 3. 4. 0. 0. 0. 0.]"]


def test_cifar10_example_on_the_host():
    out = run(EXAMPLES / "cifar10" / "run.py", "host")
    assert out.returncode == 0, out.stderr
    assert "numpy reference logits: [ 18  52  36  17 -99 -12 -36 -49  31 -82]" in out.stdout
    assert "host: host-driven logits match numpy bit for bit" in out.stdout
