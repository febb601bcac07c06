"""An AutoTVM-style tuning loop: compile every variant of a kernel, time each on the device,
keep the fastest one that computes the right answer.

Candidates are the product of ``space`` (macro -> values), compiled in parallel on all host
cores (and cached), then measured one after another on one session. Each result goes to a
JSON-lines log as soon as it is known, so a crashed or interrupted run resumes from it without
measuring anything twice.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .config import DeviceConfig
from .errors import BuildError, UtvmError
from .session import Session
from .toolchain import build

log = logging.getLogger(__name__)


@dataclass
class Trial:
    """One candidate: its macro values, what happened ('ok', 'wrong', 'build error', 'error'),
    and for 'ok' its time (``mean`` seconds, or ``value`` in counter units when seconds are
    unknown)."""
    config: Dict[str, Any]
    status: str
    mean: Optional[float] = None
    value: Optional[float] = None
    counter: Optional[str] = None
    error: str = ""

    @property
    def score(self) -> Optional[float]:
        return self.mean if self.mean is not None else self.value

    def to_json(self) -> str:
        return json.dumps({"config": self.config, "status": self.status, "mean": self.mean, "value": self.value,
                           "counter": self.counter, "error": self.error}, sort_keys=True)


@dataclass
class TuneResult:
    """All trials in the order they were measured (resumed ones included) and the best one."""
    trials: List[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        good = [t for t in self.trials if t.status == "ok" and t.score is not None]
        if not good:
            raise UtvmError("no candidate computed the right answer; see the trials' errors")
        return min(good, key=lambda t: t.score)

    def plot(self, path: str) -> str:
        """A PNG of the search: each candidate's time in the order measured, the best marked."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            from .errors import ToolNotFoundError
            raise ToolNotFoundError("matplotlib", "pip install 'utvm-host[plot]'") from exc
        xs = [i for i, t in enumerate(self.trials) if t.status == "ok"]
        ys = [self.trials[i].score for i in xs]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(xs, ys, "o", color="tab:blue", label="candidates")
        bad = [i for i, t in enumerate(self.trials) if t.status != "ok"]
        if bad and ys:
            ax.plot(bad, [max(ys)] * len(bad), "x", color="tab:red", label="rejected or failed")
        if ys:
            best = self.best
            ax.plot([self.trials.index(best)], [best.score], "*", markersize=16, color="tab:orange",
                    label=f"best {best.config}")
        unit = "seconds" if self.trials and self.trials[0].mean is not None else (self.trials[0].counter or "")
        ax.set_xlabel("candidate (in measurement order)")
        ax.set_ylabel(f"time per call ({unit})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


def tune(sources: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], space: Mapping[str, Sequence[Any]],
         cfg: DeviceConfig, entry: str, args: Sequence[Any], *, reference: Optional[Mapping[int, np.ndarray]] = None,
         log: Optional[Union[str, os.PathLike]] = None, number: int = 1, repeat: int = 1,
         cflags: Sequence[str] = (), rtol: float = 1e-4, atol: float = 1e-5, session: Optional[Session] = None,
         progress: bool = True, jobs: Optional[int] = None) -> TuneResult:
    """Tune kernel ``entry`` of ``sources`` over ``space`` on ``cfg``'s device.

    ``args`` are the kernel's arguments (numpy arrays and scalars); the arrays are sent to the
    device once and stay there for the whole search. Each candidate is timed with
    ``number`` x ``repeat`` runs (one run by default: device counts are exact on simulators),
    and the outputs of that timed run are checked. ``reference`` maps the
    index of each output argument to its expected value; without it the first candidate that
    builds and runs provides the reference. A candidate whose outputs differ (``rtol``/``atol``)
    is rejected as 'wrong'; one that fails to build or run is recorded and skipped. With
    ``log``, every trial is appended as a JSON line, and trials already in the log are not
    measured again. Returns a :class:`TuneResult` (``.best``, ``.trials``, ``.plot()``).
    """
    todo, result = _plan(space, log)
    expected = {i: np.asarray(v) for i, v in (reference or {}).items()}

    def compile_one(config):
        return build(sources, cfg, cflags=cflags, defines=config, name=f"{entry}{_key(config)}")

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1)
    futures = [pool.submit(compile_one, c) for c in todo]
    bar = _progress_bar(len(todo), entry) if progress and todo else None
    resident: Dict[int, Any] = {}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(pool.shutdown, wait=True, cancel_futures=True)
        if bar:
            cleanup.callback(bar.close)
        sess = session or cleanup.enter_context(Session(cfg))
        logf = cleanup.enter_context(open(log, "a")) if log is not None else None
        cleanup.callback(lambda: [t.free() for t in resident.values()])   # before the session closes
        for config, future in zip(todo, futures):
            trial = _measure(sess, config, future, entry, args, expected, number, repeat, rtol, atol, resident)
            result.trials.append(trial)
            _record(trial, result, logf, bar)
    return result


