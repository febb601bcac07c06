"""The device console: printf from kernels on every device, read with sess.console.

The module's devices have %f %e %g compiled in (cfg["console_float"] = True); a few devices also
run a float-free console (the default), which prints "<float>" instead. The device's printf is
compared with the host C library's printf of the same kernel source (tests/kernels/console_formats.c
built for this machine), which must match exactly. The console's C is also checked on its own under
sanitizers and a fuzzer (tests/device_c/unit/test_console.c, tests/device_c/fuzz/fuzz_console.c).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from utvm_host import DeviceFault, KernelError, build, devices
from utvm_host.elf import ElfFile
from utvm_host.toolchain import build_runtime

from helpers import DEVICES, KERNELS, device_cfg, missing, require_tool, session_for

FORMATS = KERNELS / "console_formats.c"
SLOW_CALL = 120.0   # seconds: thousands of conversions, some of 300-digit numbers, on a simulator


@pytest.fixture(scope="module", params=list(DEVICES))
def cfg(request):
    """Every device, with %f %e %g in its console (the noisy kernels print floats)."""
    c = device_cfg(request.param)
    c["console_float"] = True
    return c


@pytest.fixture(scope="module")
def noisy(sess, cfg):
    return sess.load(build([KERNELS / "noisy.c"], cfg))


@pytest.fixture(scope="module")
def formats(sess, cfg):
    return sess.load(build([FORMATS], cfg))


@pytest.fixture(scope="session")
def host_printf(tmp_path_factory):
    """The kernels of console_formats.c built for this machine with its C library's printf:
    ``host_printf("console_ints", 1, 20)`` is what they print here."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        missing("gcc is not installed (run `make setup`)")
    work = tmp_path_factory.mktemp("host_printf")
    main = work / "main.c"
    main.write_text(
        "#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "void console_ints(int32_t, int32_t);\nvoid console_text(void);\nvoid console_floats(int32_t, int32_t);\n"
        "int main(int argc, char **argv) {\n"
        "  if (argc > 1 && !strcmp(argv[1], \"console_ints\")) console_ints(atoi(argv[2]), atoi(argv[3]));\n"
        "  if (argc > 1 && !strcmp(argv[1], \"console_text\")) console_text();\n"
        "  if (argc > 1 && !strcmp(argv[1], \"console_floats\")) console_floats(atoi(argv[2]), atoi(argv[3]));\n"
        "  return 0;\n}\n")
    exe = work / "console_formats"
    include = Path(__file__).resolve().parent.parent / "device_stubs" / "include"
    subprocess.run([cc, "-std=c99", "-O1", "-w", f"-I{include}", str(FORMATS), str(main), "-o", str(exe)],
                   check=True, capture_output=True)

    def run(name: str, *args: int) -> str:
        return subprocess.run([str(exe), name, *map(str, args)], check=True, capture_output=True).stdout.decode()
    return run


def test_printf_reaches_sess_console(sess, noisy):
    sess.console.read()
    assert noisy["noisy"](np.arange(10, dtype=np.int32), 10) == 45
    assert sess.console.read() == "sum=45\n"
    assert sess.console.read() == ""   # read() consumes


def test_formats_match_c(sess, noisy):
    sess.console.read()
    noisy["formats"]()
    assert sess.console.read() == (
        "[-42|    7|7    |-0007|4000000000|ff|0000BEEF|10|-1|-1234567890123|12]\n"
        "[abc|    ab|ab    |z|%|0x1234|3.14|-0.500000|2|1000000.000000]\n"   # %.0f of 2.5: ties to even, as C
        "puts adds a newline\n"
        "!")   # a partial line is flushed at the end of the call


def test_long_output_arrives_whole_and_in_order(sess, noisy):
    sess.console.read()
    noisy["chatter"](300)
    lines = sess.console.read().splitlines()
    assert len(lines) == 300
    assert lines[0] == "line 0000 of 300: 0123456789abcdefghij" and lines[-1].startswith("line 0299 of 300")
    noisy["noisy"](np.ones(3, np.int32), 3)
    noisy["noisy"](np.ones(4, np.int32), 4)
    assert sess.console.read() == "sum=3\nsum=4\n"   # unread text accumulates across calls


def test_what_a_failing_call_printed_is_in_the_error(sess, noisy):
    sess.console.read()
    with pytest.raises(KernelError) as e:
        noisy["failing"](7)
    assert str(e.value) == "kernel 'failing' failed (returned -1): bad n\nthe device printed:\nabout to fail with 7"
    assert e.value.console == "about to fail with 7\n"
    with pytest.raises(DeviceFault) as e:
        noisy["crash"]()
    assert e.value.console == "writing through 0x90000000\n"
    assert str(e.value).endswith("the device printed:\nwriting through 0x90000000")
    assert noisy["noisy"](np.ones(2, np.int32), 2) == 2   # the session goes on


