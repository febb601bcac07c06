"""A device reached only through a UART: the framed protocol of the serial stub
(``device_stubs/programs/serial/utvm_serial_stub.c``, flashed once), over pyserial.

Every frame is COBS-encoded and ends in a zero byte; its payload is ``seq | command | body |
CRC-32``. A reply that does not come, or comes corrupted, or answers another request, makes the
request go again with the same ``seq`` (the stub answers a repeated ``seq`` from its saved
reply, so nothing is done twice), up to ``retries`` times; then :class:`TransportError` says
what happened. A HELLO with a nonce at connect time (and the nonce echoed by every PING) tells
a device that restarted from one that did not.

``serial_for_url`` means ``/dev/ttyUSB0`` reaches a board and ``socket://HOST:PORT`` a UART served
over TCP; ``unix://PATH`` is QEMU's UART as the session starts it (``-serial unix:PATH,server=on``
in the session's 0700 folder: nobody else can connect to it).
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..endpoint import Endpoint, UnixEndpoint
from ..errors import ConnectionLost, TransportError, TransportTimeout
from .base import StopInfo, Transport, Writes
from .interrupt import DeferredInterrupt, interrupt_pending

log = logging.getLogger(__name__)

VERSION = 1
HELLO, PING, READ, WRITE, CALL, STATS, SINK, RESET, CONSOLE = 1, 2, 3, 4, 5, 6, 7, 8, 0x10
STATUS = {0: "ok", 1: "the device saw a corrupted request (CRC)", 2: "unknown command", 3: "bad arguments"}
#: Requests in flight at once during bulk transfers (the stub answers them in order).
WINDOW = 4


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i <= n:
        run = 0
        while i + run < n and data[i + run] != 0 and run < 254:
            run += 1
        out.append(run + 1)
        out += data[i:i + run]
        i += run
        if run == 254:
            continue
        i += 1
    out.append(0)
    return bytes(out)


def cobs_decode(frame: bytes) -> Optional[bytes]:
    """The payload of one frame (without its zero delimiter), or None when it is malformed."""
    out = bytearray()
    i, n = 0, len(frame)
    while i < n:
        code = frame[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            return None
        out += frame[i:i + code - 1]
        i += code - 1
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


class SocketPort:
    """A stream socket dressed as a pyserial port (``read`` returns what arrived within 50 ms,
    maybe nothing): QEMU serves a device's UART on a Unix socket in the session folder."""

    timeout = 0.05

    def __init__(self, endpoint: Endpoint, connect_timeout: float):
        try:
            self.sock = endpoint.connect_retrying(self.timeout, connect_timeout)
        except OSError as exc:
            raise ConnectionLost(f"cannot open the serial link {endpoint}: {exc}") from None
        self.sock.settimeout(self.timeout)

    @property
    def in_waiting(self) -> int:
        """Bytes that arrived and are not read yet (FIONREAD), as pyserial reports them."""
        import fcntl
        import termios
        raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", raw)[0]

    def read(self, n: int) -> bytes:
        try:
            data = self.sock.recv(n)
        except socket.timeout:
            return b""
        if not data:
            raise OSError("the serial link closed")
        return data

    def write(self, data: bytes) -> int:
        self.sock.settimeout(None)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.settimeout(self.timeout)
        return len(data)

    def close(self) -> None:
        self.sock.close()


