"""The Transport contract (utvm_host/transport/base.py): every concrete transport implements it,
the wrappers forward it by name (no ``__getattr__``), the word helpers are the one way to read
and write a word, ``with_tracing()`` logs hex dumps, and the debugger reaches the session and
its link only through public members."""
from __future__ import annotations

import ast
import inspect
import logging
import re
from pathlib import Path

import pytest

from utvm_host import Session, devices
from utvm_host.debug import DebugTransport, Debugger
from utvm_host.transport import CountingTransport, HostTransport, OpenOcdTransport, StopInfo, TracingTransport, \
    Transport
from utvm_host.transport.gdb import GdbTransport
from utvm_host.transport.serial import SerialTransport

BACKENDS = [HostTransport, OpenOcdTransport, GdbTransport, SerialTransport, DebugTransport]
WRAPPERS = [TracingTransport, CountingTransport]

#: Every member of the contract (methods, properties and attributes).
CONTRACT = ["read", "write", "readinto", "fill", "run", "close", "__enter__", "__exit__", "alive", "restart",
            "restart_verb", "info", "inner", "little_endian", "lend_debug_port", "reclaim_debug_port",
            "with_tracing", "word_struct", "read_word", "write_word", "read32", "write32", "read64", "write64"]
#: What a wrapper must forward itself (the word helpers are built on read/write, so it sees them).
FORWARDED = ["read", "write", "readinto", "fill", "run", "close", "alive", "restart", "restart_verb", "info",
             "lend_debug_port", "reclaim_debug_port"]


class Memory(Transport):
    """A fake device: 4 KiB of memory at 0x1000 in a bytearray, in either byte order (the real
    devices here are all little-endian, so the big-endian case can only be checked on a fake)."""

    restart_verb = "poked"

    def __init__(self, little_endian: bool = True):
        self.little_endian = little_endian
        self.mem = bytearray(4096)
        self.info = {"pointer_size": 4}
        self.closed = self.reclaimed = False
        self.restarts = 0

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.mem[addr - 0x1000:addr - 0x1000 + n])

    def write(self, addr: int, data) -> None:
        view = memoryview(data).cast("B")
        self.mem[addr - 0x1000:addr - 0x1000 + view.nbytes] = view

    def run(self, entry, *, stack_base, stack_size, stop_at, timeout, results=None, before=()) -> StopInfo:
        for addr, data in before:
            self.write(addr, data)
        return StopInfo("done", pc=stop_at)

    @property
    def alive(self) -> bool:
        return not self.closed

    def restart(self) -> bool:
        self.restarts += 1
        return True

    def reclaim_debug_port(self) -> None:
        self.reclaimed = True

    def close(self) -> None:
        self.closed = True

    def not_in_the_contract(self) -> str:
        return "an extra"


# -- every transport implements the contract ------------------------------------------------

@pytest.mark.parametrize("cls", BACKENDS + WRAPPERS, ids=lambda c: c.__name__)
def test_every_transport_implements_the_contract(cls):
    assert not inspect.isabstract(cls), cls.__abstractmethods__
    assert issubclass(cls, Transport)
    for name in CONTRACT:
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
    # its own restart() and alive (the base's restart raises; its alive cannot tell)
    assert cls.restart is not Transport.restart and cls.alive is not Transport.alive
    run = inspect.signature(cls.run).parameters
    assert list(run) == list(inspect.signature(Transport.run).parameters)
    assert [p.kind for p in run.values()] == [p.kind for p in inspect.signature(Transport.run).parameters.values()]
    if cls in BACKENDS:
        assert isinstance(cls.restart_verb, str) and cls.restart_verb


