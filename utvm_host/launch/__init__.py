"""Start and stop the processes a device needs, with readiness checks, logs and guaranteed teardown.

The host device's CPU process (``device_stubs/programs/host/utvm_host_cpu.c``), Spike, OpenOCD and QEMU.
Every process started here is registered, and stopped when its owner closes, when it is
garbage-collected, at interpreter exit, and (through ``PR_SET_PDEATHSIG``) when Python itself
dies. Processes are forked from one long-lived thread: the kernel sends ``PR_SET_PDEATHSIG``
when the *thread* that forked a child ends, so a session opened in a worker thread must not
lose its simulator when that thread exits.

No other user can reach a command channel of anything started here: QEMU's gdbstub and UART
are Unix sockets in the session's 0700 folder; Spike and OpenOCD run in a private network
namespace (:class:`PrivateNetwork`), so Spike's remote-bitbang port (which binds 0.0.0.0) and
OpenOCD's Tcl and gdb ports exist only inside it. Where the kernel refuses namespaces, OpenOCD
falls back to 127.0.0.1 ports with its commands that run programs or touch files removed, and a
warning says what stays exposed.
"""
from .hostcpu import (OP_DONE, OP_ERROR, OP_FAULT, OP_QUIT, OP_READY, OP_RUN, OP_STOPPED, REPLY, REQUEST, CpuReply,
                      HostCpu)
from .network import PrivateEndpoint, PrivateNetwork, PrivateNetworkUnavailable, private_network
from .process import ManagedProcess, exit_status, free_port, spawn
from .tools import (OPENOCD_REMOVED_COMMANDS, SPIKE_HINT, find_spike, require_program, spike_openocd_commands,
                    start_openocd, start_qemu, start_spike)

__all__ = ["OP_DONE", "OP_ERROR", "OP_FAULT", "OP_QUIT", "OP_READY", "OP_RUN", "OP_STOPPED", "REPLY", "REQUEST",
           "CpuReply", "HostCpu", "PrivateEndpoint", "PrivateNetwork", "PrivateNetworkUnavailable", "private_network",
           "ManagedProcess", "exit_status", "free_port", "spawn", "OPENOCD_REMOVED_COMMANDS", "SPIKE_HINT",
           "find_spike", "require_program", "spike_openocd_commands", "start_openocd", "start_qemu", "start_spike"]