class SerialTransport(Transport):
    """The serial stub's protocol (see the module docstring). ``port`` may be given instead of
    ``url`` (any object with ``read``/``write``/``close`` like a pyserial port: the fault-injection
    tests wrap one). ``console`` is a file the device's printf output is appended to."""

    restart_verb = "checked"

    def __init__(self, url: Optional[str] = None, *, port=None, baudrate: int = 115200, timeout: float = 2.0,
                 retries: int = 8, console: Optional[Path] = None, little_endian: bool = True,
                 connect_timeout: float = 10.0):
        self.little_endian = little_endian
        self.timeout = timeout
        self.retries = retries
        self.console_path = console
        self.url = url
        if port is None and url is not None and url.startswith("unix://"):
            port = SocketPort(UnixEndpoint(url[len("unix://"):]), connect_timeout)
        if port is None:
            import serial
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
                    break
                except (serial.SerialException, OSError) as exc:
                    if time.monotonic() > deadline:
                        raise ConnectionLost(f"cannot open the serial link {url}: {exc}") from None
                    time.sleep(0.05)
        sock = getattr(port, "_socket", None)   # socket:// links: no Nagle delay on small frames
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port
        self._busy = False
        self._buf = bytearray()
        self._seq = 0
        #: What the link went through: frames sent, resent, replies that were bad or out of turn.
        self.stats = {"sent": 0, "resent": 0, "bad": 0, "stray": 0, "console": 0}
        self.nonce = int.from_bytes(os.urandom(4), "little") | 1
        self.chunk, self._clean = 64, 0
        self.info = self._handshake(connect_timeout)
        self.max_data = self.info["max_data"]
        #: Bytes per READ/WRITE request now: halved when frames arrive corrupted (a noisy link
        #: loses fewer bytes per resend), doubled again after a run of clean frames.
        self.chunk = self.max_data

    # -- frames ------------------------------------------------------------------------------

    def _noisy(self) -> None:
        self.chunk = max(64, self.chunk // 2)
        self._clean = 0

    def _calm(self) -> None:
        self._clean += 1
        if self._clean >= 32 and self.chunk < self.max_data:
            self.chunk = min(self.max_data, self.chunk * 2)
            self._clean = 0

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1   # 1..255; 0 is the device's own console frames
        return self._seq

    def _frame(self, seq: int, cmd: int, body: bytes) -> bytes:
        payload = bytes((seq, cmd)) + body
        return cobs_encode(payload + struct.pack("<I", crc32(payload)))

    def _read_frame(self, deadline: float, stop_on_interrupt: bool = False) -> Optional[bytes]:
        """The next well-formed reply payload (console frames are consumed on the way), or None
        at the deadline (or at a deferred Ctrl-C, with ``stop_on_interrupt``). Malformed frames
        are counted and skipped."""
        while True:
            end = self._buf.find(0)
            while end < 0:
                left = deadline - time.monotonic()
                if left <= 0 or (stop_on_interrupt and interrupt_pending()):
                    return None
                try:
                    chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 1))
                except OSError as exc:
                    raise ConnectionLost(f"the serial link {self.url} failed: {exc}") from None
                if chunk:
                    self._buf += chunk
                    end = self._buf.find(0)
            raw, self._buf = bytes(self._buf[:end]), self._buf[end + 1:]
            payload = cobs_decode(raw) if raw else None
            if payload is None or len(payload) < 6 or crc32(payload[:-4]) != struct.unpack("<I", payload[-4:])[0]:
                self.stats["bad"] += 1
                continue
            if payload[0] == 0 and payload[1] == CONSOLE | 0x80:
                self._console(payload[2:-4])
                continue
            return payload[:-4]

    def _console(self, text: bytes) -> None:
        self.stats["console"] += 1
        if self.console_path is not None:
            with open(self.console_path, "ab") as f:
                f.write(text)

    def _exchange(self, requests: List[Tuple[int, bytes]], timeout: Optional[float] = None,
                  patient: bool = False) -> List[bytes]:
        """As :meth:`_exchange_in_step`, with Ctrl-C deferred until the requests already sent are
        answered (a call, ``patient``, is left at once: the link cannot stop a kernel) and a
        link that fails (OSError, e.g. QEMU serving the UART died) raising ConnectionLost."""
        with DeferredInterrupt() as guard:
            try:
                return self._exchange_in_step(requests, timeout, patient, guard)
            except OSError as exc:
                raise ConnectionLost(f"the serial link {self.url} failed: {exc}") from None

    def _exchange_in_step(self, requests: List[Tuple[int, bytes]], timeout: Optional[float],
                          patient: bool, guard: DeferredInterrupt) -> List[bytes]:
        """Send requests (command, body), up to WINDOW in flight, and return each reply's body
        (after its status byte), in order. A lost or corrupted reply makes the oldest request
        go again with its seq (reads and writes may be done twice; a call never is: the stub
        answers a repeated seq from its saved reply); after ``retries`` tries a TransportError
        says what happened. ``patient``: silence for the whole wait is a timeout at once (a call
        still running), only corrupted replies are retried."""
        wait = self.timeout if timeout is None else timeout
        out: List[bytes] = []
        pending: List[List] = []          # [seq, cmd, frame, tries]
        got: Dict[int, bytes] = {}        # replies that came for requests still in flight
        queue = list(requests)
        call_deadline: Optional[float] = None   # patient: when the call's whole wait ends
        while (queue and not guard.pending) or pending:
            self._send_window(queue, pending, guard)
            seq = pending[0][0]
            if seq in got:
                out.append(got.pop(seq))
                pending.pop(0)
                continue
            if patient:
                if call_deadline is None:
                    call_deadline = time.monotonic() + wait
                reply, resent = self._await_call_reply(pending[0], call_deadline, wait, guard)
                if resent:
                    continue
            else:
                reply = self._read_frame(time.monotonic() + wait, stop_on_interrupt=False)
            if reply is not None:
                self._take_reply(reply, pending, got)
            else:
                self._resend_oldest(pending, f"no reply within {wait:g} s")
        guard.check()   # Ctrl-C during the transfer: every request sent was answered
        return out

    def _send_window(self, queue: List[Tuple[int, bytes]], pending: List[List], guard: DeferredInterrupt) -> None:
        """Send queued requests until WINDOW are in flight (none once a Ctrl-C is pending)."""
        while queue and len(pending) < WINDOW and not guard.pending:
            cmd, body = queue.pop(0)
            seq = self._next_seq()
            frame = self._frame(seq, cmd, body)
            self.port.write(frame)
            self.stats["sent"] += 1
            pending.append([seq, cmd, frame, 1])

    def _await_call_reply(self, oldest: List, call_deadline: float, wait: float,
                          guard: DeferredInterrupt) -> Tuple[Optional[bytes], bool]:
        """One slice of a call's patient wait: ``(reply or None, resent)``. A call's reply comes
        when the kernel is done, but a call frame the link lost is never answered: after a link
        timeout of silence it goes again (``resent``; the stub runs a call once and answers a
        repeated seq from its saved reply); silence until ``call_deadline`` is a timeout."""
        bad_before = self.stats["bad"]
        slice_end = min(call_deadline, time.monotonic() + max(self.timeout, 0.05))
        reply = self._read_frame(slice_end, stop_on_interrupt=True)
        if reply is None and guard.pending:
            guard.check()   # a call the link cannot stop: run() marks the device busy
        if reply is None and self.stats["bad"] == bad_before:
            if time.monotonic() >= call_deadline:
                raise TransportTimeout(f"no reply from the device within {wait:g} s")
            self.port.write(oldest[2])
            self.stats["resent"] += 1
            return None, True
        return reply, False

    def _take_reply(self, reply: bytes, pending: List[List], got: Dict[int, bytes]) -> None:
        """File a reply under its request's seq; a NAK sends that request again; anything else
        (an answer to an earlier copy, already handled) is counted as stray."""
        mine = {p[0]: p[1] for p in pending}
        if reply[0] in mine and reply[1] == mine[reply[0]] | 0x80 and reply[2] != 1:
            if reply[2] != 0:
                raise TransportError(f"the serial stub refused command {reply[1] & 0x7F}: "
                                     f"{STATUS.get(reply[2], reply[2])}")
            got[reply[0]] = reply[3:]
            self._calm()
        elif reply[0] in mine and reply[2] == 1:   # a NAK: the device saw that request corrupted
            nak = next(p for p in pending if p[0] == reply[0])
            if nak[3] > self.retries:
                raise TransportTimeout(f"the serial link {self.url} failed: {STATUS[1]} after {nak[3]} "
                                       f"tries (link stats: {self.stats})")
            self.port.write(nak[2])
            self.stats["resent"] += 1
            nak[3] += 1
            self._noisy()
        else:
            self.stats["stray"] += 1   # an answer to an earlier copy: already handled

    def _resend_oldest(self, pending: List[List], problem: str) -> None:
        """The oldest request got no (good) reply: send it again, or give up after ``retries``."""
        seq, _, frame, tries = pending[0]
        if tries > self.retries:
            raise TransportTimeout(f"the serial link {self.url} failed: {problem} after {tries} tries "
                                   f"(link stats: {self.stats})")
        log.debug("serial: %s for seq %d; sending it again", problem, seq)
        self._noisy()
        self.port.write(frame)
        self.stats["resent"] += 1
        pending[0][3] = tries + 1

    def _handshake(self, timeout: float) -> Dict[str, int]:
        deadline = time.monotonic() + timeout
        retries, self.retries = self.retries, 0   # while the device boots: short tries until the deadline
        try:
            while True:
                try:
                    old = struct.unpack("<I", self._exchange([(HELLO, struct.pack("<I", self.nonce))], 0.05)[0][:4])[0]
                    break
                except TransportTimeout:
                    if time.monotonic() > deadline:
                        raise ConnectionLost(f"no serial stub answers on {self.url}: flash it with `utvm-host "
                                             "firmware --device ...` and check the baud rate") from None
        finally:
            self.retries = retries
        ping = self._exchange([(PING, b"")])[0]
        version, ptr, _, maxd, stub_end, nonce, done_hook, console_hook, code_end = \
            struct.unpack("<IBBHQIQQQ", ping[:44])
        if version != VERSION:
            raise TransportError(f"the serial stub speaks version {version}; this utvm-host speaks {VERSION}: "
                                 "flash the stub again with `utvm-host firmware`")
        log.debug("serial stub on %s: previous nonce 0x%x", self.url, old)
        return {"version": version, "pointer_size": ptr, "max_data": maxd, "stub_end": stub_end, "nonce": nonce,
                "done_hook": done_hook, "console_hook": console_hook, "stub_code_end": code_end}

    def check_alive(self) -> None:
        """Raise ConnectionLost if the device restarted since the handshake (its nonce is gone)."""
        ping = self._exchange([(PING, b"")])[0]
        nonce = struct.unpack_from("<I", ping, 16)[0]
        if nonce != self.nonce:
            raise ConnectionLost(f"the device on {self.url} restarted (its session nonce is gone): memory contents "
                                 "were lost")

    # -- memory ------------------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        step = self.chunk
        reqs = [(READ, struct.pack("<QI", addr + off, min(step, n - off))) for off in range(0, n, step)]
        return b"".join(self._exchange(reqs)) if reqs else b""

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        step = min(self.chunk, self.max_data - 16)
        reqs = [(WRITE, struct.pack("<Q", addr + off) + bytes(view[off:off + step]))
                for off in range(0, view.nbytes, step)]
        if reqs:
            self._exchange(reqs)

    # -- control -----------------------------------------------------------------------------

    def run(self, entry: int, *, stack_base: int, stack_size: int, stop_at: Optional[int],
            timeout: Optional[float], results: Optional[int] = None, before: Writes = ()) -> StopInfo:
        sp = (stack_base + stack_size) & ~0xF
        # The writes go first, on their own: a call's exchange waits patiently (silence is a
        # kernel still running), which a write whose reply got lost must not be mistaken for.
        for addr, data in before:
            self.write(addr, data)
        try:
            reply = self._exchange([(CALL, struct.pack("<QQ", entry, sp))],
                                   timeout=1e9 if timeout is None else timeout + 0.2, patient=True)[0]
        except TransportTimeout as exc:
            self._busy = True   # the kernel is still running: nothing over this link can stop it
            return StopInfo("timeout", detail=str(exc))
        except KeyboardInterrupt:
            self._busy = True
            raise
        summary, lo, hi, nonce = struct.unpack("<QQQI", reply[:28])
        if nonce != self.nonce:   # the device restarted since we said hello: its memory is not ours
            return StopInfo("lost", detail="the device restarted (its session nonce is gone)")
        return StopInfo("done", pc=stop_at, result=(summary, lo, hi))

    def raw_rate(self, nbytes: int = 256 * 1024) -> float:
        """Bytes per second the link carries unframed into the device (the stub's SINK command
        swallows them): the ceiling the framed protocol is measured against."""
        self._exchange([(SINK, struct.pack("<I", nbytes))])
        seq = self._seq
        t0 = time.perf_counter()
        self.port.write(b"\x55" * nbytes)   # no zero bytes: nothing looks like a frame end
        reply = self._read_frame(time.monotonic() + max(10.0, nbytes / 1000))
        elapsed = time.perf_counter() - t0
        if reply is None or reply[0] != seq:
            raise TransportError("the serial stub did not confirm the raw transfer")
        return nbytes / elapsed

    def stub_stats(self) -> Dict[str, int]:
        """The stub's own counters: requests done, CRC errors (NAKs sent), repeats answered from
        the saved reply, overruns (frames too long for the stub, dropped) and, from stubs that
        count it, noise (frames that were not COBS or too short to be a request, dropped)."""
        body = self._exchange([(STATS, b"")])[0]
        done, crc, repeats, overruns = struct.unpack("<IIII", body[:16])
        out = {"frames": done, "crc_errors": crc, "repeats": repeats, "overruns": overruns}
        if len(body) >= 20:
            out["noise"] = struct.unpack_from("<I", body, 16)[0]
        return out

    @property
    def alive(self) -> bool:
        """Whether the port is open and no kernel the link cannot stop is still running."""
        return self.port is not None and not self._busy

    def reset_device(self, timeout: float = 10.0) -> None:
        """Make the stub start over (as a reset would), then say hello again."""
        self._exchange([(RESET, b"")])
        self._buf.clear()
        self.nonce = int.from_bytes(os.urandom(4), "little") | 1
        self.info = self._handshake(timeout)

    def restart(self) -> bool:
        """After a fault the stub is back in its loop: check that it answers and did not restart.

        Returns
        -------
        bool
            True when the device had restarted on its own (a reset board): its memory is gone,
            tensors included; False when it kept it.

        Raises
        ------
        TransportError
            After a call that did not end (timeout, Ctrl-C): the core is still in the kernel and
            the link cannot stop it (the session starts a simulator again; a board needs its
            reset button).
        """
        if self._busy:
            raise TransportError(f"the device on {self.url} is still running a kernel, which the serial link cannot "
                                 "stop: reset the device")
        self._buf.clear()
        try:
            self.check_alive()
        except ConnectionLost:   # it restarted: say hello again; the session rewrites its code
            self.info = self._handshake(self.timeout * 5)
            return True
        return False

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            finally:
                self.port = None


