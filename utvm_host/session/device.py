"""Bringing up a device link: starting or attaching to the device per transport kind, its
processes, the one place the link is wrapped for tracing, and handing the link to a debugger and
back."""
from __future__ import annotations

import signal
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import launch
from ..elf import ElfFile
from ..errors import ConfigError, ConnectionLost, LinkError, UtvmError
from ..transport import gdb
from ..endpoint import Endpoint, TcpEndpoint, UnixEndpoint
from ..transport import HostTransport, OpenOcdTransport, Transport



class DeviceMixin:
    """Session methods that start the device and own its link."""

    def _stub_symbols(self) -> Dict[str, int]:
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

    def _open_serial(self, url: str) -> Transport:
        from ..transport.serial import SerialTransport
        return SerialTransport(url, baudrate=self.cfg["transport"].get("baudrate", 115200),
                               console=self.workdir / "console.log", little_endian=self.cfg.little_endian)

    def _console_file(self) -> Optional[Path]:
        """The file the device's console channel writes to, when this session started it."""
        t = self.cfg["transport"]
        if t["kind"] == "serial":
            return self.workdir / "console.log"   # the stub's console frames
        if self.cfg.get("console", {}).get("kind", "none") == "none":
            return None
        if t["kind"] in ("host", "serial") or t.get("launch") == "qemu":
            return self.workdir / "console.log"
        if t.get("launch") == "spike":
            return self.workdir / "spike.log"   # Spike's standard output: its HTIF console
        return None

    def _start_device(self) -> Tuple[Transport, bool]:
        """Start (or attach to) the device; returns its transport and whether the runtime image
        is already in its memory (Spike loads the runtime's ELF itself at start)."""
        t = self.cfg["transport"]
        if t["kind"] == "host":
            memory = self.cfg["memory"][0]
            return HostTransport(memory["start"], memory["size"], log_dir=self.workdir), False
        if t["kind"] == "serial":
            return self._start_serial(t), False
        if t["kind"] == "gdb":
            return self._start_gdb(t)
        family = self._arch
        preloaded = False
        gdb_endpoint: Optional[Endpoint] = None
        if t.get("launch") in ("spike", "openocd"):
            # Spike's JTAG port and OpenOCD's command ports live in a network of their own
            # (no other user can reach them); a board whose adapter is reached over the
            # network may opt out with transport["private_network"] = False.
            network = launch.private_network(self.workdir) if t.get("private_network", True) else None
            if network is not None:
                self._processes.append(network)
            self._network = network
            if t.get("launch") == "spike":
                spike, rbb = launch.start_spike(t["isa"], [(m["start"], m["size"]) for m in self.cfg["memory"]],
                                                Path(self.runtime.elf_path), self.workdir, network=network)
                self._processes.append(spike)
                ocd, tcl, gdb_endpoint = launch.start_openocd([], launch.spike_openocd_commands(rbb), self.workdir,
                                                              network=network)
                preloaded = True
            else:
                ocd, tcl, gdb_endpoint = launch.start_openocd(t.get("config_files", []), t.get("commands", []),
                                                              self.workdir, network=network)
            self._processes.append(ocd)
            self.gdb_port = None if network is not None else gdb_endpoint.port
        else:
            tcl = TcpEndpoint(t.get("server_addr") or "127.0.0.1", int(t["server_port"]))
        self._ocd_gdb = gdb_endpoint
        transport = OpenOcdTransport(tcl, None, little_endian=self.cfg.little_endian,
                                     bp_length=family.breakpoint_kind(self.cfg), gdb_endpoint=gdb_endpoint,
                                     result_regs=family.result_registers)
        if gdb_endpoint is not None:
            transport.keep_after_gdb(self._sym["UTVMDone"])
        return transport, preloaded

    def _start_gdb(self, t: Dict[str, Any]) -> Tuple[Transport, bool]:
        """A device behind a GDB server: QEMU's gdbstub (started here; it loads the runtime's
        ELF itself), or a server someone already runs."""
        family = self._arch
        if t.get("launch") == "qemu":
            extra = family.qemu_args(self.cfg) + (["-icount", "shift=0"] if t.get("icount") else [])
            qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], Path(self.runtime.elf_path),
                                               self.workdir, extra=extra)
            self._processes.append(qemu)
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

    def _start_serial(self, t: Dict[str, Any]) -> Transport:
        """The serial stub: QEMU booting it (its UART0 served on a loopback port), or a board's
        port; checks that the stub is the build this session links against."""
        url = t.get("url")
        if self._early is not None:   # connected already, to learn where the stub's hooks are
            tr, self._early = self._early, None
            self._check_stub_memory(tr)
            return tr
        if t.get("launch") == "qemu":
            extra = self._arch.qemu_args(self.cfg) + (["-icount", "shift=0"] if t.get("icount") else [])
            qemu, endpoint = launch.start_qemu(t["qemu"], t["machine"], self._stub_elf, self.workdir, extra=extra,
                                               serial_server=True)
            self._processes.append(qemu)
            url = f"unix://{endpoint.path}"
        tr = self._open_serial(url)
        want = self._stub_symbols()
        if (tr.info["done_hook"], tr.info["console_hook"]) != (want["UTVMDoneHook"], want["UTVMConsoleHook"]):
            tr.close()
            raise LinkError(f"the serial stub on {url} is another build than this utvm-host's for '{self.cfg.name}' "
                            "(its hooks are elsewhere): flash the one `utvm-host firmware --device ...` writes")
        self._check_stub_memory(tr)
        return tr

    def _check_stub_memory(self, tr) -> None:
        for end in (tr.info["stub_end"], tr.info["stub_code_end"]):   # the stub's memory ends inside a region?
            for region in self.cfg["memory"]:
                if region["start"] < end <= region["start"] + region["size"]:
                    tr.close()
                    raise ConfigError(f"cfg['memory'] region {region['name']!r} overlaps the serial stub (which uses "
                                      f"memory up to 0x{end:x} there); start the region after that")


    def _dead_process(self, wait: float = 0.0) -> Optional[str]:
        """Which process of the device died (its name, pid and how), or None. ``wait``: seconds
        to keep looking (a killed program's sockets close a moment before it can be reaped, so a
        lost link is often seen first)."""
        deadline = time.monotonic() + wait
        while True:
            for proc in self._processes:
                popen = getattr(proc, "proc", None)
                if popen is None or launch.exit_status(popen) is None:
                    continue
                code = popen.returncode
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
                return f"{getattr(proc, 'name', type(proc).__name__)} (pid {popen.pid}) {how}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _check_alive(self) -> None:
        """ConnectionLost when a process of the device died. After bulk transfers: OpenOCD
        answers a gdb-port write to a dead Spike with OK (measured), so a transfer's success alone
        proves nothing there."""
        dead = self._dead_process()
        if dead is not None:
            raise ConnectionLost(dead)


    def _relaunch(self) -> None:
        """Stop what is left of the device's processes and start them again."""
        try:
            self.transport.close()
        except Exception:
            pass
        for proc in reversed(self._processes):
            proc.stop()
        self._processes = []
        transport, self._preloaded = self._start_device()
        self._use_link(transport)
        self.console.attach(self._console_file())

    def _use_link(self, transport: Transport) -> None:
        """Make ``transport`` the session's link, traced when the session traces: the one place a
        link is wrapped (:meth:`Transport.with_tracing`)."""
        self.transport = transport.with_tracing() if self.trace else transport

    # -- a debugger holds the device (utvm_host.debug) ------------------------------------------

    @property
    def debug_endpoint(self) -> Endpoint:
        """Where gdb-multiarch attaches: QEMU's gdb socket, a relay (a Unix socket in the session
        folder) to the gdb port of the OpenOCD in the session's private network, or a TCP port;
        ConfigError if the session has no gdb server."""
        kind = self.cfg.transport_kind
        if kind == "gdb" and self._gdb_server is not None:
            return self._gdb_server[0]
        if kind == "openocd" and self._ocd_gdb is not None:
            if self._network is not None:
                return self._network.relay(self.workdir / "openocd-gdb.sock", self._ocd_gdb.port)
            return self._ocd_gdb
        raise ConfigError(f"device '{self.cfg.name}' has no gdb port this session knows: debugging needs a session "
                          "that started OpenOCD or QEMU itself, or a devices.gdb_remote(...) device")

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
        self._use_link(transport)

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
        if kept is not None:
            kept.reclaim_debug_port()
            tr = kept
        else:
            endpoint, regs, kind = self._gdb_server
            tr = gdb.GdbTransport(endpoint, None, regs, little_endian=self.cfg.little_endian, bp_kind=kind)
        self._use_link(tr)