@pytest.mark.parametrize("cls", WRAPPERS, ids=lambda c: c.__name__)
def test_wrappers_forward_the_contract_by_name(cls):
    assert not hasattr(cls, "__getattr__")
    for name in FORWARDED:
        assert getattr(cls, name) is not getattr(Transport, name), f"{cls.__name__} does not forward {name}"
    fake = Memory(little_endian=False)
    wrapped = cls(fake)
    assert wrapped.inner is fake and wrapped.little_endian is False
    assert wrapped.alive is True and wrapped.restart_verb == "poked" and wrapped.info == {"pointer_size": 4}
    assert wrapped.restart() is True and fake.restarts == 1
    assert wrapped.run(0x1000, stack_base=0x1800, stack_size=256, stop_at=0x1004, timeout=1.0,
                       before=[(0x1010, b"\x01\x02")]) == StopInfo("done", pc=0x1004)
    assert fake.mem[0x10:0x12] == b"\x01\x02"
    wrapped.reclaim_debug_port()
    assert fake.reclaimed
    with pytest.raises(AttributeError):
        wrapped.not_in_the_contract()                      # a backend's extras: through .inner
    assert wrapped.inner.not_in_the_contract() == "an extra"
    assert wrapped.lend_debug_port() is None and fake.closed   # the base: close, keep nothing
    assert wrapped.alive is False


def test_the_base_contract_defaults():
    fake = Memory()
    assert Transport.restart_verb == "restarted" and Transport.inner is None and dict(Transport.info) == {}
    with fake as same:
        assert same is fake and not fake.closed
    assert fake.closed                                      # __exit__ closes
    with pytest.raises(Exception) as e:
        Transport.restart(fake)
    assert str(e.value) == "Memory cannot restart the device"
    with pytest.raises(ValueError):
        fake.read_word(0x1000, 24)


def test_counting_counts_what_crosses_the_link():
    counting = CountingTransport(Memory())
    counting.write32(0x1000, 7)
    assert counting.read_word(0x1000, 16) == 7
    counting.run(0x1000, stack_base=0x1800, stack_size=256, stop_at=None, timeout=None, before=[(0x1010, b"ab")])
    assert (counting.bytes_written, counting.bytes_read, counting.runs) == (6, 2, 1)
    counting.reset()
    assert (counting.bytes_written, counting.bytes_read, counting.runs) == (0, 0, 0)


# -- word helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
def test_word_helpers_in_both_byte_orders(little):
    """A fake in-memory transport: no device here is big-endian."""
    tr = Memory(little_endian=little)
    tr.write_word(0x1000, 0x11223344, 32)
    assert tr.mem[:4] == (b"\x44\x33\x22\x11" if little else b"\x11\x22\x33\x44")
    assert tr.read_word(0x1000, 32) == tr.read32(0x1000) == 0x11223344
    tr.write64(0x1008, 0x0102030405060708)
    assert tr.mem[8:16] == (bytes(range(8, 0, -1)) if little else bytes(range(1, 9)))
    assert tr.read64(0x1008) == 0x0102030405060708
    tr.write_word(0x1010, -2, 16, signed=True)
    assert tr.mem[16:18] == (b"\xfe\xff" if little else b"\xff\xfe")
    assert tr.read_word(0x1010, 16) == 0xFFFE and tr.read_word(0x1010, 16, signed=True) == -2
    tr.write_word(0x1012, 0xAB, 8)
    assert tr.read_word(0x1012, 8) == 0xAB and tr.read_word(0x1012, 8, signed=True) == 0xAB - 256
    assert tr.word_struct(32).format == ("<I" if little else ">I")


@pytest.fixture(scope="module")
def host_sess():
    with Session(devices.host()) as sess:
        yield sess


def test_word_helpers_round_trip_on_the_host_device(host_sess):
    tr = host_sess.transport
    t = host_sess.empty(32, "uint8")
    try:
        ptr_bits = 8 * host_sess.cfg.pointer_size
        tr.write_word(t.addr, 0x1234_5678_9ABC_DEF0 & ((1 << ptr_bits) - 1), ptr_bits)
        tr.write32(t.addr + 8, 0xCAFEF00D)
        tr.write_word(t.addr + 12, -5, 32, signed=True)
        tr.write_word(t.addr + 16, 0xBEEF, 16)
        assert tr.read_word(t.addr, ptr_bits) == 0x1234_5678_9ABC_DEF0 & ((1 << ptr_bits) - 1)
        assert tr.read32(t.addr + 8) == 0xCAFEF00D
        assert tr.read_word(t.addr + 12, 32, signed=True) == -5 and tr.read32(t.addr + 12) == 2 ** 32 - 5
        assert tr.read_word(t.addr + 16, 16) == 0xBEEF
        raw = t.numpy()                                     # the bytes, as the device holds them
        assert raw[8:12].tobytes() == (0xCAFEF00D).to_bytes(4, "little")
        assert raw[16:18].tobytes() == b"\xef\xbe"
    finally:
        t.free()


