"""Bringing up a device link: :class:`DeviceLink` starts (or attaches to) the device, one method
per transport kind, and owns what that made: the transport (wrapped for tracing in one place),
the processes behind it, and how to get them back; and it hands the link to a debugger and back.
:class:`DeviceMixin` is what the Session offers of it."""
from __future__ import annotations

import signal
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .. import arch, launch
from ..config import DeviceConfig
from ..elf import ElfFile
from ..endpoint import Endpoint, TcpEndpoint, UnixEndpoint
from ..errors import ConfigError, ConnectionLost, LinkError, UtvmError
from ..transport import HostTransport, OpenOcdTransport, Transport, gdb


class DeviceLink:
    """A session's link to its device: the transport, the processes behind it (Spike, OpenOCD,
    QEMU, a private network) and how to start them again.

    Parameters
    ----------
    cfg : DeviceConfig
        The device.
    workdir : Path
        The session's folder: logs, sockets, the console file.
    trace : bool
        Wrap every transport in a tracing one (:meth:`Transport.with_tracing`).
    """

    def __init__(self, cfg: DeviceConfig, workdir: Path, trace: bool):
        self.cfg, self.workdir, self.trace = cfg, workdir, trace
        self.family = arch.for_config(cfg)
        self.transport: Optional[Transport] = None
        self.processes: List[Any] = []
        #: Whether the runtime's image is in the device's memory already (Spike and QEMU load
        #: the runtime's ELF themselves when they start).
        self.preloaded = False
        #: The 127.0.0.1 gdb port of an OpenOCD started without a private network, else None.
        self.gdb_port: Optional[int] = None
        self._early: Optional[Transport] = None   # a serial link opened before the runtime is linked
        self._stub_elf: Optional[Path] = None
        self._gdb_server: Optional[tuple] = None   # (endpoint, registers, bp kind) of a gdb-server device
        self._network: Optional[launch.PrivateNetwork] = None   # where Spike and OpenOCD live
        self._ocd_gdb: Optional[Endpoint] = None   # the gdb port of the OpenOCD started here

    # -- before the runtime is linked ---------------------------------------------------------

    def stub_symbols(self) -> Dict[str, int]:
        """Over a serial link: the stub's hooks the runtime calls (its call-return and console)."""
        if self.cfg.transport_kind != "serial":
            return {}
        if not self.cfg["transport"].get("uart"):   # a stub flashed from elsewhere: ask it where its hooks are
            if self._early is None:
                self._early = self._open_serial(self.cfg["transport"].get("url"))
            return {"UTVMDoneHook": self._early.info["done_hook"], "UTVMConsoleHook": self._early.info["console_hook"]}
        from ..stubs import serial_stub   # builds (or finds in the cache) the stub for this device
        self._stub_elf = serial_stub(self.cfg)
        with ElfFile(self._stub_elf) as elf:
            return {name: elf.get_symbol(name).value for name in ("UTVMDoneHook", "UTVMConsoleHook")}

    def console_file(self) -> Optional[Path]:
        """The file the device's console channel writes to, when this link started it."""
        t = self.cfg["transport"]
        if t["kind"] == "serial":
            return self.workdir / "console.log"   # the stub's console frames
        if self.cfg.get("console", {}).get("kind", "none") == "none":
            return None
        if t["kind"] == "host" or t.get("launch") == "qemu":
            return self.workdir / "console.log"
        if t.get("launch") == "spike":
            return self.workdir / "spike.log"   # Spike's standard output: its HTIF console
        return None

    # -- bring-up, one method per transport kind --------------------------------------------------

    def start(self, runtime_elf: str, done: int) -> Transport:
        """Start (or attach to) the device: ``runtime_elf`` is what a simulator loads at start,
        ``done`` the runtime's UTVMDone (where calls stop). Returns the transport (traced when
        the session traces)."""
        kind = self.cfg["transport"]["kind"]
        start: Dict[str, Callable[..., Tuple[Transport, bool]]] = {
            "host": self._start_host, "gdb": self._start_gdb, "openocd": self._start_openocd,
            "serial": self._start_serial}
        transport, self.preloaded = start[kind](self.cfg["transport"], Path(runtime_elf), done)
        return self.use(transport)

    def _start_host(self, t: Dict[str, Any], elf: Path, done: int) -> Tuple[Transport, bool]:
        """The host device: a CPU process over shared memory (device_stubs/programs/host/)."""
        memory = self.cfg["memory"][0]
        return HostTransport(memory["start"], memory["size"], log_dir=self.workdir), False

    def _start_gdb(self, t: Dict[str, Any], elf: Path, done: int) -> Tuple[Transport, bool]:
        """A device behind a GDB server: QEMU's gdbstub (started here; it loads the runtime's
        ELF itself), or a server someone already runs."""
        family = self.family
        if t.get("launch") == "qemu":
            extra = family.qemu_args(self.cfg) + (["-icount", "shift=0"] if t.get("icount") else [])
            qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], elf, self.workdir, extra=extra)
            self.processes.append(qemu)
            preloaded = True
        else:
            endpoint = UnixEndpoint(t["server_socket"]) if t.get("server_socket") else \
                TcpEndpoint(t.get("server_addr") or "127.0.0.1", int(t["server_port"]))
            preloaded = False
        numbers = family.gdb_registers(self.cfg)
        regs = gdb.RegisterMap(pc=numbers.pc, sp=numbers.sp, results=numbers.results, size=numbers.size)
        bp_kind = family.breakpoint_kind(self.cfg)
        self._gdb_server = (endpoint, regs, bp_kind)
        return gdb.GdbTransport(endpoint, None, regs, little_endian=self.cfg.little_endian,
                                bp_kind=bp_kind), preloaded

    def _start_openocd(self, t: Dict[str, Any], elf: Path, done: int) -> Tuple[Transport, bool]:
        """OpenOCD: started here with Spike behind it, or for a board's probe, or one already
        running. Spike's JTAG port and OpenOCD's command ports live in a network of their own (no
        other user can reach them); a board whose adapter is reached over the network may opt out
        with transport["private_network"] = False."""
        preloaded = False
        gdb_endpoint: Optional[Endpoint] = None
        if t.get("launch") in ("spike", "openocd"):
            network = launch.private_network(self.workdir) if t.get("private_network", True) else None
            if network is not None:
                self.processes.append(network)
            self._network = network
            if t.get("launch") == "spike":
                spike, rbb = launch.start_spike(t["isa"], [(m["start"], m["size"]) for m in self.cfg["memory"]],
                                                elf, self.workdir, network=network)
                self.processes.append(spike)
                ocd, tcl, gdb_endpoint = launch.start_openocd([], launch.spike_openocd_commands(rbb), self.workdir,
                                                              network=network)
                preloaded = True
            else:
                ocd, tcl, gdb_endpoint = launch.start_openocd(t.get("config_files", []), t.get("commands", []),
                                                              self.workdir, network=network)
            self.processes.append(ocd)
            self.gdb_port = None if network is not None else gdb_endpoint.port
        else:
            tcl = TcpEndpoint(t.get("server_addr") or "127.0.0.1", int(t["server_port"]))
        self._ocd_gdb = gdb_endpoint
        transport = OpenOcdTransport(tcl, None, little_endian=self.cfg.little_endian,
                                     bp_length=self.family.breakpoint_kind(self.cfg), gdb_endpoint=gdb_endpoint,
                                     result_regs=self.family.result_registers)
        if gdb_endpoint is not None:
            transport.keep_after_gdb(done)
        return transport, preloaded

    def _start_serial(self, t: Dict[str, Any], elf: Path, done: int) -> Tuple[Transport, bool]:
        """The serial stub: QEMU booting it (its UART0 served on a loopback port), or a board's
        port; checks that the stub is the build this session links against."""
        url = t.get("url")
        if self._early is not None:   # connected already, to learn where the stub's hooks are
            tr, self._early = self._early, None
            self._check_stub_memory(tr)
            return tr, False
        if t.get("launch") == "qemu":
            extra = self.family.qemu_args(self.cfg) + (["-icount", "shift=0"] if t.get("icount") else [])
            qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], self._stub_elf, self.workdir, extra=extra,
                                               serial_server=True)
            self.processes.append(qemu)
            url = f"unix://{endpoint.path}"
        tr = self._open_serial(url)
        want = self.stub_symbols()
        if (tr.info["done_hook"], tr.info["console_hook"]) != (want["UTVMDoneHook"], want["UTVMConsoleHook"]):
            tr.close()
            raise LinkError(f"the serial stub on {url} is another build than this utvm-host's for '{self.cfg.name}' "
                            "(its hooks are elsewhere): flash the one `utvm-host firmware --device ...` writes")
        self._check_stub_memory(tr)
        return tr, False

    def _open_serial(self, url: str) -> Transport:
        from ..transport.serial import SerialTransport
        return SerialTransport(url, baudrate=self.cfg["transport"].get("baudrate", 115200),
                               console=self.workdir / "console.log", little_endian=self.cfg.little_endian)

    def _check_stub_memory(self, tr) -> None:
        for end in (tr.info["stub_end"], tr.info["stub_code_end"]):   # the stub's memory ends inside a region?
            for region in self.cfg["memory"]:
                if region["start"] < end <= region["start"] + region["size"]:
                    tr.close()
                    raise ConfigError(f"cfg['memory'] region {region['name']!r} overlaps the serial stub (which uses "
                                      f"memory up to 0x{end:x} there); start the region after that")

    def use(self, transport: Transport) -> Transport:
        """Make ``transport`` the link's, traced when the session traces: the one place a link is
        wrapped (:meth:`Transport.with_tracing`)."""
        self.transport = transport.with_tracing() if self.trace else transport
        return self.transport

    # -- processes and recovery ---------------------------------------------------------------

    def dead_process(self, wait: float = 0.0) -> Optional[str]:
        """Which process of the device died (its name, pid and how), or None. ``wait``: seconds
        to keep looking (a killed program's sockets close a moment before it can be reaped, so a
        lost link is often seen first)."""
        deadline = time.monotonic() + wait
        while True:
            for proc in self.processes:
                popen = getattr(proc, "proc", None)
                if popen is None or launch.exit_status(popen) is None:
                    continue
                code = popen.returncode
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
                return f"{getattr(proc, 'name', type(proc).__name__)} (pid {popen.pid}) {how}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def check_alive(self) -> None:
        """ConnectionLost when a process of the device died. After bulk transfers: OpenOCD
        answers a gdb-port write to a dead Spike with OK (measured), so a transfer's success alone
        proves nothing there."""
        dead = self.dead_process()
        if dead is not None:
            raise ConnectionLost(dead)

    def relaunch(self, runtime_elf: str, done: int) -> Transport:
        """Stop what is left of the device's processes and start them again."""
        try:
            self.transport.close()
        except Exception:
            pass
        self.stop_processes()
        return self.start(runtime_elf, done)

    def stop_processes(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes = []

    def close(self) -> None:
        """Close the transport (and a serial link opened early) and stop every process."""
        if self._early is not None:
            self._early.close()
            self._early = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.stop_processes()

    def forget(self) -> None:
        """In a forked child: drop everything without touching it (the parent's)."""
        self.transport, self._early, self.processes = None, None, []

    # -- a debugger holds the device ----------------------------------------------------------

    @property
    def debug_endpoint(self) -> Endpoint:
        """Where gdb-multiarch attaches (see :attr:`DeviceMixin.debug_endpoint`)."""
        kind = self.cfg.transport_kind
        if kind == "gdb" and self._gdb_server is not None:
            return self._gdb_server[0]
        if kind == "openocd" and self._ocd_gdb is not None:
            if self._network is not None:
                return self._network.relay(self.workdir / "openocd-gdb.sock", self._ocd_gdb.port)
            return self._ocd_gdb
        raise ConfigError(f"device '{self.cfg.name}' has no gdb port this session knows: debugging needs a session "
                          "that started OpenOCD or QEMU itself, or a devices.gdb_remote(...) device")

    def take_back(self, kept: Optional[Transport]) -> None:
        """The device back from a debugger (see :meth:`DeviceMixin.take_link_back`)."""
        if kept is not None:
            kept.reclaim_debug_port()
            tr = kept
        else:
            endpoint, regs, kind = self._gdb_server
            tr = gdb.GdbTransport(endpoint, None, regs, little_endian=self.cfg.little_endian, bp_kind=kind)
        self.use(tr)


class DeviceMixin:
    """What the Session offers of its :class:`DeviceLink` (``self.link``)."""

    @property
    def transport(self) -> Optional[Transport]:
        """The link's transport (None while the session is closed)."""
        link = self.__dict__.get("link")
        return link.transport if link is not None else None

    @transport.setter
    def transport(self, transport: Optional[Transport]) -> None:   # e.g. a CountingTransport around it
        self.link.transport = transport

    @property
    def _processes(self) -> List[Any]:
        link = self.__dict__.get("link")
        return link.processes if link is not None else []

    @property
    def gdb_port(self) -> Optional[int]:
        """The 127.0.0.1 gdb port of the OpenOCD this session started, when it could not be given
        a private network (None otherwise: debuggers attach to :attr:`gdb_target`)."""
        link = self.__dict__.get("link")
        return link.gdb_port if link is not None else None

    def _relaunch(self) -> None:
        """Stop what is left of the device's processes and start them again."""
        self.link.relaunch(self.runtime.elf_path, self._sym["UTVMDone"])
        self.console.attach(self.link.console_file())

    @property
    def debug_endpoint(self) -> Endpoint:
        """Where gdb-multiarch attaches: QEMU's gdb socket, a relay (a Unix socket in the session
        folder) to the gdb port of the OpenOCD in the session's private network, or a TCP port;
        ConfigError if the session has no gdb server."""
        if self.__dict__.get("link") is None:
            raise UtvmError("the session is not open")
        return self.link.debug_endpoint

    @property
    def gdb_target(self) -> str:
        """What gdb's ``target remote`` takes to reach this session's device (a Unix socket in
        the session folder, or host:port); ConfigError if it has no gdb server."""
        return self.debug_endpoint.gdb_target()

    @property
    def symbols(self) -> Mapping[str, int]:
        """The device runtime's symbols (name -> address), read-only."""
        if self.runtime is None:
            raise UtvmError("the session is not open")
        return MappingProxyType(self._sym)

    def lend_link_to_debugger(self) -> Optional[Transport]:
        """Give the device's gdb port to a debugger (:meth:`Transport.lend_debug_port`).

        Returns
        -------
        Transport or None
            The link the session keeps for memory while the debugger holds the device (OpenOCD's
            Tcl port), for the debugger's transport to use; None when gdb must carry everything
            (QEMU's gdbstub takes one client).
        """
        return self.transport.lend_debug_port()

    def use_debug_transport(self, transport: Transport) -> None:
        """While a debugger holds the device, the session's calls and transfers go through
        ``transport`` (the debugger's)."""
        self.link.use(transport)

    def take_link_back(self, kept: Optional[Transport]) -> None:
        """Take the device back from a debugger that detached (or failed to attach).

        Parameters
        ----------
        kept : Transport or None
            What :meth:`lend_link_to_debugger` returned: its debug port is reclaimed
            (:meth:`Transport.reclaim_debug_port`: bulk transfers, the core halted); None opens
            a new connection to the GDB server.
        """
        self._debugger = None
        self.link.take_back(kept)
