"""Timing kernels on the device, the way TVM's ``time_evaluator`` does, without its caps.

The device runtime runs the kernel ``number`` times between two reads of its counter, for each
of ``repeat`` measurements, in one host round trip (arguments sent once, results read once).
The counter is the device's own: nanoseconds of CLOCK_MONOTONIC on the host device, ``mcycle``
on RISC-V (on Spike that equals ``minstret``: *instructions*, and the result says so). The cost
of the loop itself, measured with an empty kernel, is subtracted and reported.
"""
from __future__ import annotations

import math
import html
import statistics
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .errors import UtvmError


@dataclass
class TimingResult:
    """One time_evaluator run.

    ``values`` are the counter units per iteration of each repeat (loop overhead subtracted),
    ``counter`` names the unit ("nanoseconds", "instructions", "cycles", "none"), and
    ``results`` the same in seconds (None when the counter's rate is unknown: set
    ``cfg["clock_hz"]``). ``mean``, ``median`` and ``std`` are over ``results`` (seconds).
    """
    values: List[float]
    counter: str
    per_second: Optional[float]
    overhead: float
    number: int
    repeat: int
    results: Optional[List[float]] = field(default=None)

    def __post_init__(self) -> None:
        if self.per_second:
            self.results = [v / self.per_second for v in self.values]

    def _series(self) -> List[float]:
        if self.results is None:
            raise UtvmError(f"the device counts {self.counter} at an unknown rate, so there are no seconds: "
                            "set cfg['clock_hz'] (the raw counts are in .values)")
        return self.results

    @property
    def mean(self) -> float:
        return statistics.fmean(self._series())

    @property
    def median(self) -> float:
        return statistics.median(self._series())

    @property
    def std(self) -> float:
        series = self._series()
        return statistics.pstdev(series) if len(series) > 1 else 0.0

    def _repr_html_(self) -> str:
        secs = self.results or [None] * len(self.values)
        rows = "".join(f"<tr><td>{i + 1}</td><td style='text-align:right'>{v:,.1f}</td>"
                       f"<td style='text-align:right'>{'' if t is None else f'{t * 1e6:,.3f}'}</td></tr>"
                       for i, (v, t) in enumerate(zip(self.values, secs)))
        summary = (f"mean {self.mean * 1e6:,.3f} us, median {self.median * 1e6:,.3f} us, std {self.std * 1e6:,.3f} us"
                   if self.results is not None else "no seconds: set cfg['clock_hz']")
        return (f"<div><b>time_evaluator</b>: {self.number} call(s) per repeat, {self.repeat} repeat(s), loop "
                f"overhead {self.overhead:,.1f} {html.escape(self.counter)} subtracted; {summary}</div>"
                f"<table><tr><th>repeat</th><th>{html.escape(self.counter)} per call</th><th>us per call</th></tr>"
                f"{rows}</table>")

    def __repr__(self) -> str:
        counts = ", ".join(f"{v:,.1f}" for v in self.values)
        secs = f", mean {self.mean * 1e6:.3f} us" if self.results is not None else ""
        return (f"<TimingResult {self.number} x {self.repeat}: {counts} {self.counter} per call "
                f"(loop overhead {self.overhead:,.1f} subtracted){secs}>")


class TimeEvaluator:
    """Callable returned by ``mod.time_evaluator(...)``: call it with the kernel's arguments."""

    def __init__(self, function: Any, number: int = 10, repeat: int = 1, min_repeat_ms: float = 0):
        if not isinstance(number, int) or number < 1:
            raise TypeError(f"number must be a positive integer, got {number!r}")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise TypeError(f"repeat must be a positive integer, got {repeat!r}")
        limit = function.module.session.max_repeat
        if repeat > limit:
            raise ValueError(f"repeat={repeat} is more than the {limit} measurements the device runtime keeps per "
                             f"run; ask for fewer, or raise cfg['runtime']['repeats']")
        self.function = function
        self.number = number
        self.repeat = repeat
        self.min_repeat_ms = float(min_repeat_ms)

    def __call__(self, *args: Any, timeout: Optional[float] = None) -> TimingResult:
        session = self.function.module.session
        counter = session.cfg.get("counter") or {"name": "none", "per_second": None}
        name = counter.get("name", "none")
        per_second = counter.get("per_second") or (session.cfg.get("clock_hz") if name != "nanoseconds" else None)
        number = self.number
        if self.min_repeat_ms > 0 and per_second:
            # Grow number until one repeat lasts min_repeat_ms on the device's own clock.
            for _ in range(8):
                _, counts = self.function._call(args, timeout, timing=(number, 1))
                seconds = counts[0] / per_second
                if seconds * 1000 >= self.min_repeat_ms:
                    break
                number = min(number * max(2, math.ceil(self.min_repeat_ms / 1000 / max(seconds, 1e-9))), 1 << 24)
        _, counts = self.function._call(args, timeout, timing=(number, self.repeat))
        overhead = session._loop_overhead(number, timeout)
        values = [max(c / number - overhead, 0.0) for c in counts]
        return TimingResult(values=values, counter=name, per_second=per_second, overhead=overhead,
                            number=number, repeat=self.repeat)