def test_a_crashing_kernels_last_partial_line_is_kept_once(sess, formats):
    """A kernel that faults before the runtime's flush: its unsent partial line is read from
    the runtime's line buffer (the host device's process is dead by then) and comes with the
    error; the next call starts with an empty line and does not print it again."""
    sess.console.read()
    with pytest.raises(DeviceFault) as e:
        formats["console_partial_then_crash"](7)
    assert e.value.console == "partial line 7, then"
    assert str(e.value).endswith("the device printed:\npartial line 7, then")
    assert sess.console.read() == "partial line 7, then"
    formats["console_say"]()
    assert sess.console.read() == "next call\n"
    formats["console_say"]()
    assert sess.console.read() == "next call\n"


def test_integer_and_text_formats_match_the_host_c_library(sess, formats, host_printf):
    sess.console.read()
    formats["console_ints"](1, 40, timeout=SLOW_CALL)
    assert sess.console.read() == host_printf("console_ints", 1, 40)
    formats["console_text"]()
    assert sess.console.read() == host_printf("console_text")


def test_float_formats_match_the_host_c_library(sess, formats, host_printf):
    """%f %e %g of any double (subnormal, 1e308, inf, nan) exactly as glibc prints them:
    correctly rounded, ties to even, all 309 digits of a large %f."""
    sess.console.read()
    formats["console_floats"](7, 12, timeout=SLOW_CALL)
    assert sess.console.read() == host_printf("console_floats", 7, 12)


def test_what_the_console_does_not_print_is_marked_and_arguments_stay_in_step(sess, formats):
    sess.console.read()
    formats["console_markers"]()
    assert sess.console.read().splitlines() == [
        "[%n|<float>|<float>|%ls|after|7]",                    # %n stores nothing; %a and L doubles: a marker
        "[1.500000| 2.500e+00|3.5      |after floats|8]",
        "[0." + "0" * 40 + "|4464|44|+5| 5|   5|005|-5|-6|ok]",   # float precision saturates at 40
        "[" + " " * 4094 + "1]",                               # so does a width, at 4095
    ]


def test_printf_returns_what_it_printed(sess, formats):
    sess.console.read()
    assert formats["console_count"]() == len("count     |   42|c|    0x1234|%\n")
    assert sess.console.read() == "count     |   42|c|    0x1234|%\n"


# ---- the float-free console (the default) ----------------------------------------------------

PLAIN_DEVICES = ["host", "spike-rv32", "qemu-riscv32", "qemu-cortex-m3"]


@pytest.fixture(scope="module", params=PLAIN_DEVICES)
def plain_sess(request):
    """A session whose console has no %f %e %g (cfg["console_float"] left at its default)."""
    c = device_cfg(request.param)
    assert not c.get("console_float", False)
    yield from session_for(c)


@pytest.fixture(scope="module")
def plain_formats(plain_sess):
    return plain_sess.load(build([FORMATS], plain_sess.cfg))


def test_float_free_console_matches_the_host_c_library_for_the_rest(plain_sess, plain_formats, host_printf):
    plain_sess.console.read()
    plain_formats["console_ints"](3, 20, timeout=SLOW_CALL)
    plain_formats["console_text"]()
    assert plain_sess.console.read() == host_printf("console_ints", 3, 20) + host_printf("console_text")


def test_float_free_console_marks_floats_and_keeps_arguments_in_step(plain_sess, plain_formats):
    plain_sess.console.read()
    plain_formats["console_markers"]()
    assert plain_sess.console.read().splitlines() == [
        "[%n|<float>|<float>|%ls|after|7]",
        "[<float>|   <float>|<float>  |after floats|8]",   # the marker takes the field's width
        "[<float>|4464|44|+5| 5|   5|005|-5|-6|ok]",
        "[" + " " * 4094 + "1]",
    ]
    with pytest.raises(DeviceFault) as e:
        plain_formats["console_partial_then_crash"](9)
    assert e.value.console == "partial line 9, then"
    plain_formats["console_say"]()
    assert plain_sess.console.read() == "partial line 9, thennext call\n"


# ---- what the console links -------------------------------------------------------------------

SOFT_DOUBLE = re.compile(r"^__(\w+df\d?|\w*dfs?[id]i?\d?|aeabi_d\w+|aeabi_[iu]?l?2d|aeabi_f2d)$")


@pytest.mark.parametrize("target", ["rv32imac", "cortex-m3"])
@pytest.mark.parametrize("console_float", [False, True])
def test_the_runtime_links_no_soft_double_code(target, console_float):
    """Without cfg["console_float"] a device never links soft-float double routines (libgcc's
    __adddf3, __muldf3, __fixunsdfdi, __aeabi_dadd, ...); with it neither: %f %e %g use integer
    arithmetic on the double's bits."""
    if target == "rv32imac":
        require_tool("riscv64-unknown-elf-gcc")
        cfg = devices.spike(isa="rv32imac")
    else:
        require_tool("arm-none-eabi-gcc")
        cfg = devices.qemu("cortex-m3")
    cfg["console_float"] = console_float
    with ElfFile(build_runtime(cfg).path) as elf:
        undefined = elf.undefined_symbols()
        defined = set(elf.defined_symbols())
    assert "printf" in defined and "utvm_console_line" in defined and "utvm_console_len" in defined
    assert [name for name in undefined if SOFT_DOUBLE.match(name)] == []
    assert not {"__adddf3", "__muldf3", "__fixunsdfdi", "__floatundidf", "__aeabi_dadd", "__aeabi_dmul"} & \
        (set(undefined) | defined)
