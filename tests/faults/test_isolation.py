"""No other user on the machine can reach a command channel of anything a session starts.

Spike and OpenOCD run in a network namespace of the session's own; QEMU's gdbstub and UART are
Unix sockets in the session's 0700 folder. Each test looks for every listening socket of the
session's processes in the machine's network and tries every channel as another user.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import EXAMPLES, IN_CI, device_cfg, missing
from utvm_host import Session, build, launch

#: The devices whose sessions start processes with command channels.
STARTED = ["spike-rv32", "qemu-cortex-m3", "qemu-riscv32-serial"]


def other_user() -> tuple:
    """(uid, gid, python) of an unprivileged user the test may act as."""
    if os.geteuid() != 0:
        missing("acting as another user needs root (CI runs as root)")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        missing("no system python3 for the other user (Debian's python3 package)")
    import pwd
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        missing("there is no user 'nobody' to act as")
    return entry.pw_uid, entry.pw_gid, python


def as_other_user(code: str) -> str:
    """Run ``code`` (Python) as another user; returns what it printed."""
    uid, gid, python = other_user()
    out = subprocess.run([python, "-I", "-c", textwrap.dedent(code)], user=uid, group=gid, extra_groups=[],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout


def listening_inodes() -> dict:
    """inode -> (protocol, port) of every listening TCP socket and bound UDP socket in this
    process's network namespace (the machine's)."""
    found = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = open(f"/proc/self/net/{proto}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            state, inode = fields[3], int(fields[9])
            if proto.startswith("udp") or state == "0A":   # 0A: LISTEN
                found[inode] = (proto, int(fields[1].rsplit(":", 1)[1], 16))
    return found


def socket_inodes(pid: int) -> set:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


@pytest.fixture(params=STARTED)
def started(request):
    cfg = device_cfg(request.param)
    with Session(cfg) as sess:
        yield request.param, cfg, sess


class TestNoWayIn:
    def test_no_process_of_the_session_listens_in_the_machines_network(self, started):
        name, cfg, sess = started
        pids = [p.pid for p in sess._processes]
        assert pids and all(pid is not None for pid in pids)
        exposed = listening_inodes()
        for proc in sess._processes:
            open_ports = [exposed[i] for i in socket_inodes(proc.pid) if i in exposed]
            assert open_ports == [], f"{proc.name} listens on {open_ports} where every local user can connect"
        if name.startswith("spike"):
            # Spike's JTAG port binds 0.0.0.0, but inside the session's own network
            assert [p.name for p in sess._processes] == ["private-network", "spike", "openocd"]
            spike = sess._processes[1]
            rbb = int(re.search(r"remote bitbang connection on port (\d+)", spike.log_text()).group(1))
            ns = {os.readlink(f"/proc/{p.pid}/ns/net") for p in sess._processes}
            assert len(ns) == 1 and ns != {os.readlink("/proc/self/ns/net")}
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", rbb), timeout=2).close()

    def test_another_user_can_reach_no_channel(self, started):
        name, cfg, sess = started
        sockets = sorted(str(p) for p in sess.workdir.iterdir() if p.is_socket())
        expected = {"spike-rv32": ["openocd-gdb.sock"], "qemu-cortex-m3": ["qemu-gdb.sock"],
                    "qemu-riscv32-serial": ["qemu-serial.sock"]}[name]
        if name.startswith("spike"):
            assert sess.gdb_target.endswith("openocd-gdb.sock")   # the debugger's way in: now it exists
            sockets = sorted(str(p) for p in sess.workdir.iterdir() if p.is_socket())
        assert [os.path.basename(s) for s in sockets] == expected
        assert oct(sess.workdir.stat().st_mode & 0o777) == "0o700"
        ports = [6666, 3333]   # OpenOCD's defaults; in the private network they exist only inside
        if name.startswith("spike"):
            ports.append(int(re.search(r"port (\d+)", sess._processes[1].log_text()).group(1)))
        report = as_other_user(f"""
            import socket
            for path in {sockets!r}:
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path); print(path, "connected")
                except OSError as e:
                    print(path, type(e).__name__)
            for port in {ports!r}:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close(); print(port, "connected")
                except OSError as e:
                    print(port, type(e).__name__)
        """)
        assert report.splitlines() == [f"{s} PermissionError" for s in sockets] + \
            [f"{p} ConnectionRefusedError" for p in ports]
        # and the owner still can: the session works
        mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
        a = np.arange(64, dtype=np.float32)
        c = np.zeros_like(a)
        mod["vadd"](a, a, c, 64)
        np.testing.assert_array_equal(c, 2 * a)
        mod.unload()


class TestWithoutPrivateNetwork:
    """Where the kernel refuses namespaces (forced here with UTVM_HOST_PRIVATE_NET=0), OpenOCD's
    ports are on 127.0.0.1: another user can connect, but cannot run programs or touch files."""

    def test_dangerous_openocd_commands_are_gone(self, monkeypatch, caplog):
        cfg = device_cfg("spike-rv32")
        monkeypatch.setenv("UTVM_HOST_PRIVATE_NET", "0")
        monkeypatch.setattr(launch.network, "_warned_no_netns", False)
        with caplog.at_level(logging.WARNING, logger="utvm_host.launch"), Session(cfg) as sess:
            assert [p.name for p in sess._processes] == ["spike", "openocd"]
            assert [r.getMessage() for r in caplog.records] == [
                "UTVM_HOST_PRIVATE_NET=0: OpenOCD's Tcl and gdb ports listen on 127.0.0.1, where every local user "
                "can connect (its commands that run programs or write files are removed), and Spike's "
                "remote-bitbang port listens on all addresses; see the README, 'What a session guarantees'"]
            tcl, gdb = sess.transport.endpoint.port, sess.gdb_port
            proof = f"/tmp/utvm-host-proof-{os.getpid()}"
            report = as_other_user(f"""
                import socket
                s = socket.create_connection(("127.0.0.1", {tcl}), timeout=5)
                for command in ["exec id", "dump_image {proof} 0x80000000 4", "log_output {proof}",
                                "load_image /etc/passwd 0x80000000 bin", "source /etc/passwd", "open /etc/passwd"]:
                    s.sendall(command.encode() + b"\\x1a")
                    reply = b""
                    while not reply.endswith(b"\\x1a"):
                        reply += s.recv(4096)
                    print(command.split()[0], reply[:-1].decode().strip().splitlines()[0])
                # the same through gdb's monitor command
                g = socket.create_connection(("127.0.0.1", {gdb}), timeout=5)
                def packet(p):
                    g.sendall(b"$" + p + b"#%02x" % (sum(p) & 0xff))
                    data = b""
                    while True:
                        data += g.recv(4096)
                        for part in data.split(b"$")[1:]:
                            if b"#" in part and not part.startswith(b"O") and part[:2] != b"+$":
                                return part.split(b"#")[0]
                packet(b"qSupported")
                for command in (b"version", b"exec id"):   # a harmless command answers OK: the channel works
                    reply = packet(b"qRcmd," + command.hex().encode()).decode()
                    text = bytes.fromhex(reply).decode().split()[0] if reply[:1] != "E" else reply   # output in hex
                    print("monitor", command.decode(), text)
            """)
            assert report.splitlines() == ['exec invalid command name "exec"', 'dump_image invalid command name "dump_image"',
                                 'log_output invalid command name "log_output"',
                                 'load_image invalid command name "load_image"', 'source invalid command name "source"',
                                 'open invalid command name "open"', "monitor version Open",
                                           "monitor exec id E01"]
            assert not os.path.exists(proof)
            mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))   # our own use of OpenOCD is untouched
            a = np.arange(300, dtype=np.float32)
            c = np.zeros_like(a)
            mod["vadd"](a, a, c, 300)
            np.testing.assert_array_equal(c, 2 * a)


class TestNoPortRaces:
    def test_a_process_holding_the_usual_ports_gets_no_traffic(self):
        """Someone listens on OpenOCD's and gdb's usual ports first: sessions neither dial them
        nor wait for them (QEMU's gdbstub is a Unix socket, OpenOCD's ports are in the session's
        own network)."""
        squatters, accepted = [], []
        for port in (6666, 3333, 1234):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue   # taken by someone else already: just as good a squatter
            s.listen(8)
            s.settimeout(0.05)
            squatters.append(s)
        try:
            for name in ("spike-rv32", "qemu-cortex-m3"):
                cfg = device_cfg(name)
                with Session(cfg) as sess:
                    mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
                    a = np.arange(700, dtype=np.float32)
                    c = np.zeros_like(a)
                    mod["vadd"](a, a, c, 700)
                    np.testing.assert_array_equal(c, 2 * a)
                for s in squatters:
                    try:
                        accepted.append(s.accept())
                    except OSError:
                        pass
        finally:
            for s in squatters:
                s.close()
        assert squatters and accepted == []


def test_a_long_temporary_directory_still_gives_working_sockets(monkeypatch, tmp_path):
    """Unix socket paths must stay under 108 bytes: with a long TMPDIR the session folder (and
    its sockets) go in /tmp instead, and leave nothing there."""
    long = tmp_path / ("x" * 60) / ("y" * 60)
    long.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(long))
    cfg = device_cfg("qemu-cortex-m3")
    with Session(cfg) as sess:
        assert sess.workdir.parent == Path("/tmp") and len(sess.gdb_target) < 108
        mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
        a = np.arange(16, dtype=np.float32)
        c = np.zeros_like(a)
        mod["vadd"](a, a, c, 16)
        np.testing.assert_array_equal(c, 2 * a)
        folder = sess.workdir
    assert not folder.exists()
