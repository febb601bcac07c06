"""Running calls on the device: one call, a batch, and how each ended (results, kernel errors,
faults, timeouts, a corrupted runtime)."""
from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from .. import abi, arch
from ..errors import ConnectionLost, DeviceError, DeviceFault, DeviceTimeout, KernelError, UtvmError, kernel_error_class
from ..transport import StopInfo
log = logging.getLogger(__name__)

from .ffi import PackedFunction
from .runtime_abi import Completion, _EmptyKernel, runtime_error_text
from .tensor import Tensor

if TYPE_CHECKING:
    from .function import BoundCall, Function


class ExecutorMixin:
    """Session methods that run code on the device."""

    # -- calls -------------------------------------------------------------------------------

    def _symbolize(self, pc: Optional[int]) -> str:
        if pc is None:
            return "an unknown address"
        for image in [self.runtime, *self.runtime_parts] + [m.image for m in self.modules]:
            if image is not None and image.contains(pc):
                loc = image.symbolize(pc)
                if loc is not None:
                    return str(loc)
        return f"0x{pc:x} (outside any loaded code)"

    def _task_record(self, shim: int, nargs: int, base: Optional[int] = None) -> Tuple[bytes, int, int]:
        """The task-table entry calling ``shim`` with ``nargs`` slots at ``base`` (default: the
        args region): (bytes, args address, ret address)."""
        base = self._args_block.start if base is None else base
        ret_addr = base + abi.SLOT_SIZE * nargs
        task = bytearray(self._task_stride)
        pack_ptr = struct.Struct(self._ptr_fmt).pack_into
        pack_ptr(task, self._task_off["func"], shim)
        pack_ptr(task, self._task_off["args"], base)
        pack_ptr(task, self._task_off["ret"], ret_addr)
        return bytes(task), base, ret_addr

    def _run_task(self, fn: "Function", args_blob: bytes, timeout: Optional[float],
                  timing: Optional[Tuple[int, int]] = None,
                  doing: Optional[str] = None) -> Tuple[int, int, bytes, Tuple[int, ...]]:
        """Run one shim call; returns (status, error flag, return slot, counts). With ``timing``
        = (number, repeat) the runtime runs it number x repeat times and ``counts`` holds the
        counter difference of each repeat. ``doing`` words what the call is for in errors
        (default: calling the kernel)."""
        if len(args_blob) + abi.SLOT_SIZE > self._args_block.size:
            raise TypeError(f"{fn.name}() has too many arguments for the args region "
                            f"({len(args_blob) + abi.SLOT_SIZE:,} > {self._args_block.size:,} bytes): "
                            "enlarge cfg['mem_layout']['args']")
        with self._link(doing or f"calling kernel '{fn.name}'"):
            return self._run_task_linked(fn, args_blob, timeout, timing)

    def _run_task_linked(self, fn: "Function", args_blob: bytes, timeout: Optional[float],
                         timing: Optional[Tuple[int, int]]) -> Tuple[int, int, bytes, Tuple[int, ...]]:
        tr = self.transport
        self._set_switches(tuple(timing) if timing is not None else (0, 0), False)   # written when changed
        task, base, ret_addr = fn._task
        if args_blob:
            self._write_checked(base, args_blob, f"the arguments of '{fn.name}'")
        tasks = self._sym["utvm_tasks"]
        if task is not self._last_task:
            self._write_checked(tasks, task, "the task table")
            self._last_task = task
            self._last_batch = None
        stop = self._execute(timeout, 3 if timing is not None else fn._result_regs, "a call",
                             before=self._start_run(1))
        if stop.kind != "done":
            self._raise_stop(fn, stop, timeout)
        if stop.result is not None:  # the runtime's summary came back in registers
            summary, lo, hi = stop.result
            if summary == self._trapped:
                self._raise_trap(fn)
            error = int(self._check_completion(summary, 1, f"kernel '{fn.name}'").error)
            mask = 0xFFFFFFFF
            if timing is not None and timing[1] == 1 and not error:   # the count came in lo/hi
                return 0, 0, bytes(abi.SLOT_SIZE), ((hi & mask) << 32 | (lo & mask),)
            return 0, error, struct.pack(self._order + "II", lo & mask, hi & mask), self._read_counts(timing)
        self._check_completion(self._read_summary(), 1, f"kernel '{fn.name}'")
        done = tr.read(tasks, self._task_stride)
        status, error = self._status.unpack_from(done, self._task_off["status"])
        return status, error, tr.read(ret_addr, abi.SLOT_SIZE), self._read_counts(timing)

    def _start_run(self, n: int) -> List[Tuple[int, bytes]]:
        """The next run of ``n`` tasks: its id (the runtime adds one to the id in its run record
        at every start and echoes it with the task count in its completion summary) and the
        writes to make with the start (``Transport.run(before=...)``): the run record, only when
        the task count changed or the runtime's state is unknown (after a restart, an
        interrupted run), so a repeated call costs no write. Not read back even with verify:
        the summary echoes it."""
        self._run_id = (self._run_id + 1) & 0xFFFFFFFF
        if self._num_tasks == n:
            return []
        self._num_tasks = n
        return [(self._sym["utvm_run"], struct.pack(self._order + "II", n, (self._run_id - 1) & 0xFFFFFFFF))]

    def _read_summary(self) -> int:
        """The runtime's completion summary from memory (transports that report no registers)."""
        return self.transport.read_word(self._sym["utvm_summary"], 8 * self.cfg.pointer_size)

    def _check_completion(self, summary: int, n: int, what: str) -> Completion:
        """The runtime's summary (decoded) when it echoes this run: its run id and the ``n`` tasks
        the host asked for, and (unless a kernel reported an error) all of them done. Otherwise the
        runtime's state was corrupted (a kernel wrote over it): the device is reset and
        DeviceError says so."""
        done = Completion.decode(summary)
        if done.echoes(self._run_id, n):
            return done
        want = self._run_id & 0xFF
        recovered = self._recover(f"the runtime's state was corrupted during {what}")
        raise DeviceError(f"{what} did not run as asked: the runtime reports run {done.run} with {done.done} of "
                          f"{done.seen} tasks "
                          f"done, but this was run {want} of {n} task{'s' if n != 1 else ''}: the runtime's state in "
                          f"device memory was corrupted (a kernel writing outside its buffers?), so its result "
                          f"cannot be trusted; {recovered}")

    def _execute(self, timeout: Optional[float], results: int, what: str,
                 before: Sequence[Tuple[int, bytes]] = ()) -> StopInfo:
        """Run the runtime's entry on the device stack until UTVMDone, after the ``before``
        writes. Called inside :meth:`_link`, which names and recovers a device that went away;
        an interrupted run (``what`` words it) is recovered from here before the error goes on."""
        tr, stack = self.transport, self._stack_block
        try:
            return tr.run(self._entry, stack_base=stack.start, stack_size=stack.size, stop_at=self._sym["UTVMDone"],
                          timeout=timeout, results=results, before=before)
        except ConnectionLost:
            self._num_tasks = -1
            raise   # the caller's _link says what died and starts the device again
        except BaseException:
            self._num_tasks = -1   # whether the run started (and counted its id) is unknown: write the record again
            if not tr.alive:
                self._recover(f"{what} was interrupted")
            raise

    def _read_counts(self, timing: Optional[Tuple[int, int]]) -> Tuple[int, ...]:
        if timing is None:
            return ()
        raw = self.transport.read(self._sym["utvm_counts"], 8 * timing[1])
        return struct.unpack(f"{self._order}{timing[1]}Q", raw)

    def _set_switches(self, timing: Tuple[int, int], profile: bool) -> None:
        """Write the runtime's timing and profiling switches when they change."""
        if timing != self._timing_state:
            self.transport.write(self._sym["utvm_timing"], struct.pack(self._order + "II", *timing))
            self._timing_state = timing
        if profile != self._profile_state:
            self.transport.write32(self._sym["utvm_profile"], int(profile))
            self._profile_state = profile

    def run_batch(self, calls: Sequence["BoundCall"], *, timeout: Optional[float] = None,
                  profile: bool = False) -> Optional[List[int]]:
        """Run bound calls (:meth:`Function.bind`) in order, as few round trips as the runtime's
        task table allows (64 calls each): nothing but the start and the stop crosses the link
        when the same batch runs again. With ``profile`` returns each call's device counter
        difference (``cfg["counter"]`` units). A kernel error stops the batch and raises
        naming the call; a fault or timeout raises as for a single call."""
        self._require_open()
        counts: List[int] = []
        whole = 0
        with self._call_lock, self.console.capture():
            for first in range(0, len(calls), self._max_tasks):
                chunk = calls[first:first + self._max_tasks]
                counts += self._run_chunk(chunk, self.timeout if timeout is None else timeout, profile)
                whole += self.last_batch_count or 0
        if not profile:
            return None
        self.last_batch_count = whole
        return counts

    def _run_chunk(self, chunk: Sequence["BoundCall"], timeout: float, profile: bool) -> List[int]:
        for call in chunk:
            call._check()
        with self._link(f"running a batch of {len(chunk)} calls"):
            return self._run_chunk_linked(chunk, timeout, profile)

    def _run_chunk_linked(self, chunk: Sequence["BoundCall"], timeout: float, profile: bool) -> List[int]:
        tr = self.transport
        self._set_switches((0, 0), profile)
        key = tuple(id(c) for c in chunk)
        if key != self._last_batch:
            self._write_checked(self._sym["utvm_tasks"], b"".join(c._task[0] for c in chunk), "the task table")
            self._last_batch = key
            self._last_task = None
        n = len(chunk)
        first = chunk[0].function
        stop = self._execute(timeout, 3, "a batch", before=self._start_run(n))

        def current() -> "BoundCall":   # the call the device was in when it stopped
            try:
                done = tr.read32(self._sym["utvm_tasks_done"])
            except UtvmError:
                return chunk[0]
            return chunk[min(done, n - 1)]

        if stop.kind != "done":
            self._raise_stop(current().function, stop, timeout)
        summary = stop.result[0] if stop.result is not None else None
        if summary is None:   # the transport did not report registers: read the runtime's record
            summary = self._read_summary()
        if summary == self._trapped:
            self._raise_trap(current().function)
        completion = self._check_completion(summary, n, f"a batch of {n} calls starting with '{first.name}'")
        done = completion.done
        if completion.error:
            call = chunk[max(done - 1, 0)]
            ret = call.function._ret
            value = None if ret is None else ret.unpack_from(tr.read(call._task[2], abi.SLOT_SIZE))[0]
            raise self._kernel_error(call.function.name, value, tvm=isinstance(call.function, PackedFunction),
                                     what=call.label)
        if done != n:
            raise DeviceError(f"a batch of {n} calls starting with '{first.name}' did not complete: the runtime "
                              f"reports {done} done; call sess.reset()")
        for call in chunk:   # the batch's tensors were written by its kernels
            for value in call._args:
                if type(value) is Tensor:
                    value._written()
        if not profile:
            return []
        self.last_batch_count = tr.read64(self._sym["utvm_batch_count"])
        return list(struct.unpack(f"{self._order}{n}Q", tr.read(self._sym["utvm_task_counts"], 8 * n)))

    def _failed_by_runtime(self) -> bool:
        """Whether the runtime itself failed the last task (``utvm_error_set`` 2: it found a
        workspace block header written over), which fails the call even if the kernel, not
        noticing, returned 0. Read only then: a kernel that reported an error and returned 0
        has handled it."""
        return self.transport.read32(self._sym["utvm_error_set"]) == 2

    def _bad_header(self) -> str:
        """The workspace header the runtime's corruption error names (``utvm_ws_bad``), as
        2 * pointer size hex digits."""
        ptr = self.cfg.pointer_size
        addr = self.transport.read_word(self._sym["utvm_ws_bad"], 8 * ptr)
        return f"{addr:0{2 * ptr}x}"

    def _kernel_error(self, kernel: str, value: Optional[int], tvm: bool = False,
                      what: Optional[str] = None) -> KernelError:
        """The error a kernel reported (its text and TVM kind, read from the runtime), as the
        exception to raise: a KernelError that is also e.g. a ValueError when TVM named one.
        ``what`` names the call in the message (default ``kernel 'NAME'``)."""
        sym, sizes = self._sym, self._error_sizes
        text = self.transport.read(sym["utvm_last_error"], sizes["utvm_last_error"])
        kind = self.transport.read(sym["utvm_last_error_kind"], sizes["utvm_last_error_kind"])
        text, kind = (b.split(b"\0", 1)[0].decode("utf-8", "replace") for b in (text, kind))
        text = runtime_error_text(text, self._bad_header)
        returned = "" if value is None else f" (returned {value})"
        what = what or f"kernel '{kernel}'"
        if tvm and text:   # TVM's own message names the function and the argument
            message = text if what == f"kernel '{kernel}'" else f"{what}: {text}"
        elif text:
            message = f"{what} failed{returned}: {f'{kind}: ' if kind else ''}{text}"
        else:
            message = f"{what} failed{returned} without reporting an error message"
        return kernel_error_class(kind)(message, kernel=kernel, status=0 if value is None else int(value),
                                        text=text, kind=kind)

    def _loop_overhead(self, number: int, timeout: Optional[float]) -> float:
        """Counter units per iteration that the timing loop itself costs (an empty kernel timed
        the same way; the smallest of a few repeats). Cached per ``number``."""
        if number not in self._overheads:
            empty = _EmptyKernel(self)
            _, _, _, counts = self._run_task(empty, b"", timeout, timing=(number, 5))
            self._overheads[number] = min(counts) / number
        return self._overheads[number]

    def _keep_unsent_console(self) -> None:
        """A call that faulted or timed out never reached the runtime's console flush (the host
        device's process died; a debugger stopped the core at UTVMDone's entry after a trap), so
        its last partial line is still in the runtime's line buffer: move it to ``sess.console``
        (and so into the error) before recovery rewrites the runtime. Device memory outlives the
        host device's process; a device that cannot be read any more keeps its text. A device
        behind the serial stub needs none of this: UTVMDone flushes after a trap there (no
        breakpoint stops it first), and a hung one cannot answer a read."""
        sym = self._sym
        if "utvm_console_line" not in self._sym_sizes or "utvm_console_len" not in sym \
                or self.cfg.transport_kind == "serial":
            return
        try:
            length = self.transport.read32(sym["utvm_console_len"])
            if length == 0:
                return
            # a kernel that wrote wild may have corrupted the length: never read past the buffer
            text = self.transport.read(sym["utvm_console_line"], min(length, self._sym_sizes["utvm_console_line"]))
            self.transport.write32(sym["utvm_console_len"], 0)   # read once, never sent again
        except (UtvmError, OSError) as exc:
            log.debug("the console's unsent line could not be read: %s", exc)
            return
        self.console.add_unsent(text.decode("utf-8", "replace"))

    def _raise_trap(self, fn: "Function") -> None:
        """The device's trap handler ran during the call: decode its record into DeviceFault."""
        self._num_tasks = -1   # the run ended early: its record is written again before the next one
        self._keep_unsent_console()
        record = {}
        fmt = struct.Struct(self._ptr_fmt)
        if self._fault_layout is not None:
            raw = self.transport.read(self._sym["utvm_fault"], max(o + s for o, s in self._fault_layout.values()))
            record = {k: fmt.unpack_from(raw, o)[0] for k, (o, s) in self._fault_layout.items()}
        family = self._arch
        fault = family.decode_fault(record, self.cfg.pointer_size)
        # no pc: the exception frame could not be stacked (a stack overflow on Cortex-M)
        where = family.lost_pc if fault.pc is None and family.lost_pc else self._symbolize(fault.pc)
        recovered = self._recover(f"kernel '{fn.name}' {family.fault_verb}")
        raise DeviceFault(f"kernel '{fn.name}' crashed: {fault.describe(where)}; {recovered}",
                          cause=fault.cause, pc=fault.pc, location=where, fault_address=fault.address)

    def _raise_stop(self, fn: "Function", stop: StopInfo, timeout: Optional[float]) -> None:
        self._num_tasks = -1   # the run did not end at UTVMDone: its record is written again next time
        where = self._symbolize(stop.pc)
        if stop.kind == "breakpoint":   # a debugger's breakpoint stopped a plain call: no recovery
            raise DeviceError(f"kernel '{fn.name}' stopped at {where} ({stop.detail}); the core stays there "
                              "(dbg.cont() or dbg.detach() goes on). Start calls that may stop at a breakpoint "
                              "with fn.start(...) and finish them with .result()")
        if stop.kind in ("fault", "timeout"):
            self._keep_unsent_console()
        if stop.kind == "fault" and not stop.signo:
            recovered = self._recover(f"kernel '{fn.name}' stopped unexpectedly")
            raise DeviceFault(f"kernel '{fn.name}' stopped at {where}: {stop.detail}; {recovered}",
                              cause=stop.detail, pc=stop.pc, location=where)
        if stop.kind == "fault":   # a signal ended the kernel's process (the host device)
            fault = arch.HOST.decode_fault({"signo": stop.signo, "code": stop.code, "address": stop.fault_address,
                                            "pc": stop.pc}, self.cfg.pointer_size)
            recovered = self._recover(f"kernel '{fn.name}' {arch.HOST.fault_verb}")
            raise DeviceFault(f"kernel '{fn.name}' crashed: {fault.describe(where)}; {recovered}",
                              cause=fault.cause, pc=fault.pc, location=where, fault_address=fault.address)
        if stop.kind == "timeout":
            recovered = self._recover(f"kernel '{fn.name}' timed out")
            at = f"; it was at {where} when stopped" if stop.pc is not None else ""
            raise DeviceTimeout(f"kernel '{fn.name}' did not finish within {timeout:g} s{at}; {recovered}",
                                timeout=timeout or 0.0, pc=stop.pc, location=where if stop.pc is not None else None)
        recovered = self._recover(f"the device was lost during '{fn.name}'")
        raise DeviceError(f"kernel '{fn.name}' did not complete: {stop.detail}; {recovered}")


