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


def median(samples: List[float]) -> float:
    return statistics.median(samples)