class FaultyPort:
    """Fault injection for tests (the real link cannot be told to corrupt bytes): wraps a port
    and, at ``rate`` per byte written or read, flips a bit, drops the byte or repeats it."""

    def __init__(self, inner, rate: float, seed: int = 0, kinds: Tuple[str, ...] = ("flip", "drop", "repeat")):
        import random
        self.inner, self.rate, self.kinds = inner, rate, kinds
        self.rng = random.Random(seed)
        self.injected: Dict[str, int] = {k: 0 for k in kinds}

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self.rng.random() < self.rate:
                kind = self.rng.choice(self.kinds)
                self.injected[kind] += 1
                if kind == "flip":
                    out.append(b ^ (1 << self.rng.randrange(8)))
                elif kind == "repeat":
                    out += bytes((b, b))
                continue   # drop: nothing
            out.append(b)
        return bytes(out)

    def write(self, data) -> int:
        self.inner.write(self._mangle(bytes(data)))
        return len(data)

    def read(self, n: int = 1) -> bytes:
        return self._mangle(self.inner.read(n))

    @property
    def in_waiting(self) -> int:
        return self.inner.in_waiting

    def close(self) -> None:
        self.inner.close()


__all__: List[str] = ["SerialTransport", "FaultyPort", "cobs_encode", "cobs_decode"]
