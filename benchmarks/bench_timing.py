"""time_evaluator(number=100) wall time / one plain call's wall time, device time aside
(goal <= 1.5): timing 100 iterations costs about one round trip, not 100."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import device, median, met, repeat  # noqa: E402

from utvm_host import Session, build  # noqa: E402


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "host"
    cfg = device(name)
    with tempfile.TemporaryDirectory() as tmp, Session(cfg) as sess:
        src = Path(tmp) / "empty.c"
        src.write_text("void empty(void) {}\n")
        fn = sess.load(build([src], cfg))["empty"]
        fn()
        te = fn.time_evaluator(number=100, repeat=1)
        te()                                            # measures and caches the loop overhead
        n = 200 if name == "host" else 20
        t_call = median(repeat(fn, number=n))
        t_eval = median(repeat(te, number=n))
    ratio = t_eval / t_call
    print(f"time_evaluator on {cfg.name}: number=100 takes {t_eval * 1e3:.3f} ms, one plain call "
          f"{t_call * 1e3:.3f} ms (an empty kernel: device time aside)")
    print(f"  time_evaluator(number=100) / one call  {ratio:.2f}   goal <= 1.5   {met(ratio, 1.5)}")


if __name__ == "__main__":
    main()
