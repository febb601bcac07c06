"""GDB remote protocol framing, checked against exchanges recorded from OpenOCD and gdb, and
bulk memory through a real OpenOCD gdb port."""
from __future__ import annotations

import numpy as np

from helpers import require_spike
from utvm_host import Session, devices
from utvm_host.transport.rsp import PacketReader, checksum, escape, expand_rle, frame, unescape


class TestFraming:
    def test_frames_recorded_from_gdb(self):
        # Packets gdb-multiarch 13.1 sent to OpenOCD 0.12 (recorded with `set debug remote 1`).
        assert frame(b"vMustReplyEmpty") == b"$vMustReplyEmpty#3a"
        assert frame(b"QStartNoAckMode") == b"$QStartNoAckMode#b0"
        assert frame(b"!") == b"$!#21"
        assert frame(b"Hg0") == b"$Hg0#df"
        assert frame(b"qXfer:features:read:target.xml:0,1000") == b"$qXfer:features:read:target.xml:0,1000#0c"
        assert frame(b"qXfer:features:read:target.xml:1000,1000") == \
            b"$qXfer:features:read:target.xml:1000,1000#9d"
        assert frame(b"") == b"$#00"
        assert checksum(b"OK") == 0x9A

    def test_escape_round_trip(self):
        data = bytes(range(256)) * 3
        escaped = escape(data)
        assert len(escaped) == len(data) + 4 * 3          # $ # } * are escaped
        assert b"}\x03" in escaped and b"}\x04" in escaped and b"}]" in escaped and b"}\n" in escaped
        assert unescape(escaped) == data

    def test_run_length_replies(self):
        assert expand_rle(b"0* ") == b"0000"                # ' ' is 32: three more
        assert expand_rle(b"ab*\"c") == b"abbbbbbc"         # '"' is 34: five more
        assert expand_rle(b"plain") == b"plain"

    def test_reader_splits_acks_packets_and_checks_sums(self):
        r = PacketReader()
        r.feed(b"+$OK#9a$S05#b8+$bad#00")
        assert r.next() == ("ack", b"+")
        assert r.next() == ("packet", b"OK", True)
        assert r.next() == ("packet", b"S05", True)
        assert r.next() == ("ack", b"+")
        assert r.next() == ("packet", b"bad", False)
        assert r.next() is None

    def test_reader_waits_for_a_whole_packet(self):
        r = PacketReader()
        r.feed(b"$O")
        assert r.next() is None
        r.feed(b"K#9")
        assert r.next() is None
        r.feed(b"a")
        assert r.next() == ("packet", b"OK", True)


class TestThroughOpenOcd:
    def test_bulk_transfers_use_the_gdb_port_and_round_trip(self):
        require_spike()
        with Session(devices.spike(isa="rv32imac")) as sess:
            tr = sess.transport
            data = np.random.default_rng(5).integers(0, 256, 40000, dtype=np.uint8)
            data[:64] = [0x23, 0x24, 0x7D, 0x2A] * 16                 # bytes that need escaping
            t = sess.tensor(data)
            assert tr._rsp is not None and tr._rsp.ack is False        # binary X, no-ack mode
            np.testing.assert_array_equal(t.numpy(), data)
            odd = tr.read(t.addr + 3, 1001)                             # unaligned, through m
            assert odd == data[3:1004].tobytes()
            tr.release_gdb_port()
            assert tr._rsp is None and tr.state() == "halted"
            np.testing.assert_array_equal(t.numpy(), data)              # reconnects
            assert tr._rsp is not None
            assert tr.lend_debug_port() is tr                           # a debugger takes the gdb port
            assert tr._rsp is None and tr.gdb_endpoint is None
            np.testing.assert_array_equal(t.numpy(), data)              # Tcl only meanwhile
            assert tr._rsp is None
            tr.reclaim_debug_port()
            assert tr.gdb_endpoint is not None and tr.state() == "halted"
            np.testing.assert_array_equal(t.numpy(), data)              # the gdb port again
            assert tr._rsp is not None


class TestRecordedQemu:
    """Replies QEMU 7.2 (qemu-system-arm, mps2-an385) sent to gdb-multiarch 13.1, recorded with
    `set debug remote 1`, framed as they crossed the socket in ack mode."""

    def test_qsupported_and_stop_status(self):
        r = PacketReader()
        supported = b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"
        r.feed(b"+" + frame(supported) + b"+" + frame(b"T05thread:p01.01;"))
        assert r.next() == ("ack", b"+")
        kind, payload, ok = r.next()
        assert ok and payload == supported
        assert r.next() == ("ack", b"+")
        assert r.next() == ("packet", b"T05thread:p01.01;", True)
        features = dict(item.split("=", 1) if "=" in item else (item[:-1], item[-1])
                        for item in payload.decode().split(";"))
        assert int(features["PacketSize"], 16) == 4096 and features["qXfer:features:read"] == "+"

    def test_split_segments_and_two_packets_in_one_read(self):
        # A long reply arrives in pieces; acks and the next packet can share a segment.
        body = b"0" * 300 + b"ff"
        wire = b"+" + frame(body) + b"+" + frame(b"OK")
        r = PacketReader()
        for i in range(0, len(wire), 7):
            r.feed(wire[i:i + 7])
        items = []
        while (item := r.next()) is not None:
            items.append(item)
        assert items == [("ack", b"+"), ("packet", body, True), ("ack", b"+"), ("packet", b"OK", True)]
