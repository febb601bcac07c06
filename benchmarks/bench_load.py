"""Host-side load() time of a 4 KiB library, compile excluded (goal <= 20 ms), side by side
with one bare link of the same object by the same gcc driver (load links twice: measure, place)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, met, repeat  # noqa: E402

from utvm_host import Session, build, devices  # noqa: E402
from utvm_host.elf import ElfFile  # noqa: E402
from utvm_host.toolchain import Toolchain  # noqa: E402


def kernel_source(functions: int) -> str:
    lines = ["#include <stdint.h>"]
    for i in range(functions):
        lines.append(f"int32_t k{i}(const int32_t *x, int32_t *y, int32_t n) {{\n"
                     f"  int32_t acc = {i};\n  for (int32_t j = 0; j < n; j++) {{ acc = acc * 31 + x[j] * {i + 3};"
                     f" y[j] = acc ^ (acc >> {i % 7 + 1}); }}\n  return acc;\n}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    cfg = devices.host()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        functions = 8
        while True:  # grow until the library's code is at least 4 KiB
            src = tmp / f"lib4k_{functions}.c"
            src.write_text(kernel_source(functions))
            lib = build([src], cfg, cflags=["-O1"])
            with ElfFile(lib.path) as elf:
                text = sum(s.size for s in elf.sections if s.alloc)
            if text >= 4096:
                break
            functions += 8
        with Session(cfg) as sess:
            def load_unload():
                sess.load(lib).unload()

            def first_load_unload():
                sess.linker._measured.clear()     # as the first load of this library: link twice
                sess.load(lib).unload()
            load_unload()
            t_load = median(repeat(first_load_unload, number=10, repeat=5))
            t_again = median(repeat(load_unload, number=10, repeat=5))
        tc = Toolchain(cfg)
        script = tmp / "flat.ld"
        script.write_text("SECTIONS { .text 0x10100000 : { *(.text*) } .rodata : { *(.rodata*) } "
                          ".data : { *(.data*) } .bss : { *(.bss*) } /DISCARD/ : { *(.note*) *(.comment) } }")

        def bare_link():
            subprocess.run([tc.cc, "-nostdlib", "-nostartfiles", "-static", *tc.ldflags, "-T", str(script),
                            "-Wl,-e,0", "-Wl,--build-id=none", lib.path, *tc.libs, "-o", str(tmp / "bare.elf")],
                           check=True, capture_output=True)
        t_link = median(repeat(bare_link, number=10, repeat=5))
    print(f"load() of a {text:,}-byte library ({functions} kernels), compile excluded (median of 5 x 10)")
    print(f"  first load() + unload()      {t_load * 1e3:7.2f} ms   goal <= 20 ms   "
          f"{met(t_load, 20e-3)}")
    print(f"  load() again + unload()      {t_again * 1e3:7.2f} ms   (sizes known: one link)")
    print(f"  one bare gcc link            {t_link * 1e3:7.2f} ms   (load links twice)")
    print(f"  load() / bare link           {t_load / t_link:7.2f} x")


if __name__ == "__main__":
    main()