def test_a_session_word_read_is_one_read_of_the_word(host_sess):
    """workspace_peak reads one pointer-sized word through read_word (which a wrapper sees)."""
    counting = host_sess.transport = CountingTransport(host_sess.transport)
    try:
        assert host_sess.workspace_peak >= 0
        assert counting.bytes_read == host_sess.cfg.pointer_size
    finally:
        host_sess.transport = counting.inner


# -- tracing --------------------------------------------------------------------------------

def test_with_tracing_logs_hex_dumps(caplog):
    caplog.set_level(logging.DEBUG, logger="utvm_host.transport.tracing")
    fake = Memory()
    tr = fake.with_tracing()
    assert isinstance(tr, TracingTransport) and tr.inner is fake and tr.with_tracing() is tr
    tr.write_word(0x1100, 0x04030201, 32)
    assert tr.read32(0x1100) == 0x04030201
    tr.write(0x1200, b"hello, world!\x00\x01\x02ABC")
    text = caplog.text
    assert "write 0x1100, 4 bytes\n  00001100: 01 02 03 04 " in text and "|....|" in text
    assert "read  0x1100, 4 bytes\n  00001100: 01 02 03 04 " in text
    assert re.search(r"00001200: 68 65 6c 6c 6f .*\|hello, world!\.\.\.\|", text)
    tr.restart()
    tr.close()
    assert "restart" in caplog.text and "close" in caplog.text and fake.closed


def test_a_tracing_session_wraps_its_link_once():
    with Session(devices.host(), trace=True) as sess:
        assert type(sess.transport) is TracingTransport and type(sess.transport.inner) is HostTransport
        sess.reset()                                        # recovery keeps the one wrapper
        assert type(sess.transport) is TracingTransport and type(sess.transport.inner) is HostTransport


# -- the debugger's hand-over, public on both sides ------------------------------------------

def test_openocd_lends_its_gdb_port_and_takes_it_back():
    """lend_debug_port/reclaim_debug_port without a simulator: the Tcl commands they send."""
    tr = OpenOcdTransport.__new__(OpenOcdTransport)
    sent = []
    tr.command = lambda script, timeout=None: sent.append(script) or ("running" if "curstate" in script else "")
    tr._rsp, tr._lent, tr._breakpoints, tr.gdb_endpoint = None, None, {0x80000010: 2}, "gdb-port"
    assert tr.lend_debug_port() is tr
    assert tr.gdb_endpoint is None and tr._breakpoints == {} and sent == ["rbp 0x80000010"]
    tr.lend_debug_port()                                    # twice: the port is still remembered
    tr.reclaim_debug_port()
    assert tr.gdb_endpoint == "gdb-port" and sent[-2:] == ["[target current] curstate", "halt"]
    tr.reclaim_debug_port()                                 # never lent now: the port stays
    assert tr.gdb_endpoint == "gdb-port"


def test_the_debug_hand_over_is_public():
    for name in ("lend_link_to_debugger", "use_debug_transport", "take_link_back"):
        assert callable(getattr(Session, name)) and getattr(Session, name).__doc__
    for name in ("symbols", "debug_endpoint", "gdb_target"):
        assert isinstance(inspect.getattr_static(Session, name), property)
    for name in ("module_loaded", "module_unloaded", "add_symbols", "remove_symbols"):
        assert callable(getattr(Debugger, name)) and getattr(Debugger, name).__doc__


def test_the_debugger_uses_no_private_member_of_the_session_or_its_link():
    source = Path(__file__).resolve().parent.parent / "utvm_host" / "debug.py"
    bad = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = ast.unparse(node.value)
            if owner in ("session", "self.session", "self.dbg.session", "dbg.session", "self.inner", "inner",
                         "self.transport.inner", "self.session.transport"):
                bad.append(f"{node.lineno}: {owner}.{node.attr}")
    assert bad == []


def test_host_session_symbols_are_read_only(host_sess):
    syms = host_sess.symbols
    assert syms["UTVMDone"] > 0
    with pytest.raises(TypeError):
        syms["UTVMDone"] = 0
    assert syms["UTVMDone"] == host_sess.runtime.symbols["UTVMDone"]
