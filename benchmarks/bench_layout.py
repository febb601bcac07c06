"""Automatic layout efficiency: 20 libraries of assorted sizes loaded into one device; bytes of
memory their sections span / the sum of their section sizes (goal <= 1.03; 1.0 = no gaps)."""
from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import device, met  # noqa: E402

from utvm_host import Session, build  # noqa: E402


def source(seed: int) -> str:
    rnd = random.Random(seed)
    lines = ["#include <stdint.h>"]
    for i in range(rnd.randint(1, 24)):
        lines.append(f"static const int32_t table{i}[{rnd.randint(1, 64)}] = {{{i}}};")
        lines.append(f"int32_t lib{seed}_k{i}(const int32_t *x, int32_t n) {{ int32_t acc = table{i}[0];\n"
                     f"  for (int32_t j = 0; j < n; j++) acc = acc * {rnd.randint(3, 99)} + x[j] * table{i}[j % 1];\n"
                     "  return acc; }")
    if rnd.random() < 0.5:
        lines.append(f"int32_t lib{seed}_state[{rnd.randint(1, 200)}] = {{1}};")
    return "\n".join(lines) + "\n"


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "host"
    cfg = device(name)
    with tempfile.TemporaryDirectory() as tmp, Session(cfg) as sess:
        libs = []
        for seed in range(20):
            path = Path(tmp) / f"lib{seed}.c"
            path.write_text(source(seed))
            libs.append(build([path], cfg, cflags=["-O1"]))
        mods = [sess.load(lib) for lib in libs]
        blocks = [b for m in mods for b in m.image.blocks]
        total = sum(b.size for b in blocks)
        span = 0
        for region in {b.region for b in blocks}:
            mine = [b for b in blocks if b.region == region]
            span += max(b.end for b in mine) - min(b.start for b in mine)
        sizes = sorted(sum(b.size for b in m.image.blocks) for m in mods)
    ratio = span / total
    print(f"automatic layout on {cfg.name}: 20 libraries of {sizes[0]:,}-{sizes[-1]:,} bytes, "
          f"{total:,} bytes of sections")
    print(f"  bytes spanned / bytes of sections  {ratio:.4f}   goal <= 1.03   {met(ratio, 1.03)}")


if __name__ == "__main__":
    main()