def _plan(space: Mapping[str, Sequence[Any]],
          log: Optional[Union[str, os.PathLike]]) -> Tuple[List[Dict[str, Any]], "TuneResult"]:
    """The configurations of ``space`` still to measure, and a result holding those the log has."""
    names = list(space)
    configs = [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]
    done = _logged_trials(log)
    todo = [c for c in configs if _key(c) not in done]
    return todo, TuneResult([done[_key(c)] for c in configs if _key(c) in done])


def _logged_trials(log: Optional[Union[str, os.PathLike]]) -> Dict[str, "Trial"]:
    """The trials a log of an earlier search holds, by configuration (lines cut short are skipped)."""
    done: Dict[str, Trial] = {}
    if log is None or not Path(log).exists():
        return done
    for line in Path(log).read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue   # a line cut short by a crash
        done[_key(rec["config"])] = Trial(rec["config"], rec["status"], rec.get("mean"), rec.get("value"),
                                           rec.get("counter"), rec.get("error", ""))
    return done


def _progress_bar(total: int, entry: str):
    """A tqdm bar over the candidates, or None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"tuning {entry}", unit="candidate")


def _record(trial: "Trial", result: "TuneResult", logf, bar) -> None:
    """A measured trial into the log (flushed: a crash keeps it) and the progress bar."""
    if logf:
        logf.write(trial.to_json() + "\n")
        logf.flush()
    if bar:
        bar.update(1)
        if trial.status == "ok":
            bar.set_postfix_str(f"best {result.best.score:.3g}")


def _measure(sess: Session, config: Dict[str, Any], future, entry: str, args: Sequence[Any],
             expected: Dict[int, np.ndarray], number: int, repeat: int, rtol: float, atol: float,
             resident: Dict[int, Any]) -> Trial:
    try:
        lib = future.result()
    except BuildError as exc:
        return Trial(config, "build error", error=str(exc).splitlines()[0])
    try:
        mod = sess.load(lib)
    except UtvmError as exc:
        return Trial(config, "error", error=str(exc))
    try:
        fn = mod[entry]
        if not resident:   # arrays stay on the device for the whole search: sent once, not per candidate
            resident.update({i: sess.tensor(a) for i, a in enumerate(args) if isinstance(a, np.ndarray)})
        timing, outputs = _timed_run(fn, args, resident, number, repeat)
        if not expected:
            expected.update(outputs)                 # the first working candidate is the reference
        wrong = _differs(outputs, expected, rtol, atol)
        if wrong:
            return Trial(config, "wrong", error=wrong)
        mean = timing.mean if timing.results is not None else None
        return Trial(config, "ok", mean=mean, value=float(np.mean(timing.values)), counter=timing.counter)
    except UtvmError as exc:
        return Trial(config, "error", error=str(exc))
    finally:
        mod.unload()


def _timed_run(fn, args: Sequence[Any], resident: Dict[int, Any], number: int, repeat: int):
    """One timed run of the candidate, which computes its outputs too: (timing, the outputs by
    argument index). Outputs start as all-ones bytes (NaN for floats), set on the device itself."""
    work = [resident.get(i, a) for i, a in enumerate(args)]
    writes = [i for i, p in enumerate(fn.signature.params) if i in resident and not p.type.pointee.const]
    for i in writes:
        resident[i].fill_bytes(0xFF)
    timing = fn.time_evaluator(number=number, repeat=repeat)(*work)
    return timing, {i: resident[i].numpy() for i in writes}


def _differs(outputs: Dict[int, np.ndarray], expected: Dict[int, np.ndarray], rtol: float, atol: float) -> str:
    """Why the outputs are not the reference's ('' when they match)."""
    for i, want in expected.items():
        if not np.allclose(outputs[i], want, rtol=rtol, atol=atol):
            return (f"output argument {i} differs from the reference "
                    f"(max |diff| {float(np.max(np.abs(outputs[i] - want))):.3g})")
    return ""
