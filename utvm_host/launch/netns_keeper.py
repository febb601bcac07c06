"""The keeper of a session's private network: run as a program, never imported by the library.

``python -I -S netns_keeper.py CONTROL_FD`` moves itself into a new network namespace (and, when
not root, a new user namespace mapping only its own uid and gid), brings that namespace's
loopback up and answers requests on ``CONTROL_FD`` (a ``SOCK_SEQPACKET`` Unix socket the
session holds). Spike and OpenOCD then join the namespace (``launch.PrivateNetwork``), so their
TCP ports (Spike's remote-bitbang port binds 0.0.0.0, OpenOCD's Tcl and gdb ports take
commands from anyone who connects) exist only inside it: no other user, and no other process
of the same user, can reach them.

Requests (one datagram each, ASCII) and replies:
  ``connect PORT``        -> ``ok`` with a TCP socket connected to 127.0.0.1:PORT inside the
                             namespace attached (SCM_RIGHTS), or ``error MESSAGE``
  ``relay PATH PORT``     -> ``ok``: a Unix socket at PATH (mode 0600) whose connections are
                             relayed to 127.0.0.1:PORT inside (for gdb-multiarch), or ``error``
At start the keeper sends ``ready`` (or ``error MESSAGE`` and exits). It exits when the
session closes its end of the control socket, or with its parent (PR_SET_PDEATHSIG).

Standard library only: this file runs under ``python -I -S`` without the package.
"""
import ctypes
import errno
import fcntl
import os
import selectors
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def enter_private_network() -> None:
    """unshare the network namespace (with a user namespace when not root) and bring lo up."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    if uid != 0:   # map only ourselves: files we create stay ours, nobody else exists inside
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags_now = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags_now | IFF_UP))


class Relay:
    """Bytes both ways between an accepted Unix connection and a TCP connection inside."""

    def __init__(self, sel: selectors.BaseSelector, a: socket.socket, b: socket.socket):
        self.sel, self.ends = sel, (a, b)
        for s in self.ends:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, self)

    def pump(self, sock: socket.socket) -> None:
        other = self.ends[1] if sock is self.ends[0] else self.ends[0]
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self.close()

    def close(self) -> None:
        for s in self.ends:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()


def connect_inside(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)
    return s


def serve(control: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ, "control")
    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "control":
                try:
                    message = control.recv(4096)
                except OSError:
                    message = b""
                if not message:
                    return   # the session closed: everything inside ends with us
                reply, fds = handle(sel, message.decode(errors="replace").split())
                socket.send_fds(control, [reply.encode()], fds) if fds else control.send(reply.encode())
                for fd in fds:
                    os.close(fd)
            elif isinstance(what, tuple):   # a listening relay socket: (socket, port)
                listener, port = what
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                try:
                    inner = connect_inside(port)
                except OSError:
                    conn.close()
                    continue
                Relay(sel, conn, inner)
            else:
                what.pump(key.fileobj)


def handle(sel: selectors.BaseSelector, words: list) -> tuple:
    """(reply text, file descriptors to pass) for one request."""
    try:
        if len(words) == 2 and words[0] == "connect":
            s = connect_inside(int(words[1]))
            fd = os.dup(s.fileno())
            s.close()
            return "ok", [fd]
        if len(words) == 3 and words[0] == "relay":
            path, port = words[1], int(words[2])
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                listener.bind(path)
            finally:
                os.umask(old)
            listener.listen(4)
            sel.register(listener, selectors.EVENT_READ, (listener, port))
            return "ok", []
        return f"error unknown request {' '.join(words)[:80]!r}", []
    except OSError as exc:
        return f"error {exc.strerror or exc}", []


def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        enter_private_network()
    except OSError as exc:
        control.send(f"error {exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)})".encode())
        return 1
    control.send(b"ready")
    serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
