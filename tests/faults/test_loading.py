"""Correctness of what loads (issue 14, items 12-17): names the linker misreads, kernels gcc
folds, malformed objects, scalar ranges, session folders that must not grow, and stack frames
that must never jump the Cortex-M stack guard. Real compilers and simulators throughout; a
fake only where it injects a fault the real part cannot produce (said where it is used)."""
from __future__ import annotations

import math
import os
import random
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

from helpers import device_cfg
from utvm_host import Session, build
from utvm_host.elf import ElfFile
from utvm_host.errors import BuildError, DeviceFault, LayoutError, TransportError, UtvmError
from utvm_host.session import stack_guard_regions
from utvm_host.toolchain import Toolchain, kernel_signatures, library_from_object, shim_source, check_target, Library

HERE = Path(__file__).parent / "kernels"
THREE = ["host", "spike-rv32", "qemu-cortex-m3"]


@pytest.fixture(scope="module", params=THREE)
def dev(request):
    """(device name, config, open session) per device, one session per device for the module."""
    cfg = device_cfg(request.param)
    sess = Session(cfg, timeout=10).open()
    try:
        yield request.param, cfg, sess
    finally:
        sess.close()


# -- 12: export names that look like hex numbers ---------------------------------------------

def test_hex_looking_export_names_link_for_every_later_load(dev):
    name, cfg, sess = dev
    hexmod = sess.load(build([HERE / "hexnames.c"], cfg))
    assert hexmod["add"](2, 3) == 5 and hexmod["fadd"](1.5, 2.0) == 3.5 and hexmod["beef"](4) == 12
    # Every later load is offered those names (they used to break as --defsym:N: syntax error) ...
    user = sess.load(build([HERE / "hexuser.c"], cfg))
    assert user["use_hex"](5) == 5 * 3 + 7          # ... and links against them
    other = sess.load(build([HERE / "scalars.c"], cfg))
    assert other["pick"](True, 4) == 4
    for mod in (other, user, hexmod):
        mod.unload()


# -- 13: identical code folding --------------------------------------------------------------

def test_kernels_gcc_folds_stay_callable_under_their_names(dev):
    name, cfg, sess = dev
    lib = build([HERE / "folded.c"], cfg, cflags=["-O2"])
    with ElfFile(lib.path) as elf:   # the fold happened: one of each pair has a DIE without code
        dw = elf._dwarf()
        codeless = {elf._name(d) for cu in dw.iter_CUs() for d in cu.get_top_DIE().iter_children()
                    if d.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" not in d.attributes
                    and "DW_AT_ranges" not in d.attributes}
    assert codeless & {"scale_a", "scale_b"} and codeless & {"plus7_a", "plus7_b"}
    mod = sess.load(lib)
    assert mod.kernels() == ["plus7_a", "plus7_b", "scale_a", "scale_b"]
    assert mod["plus7_a"](1) == 8 and mod["plus7_b"](-10) == -3
    for kernel in ("scale_a", "scale_b"):
        x = np.arange(5, dtype=np.float32)
        mod[kernel](x, 5)
        np.testing.assert_array_equal(x, 2 * np.arange(5, dtype=np.float32))
    assert repr(mod["scale_b"]) == "<Function void scale_b(float *x, int n)>"
    mod.unload()


# -- 14: malformed objects give BuildError, nothing else, and never hang ----------------------

def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:                     # bytes anywhere
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:                   # the ELF header
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(64)] = rng.randrange(256)
    elif kind == 2:                   # truncated
        b = b[:rng.randrange(len(b))]
    else:                             # the section header table
        shoff = int.from_bytes(b[0x20:0x24] if b[4] == 1 else b[0x28:0x30], "little")
        for _ in range(rng.randint(1, 4)):
            i = shoff + rng.randrange(max(1, len(b) - shoff))
            if i < len(b):
                b[i] = rng.randrange(256)
    return bytes(b)


class _Hang(Exception):
    pass


def _read_everything(path: Path, cfg) -> None:
    """What load() and the tools read of an object: headers, sections, symbols, relocations,
    DWARF signatures and types, attributes, the target check, symbolization, call shims."""
    elf = ElfFile(path)
    for sec in elf.sections:
        sec.data()
    list(elf.iter_symbols())
    elf.defined_symbols()
    elf.undefined_symbols()
    list(elf.iter_relocations())
    sigs = kernel_signatures(elf)
    shim_source(sigs.values())
    elf.attributes()
    try:
        elf.struct_layout("no_such_struct")
    except KeyError:
        pass
    elf.symbolize(0x10)
    check_target(Library(str(path), "fuzzed", cfg["arch"]), cfg)


@pytest.mark.parametrize("device", THREE)
def test_fuzzed_objects_raise_only_utvm_errors(device, tmp_path, monkeypatch):
    cfg = device_cfg(device)
    monkeypatch.setenv("UTVM_HOST_CACHE", str(tmp_path / "cache"))   # every mutant is a new cache entry
    base = tmp_path / "scalars.o"
    Toolchain(cfg).compile(HERE / "scalars.c", base)
    data = base.read_bytes()
    mutant = tmp_path / "mutant.o"

    def hang(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, hang)
    outcomes = {"ok": 0, "BuildError": 0}
    try:
        for seed in range(200):
            rng = random.Random(f"{device}-{seed}")
            mutant.write_bytes(_mutate(rng, data))
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                _read_everything(mutant, cfg)
                if seed % 5 == 0:   # the compiler and linker steps cost ~20 ms: a fifth of the cases
                    lib = library_from_object(mutant, cfg)
                    lib.signatures()
                outcomes["ok"] += 1
            except _Hang:
                pytest.fail(f"mutant {device}-{seed} took over 10 s to read")
            except UtvmError as exc:
                assert isinstance(exc, BuildError), f"mutant {device}-{seed}: {type(exc).__name__}: {exc}"
                outcomes["BuildError"] += 1
            except Exception as exc:   # anything else is the bug this test is about
                raise AssertionError(f"mutant {device}-{seed} raised {type(exc).__name__}: {exc}") from exc
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert outcomes["ok"] > 20 and outcomes["BuildError"] > 20, outcomes   # both kinds were exercised


def host_object_and_section(tmp_path, name: str) -> tuple:
    """A real host object's bytes (to corrupt) and its section ``name``."""
    base = tmp_path / "scalars.o"
    Toolchain(device_cfg("host")).compile(HERE / "scalars.c", base)
    return bytearray(base.read_bytes()), next(s for s in ElfFile(base).sections if s.name == name)


def test_malformed_elf_stays_malformed_and_names_the_part(tmp_path):
    """A parse that failed once fails the same way again (no half-built cache is used)."""
    data, info = host_object_and_section(tmp_path, ".debug_info")
    data[info.offset + 11:info.offset + 60] = b"\xff" * 49   # DIEs after the CU header: garbage
    bad = tmp_path / "bad.o"
    bad.write_bytes(bytes(data))
    broken = ElfFile(bad)
    for _ in range(2):
        with pytest.raises(BuildError) as err:
            broken.signatures()
        assert str(err.value).startswith(f"'{bad}' is a malformed ELF file: its DWARF ")
        assert str(err.value).endswith("; rebuild it, or pass the object file the compiler wrote")


def test_section_past_the_end_of_the_file_is_refused_before_the_linker(tmp_path):
    data, text = host_object_and_section(tmp_path, ".text")
    shoff = int.from_bytes(data[0x28:0x30], "little")
    entry = shoff + text.index * 64 + 0x20          # Elf64_Shdr.sh_size
    data[entry:entry + 8] = (1 << 40).to_bytes(8, "little")
    bad = tmp_path / "big.o"
    bad.write_bytes(bytes(data))
    with pytest.raises(BuildError) as err:
        library_from_object(bad, device_cfg("host"))
    assert str(err.value) == (
        f"'{bad}' is a malformed ELF file: section '.text' (index {text.index}) claims 1,099,511,627,776 bytes at "
        f"offset {text.offset:,}, past the end of the file ({len(data):,} bytes); rebuild it, or pass the object "
        "file the compiler wrote")


# -- 15: scalar ranges -----------------------------------------------------------------------

FLT = "[-3.4028234663852886e+38, 3.4028234663852886e+38]"
DBL = "[-1.7976931348623157e+308, 1.7976931348623157e+308]"


def test_scalar_parameters_refuse_values_their_c_type_cannot_hold(dev):
    name, cfg, sess = dev
    mod = sess.load(build([HERE / "scalars.c"], cfg))
    cases = [
        ("pick", (2, 1), "argument 1 'b' of pick() (_Bool) = 2 is out of range [0, 1]"),
        ("pick", (255, 1), "argument 1 'b' of pick() (_Bool) = 255 is out of range [0, 1]"),
        ("pick", (-1, 1), "argument 1 'b' of pick() (_Bool) = -1 is out of range [0, 1]"),
        ("pick", (np.uint8(7), 1), "argument 1 'b' of pick() (_Bool) = 7 is out of range [0, 1]"),
        ("halve", (1e39,), f"argument 1 'x' of halve() (float) = 1e+39 is out of range {FLT}"),
        ("halve", (-1e39,), f"argument 1 'x' of halve() (float) = -1e+39 is out of range {FLT}"),
        ("halve", (np.float64(1e39),), f"argument 1 'x' of halve() (float) = 1e+39 is out of range {FLT}"),
        ("halve", (10 ** 400,), f"argument 1 'x' of halve() (float) = 1.000e+400 is out of range {FLT}"),
        ("twice", (-10 ** 400,), f"argument 1 'x' of twice() (double) = -1.000e+400 is out of range {DBL}"),
        ("pick", (True, 10 ** 400), "argument 2 'x' of pick() (int) = 1.000e+400 is out of range "
                                    "[-2147483648, 2147483647]"),
    ]
    for kernel, args, text in cases:
        with pytest.raises(TypeError) as err:
            mod[kernel](*args)
        assert str(err.value) == text
    # What the types hold still goes through, and the session is fine after the refusals.
    assert mod["pick"](True, 3) == 3 and mod["pick"](0, 3) == -3 and mod["pick"](np.bool_(True), 2) == 2
    assert mod["halve"](3.4028234663852886e38) == np.float32(1.7014117331926443e38)
    assert mod["halve"](float("inf")) == math.inf and math.isnan(mod["halve"](float("nan")))
    assert mod["halve"](10 ** 30) == np.float32(5e29) and mod["twice"](1e300) == 2e300
    mod.unload()


# -- 16: session folders ---------------------------------------------------------------------

def _session_folders(root: Path) -> list:
    return sorted(p.name for p in root.glob("utvm-session-*"))


@pytest.fixture
def short_tmp():
    """A private temporary folder with a short path (Unix socket paths in a session folder must
    stay under 108 bytes; pytest's tmp_path can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="utf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("device", THREE)
def test_failed_open_leaves_no_session_folder(device, short_tmp, monkeypatch):
    cfg = device_cfg(device)
    tmp_path = short_tmp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # only this test's folders counted

    def refuse(self, image=True):   # fake: a link failing while the runtime is written
        raise TransportError("injected: the link failed while writing the runtime")

    with monkeypatch.context() as m:
        m.setattr(Session, "_write_runtime", refuse)
        with pytest.raises(TransportError, match="^injected: the link failed while writing the runtime$"):
            Session(cfg).open()
    assert _session_folders(tmp_path) == []
    if device != "host":   # a real failure at the device start: the simulator cannot start
        bad = device_cfg(device)
        if device == "qemu-cortex-m3":
            bad["transport"]["machine"] = "no-such-machine"
        else:
            bad["transport"]["isa"] = "rv32nonsense"
        with pytest.raises(UtvmError):
            Session(bad).open()
        assert _session_folders(tmp_path) == []
    with Session(cfg) as sess:   # and a session that opens is unaffected
        assert _session_folders(tmp_path) == [sess.workdir.name]
    assert _session_folders(tmp_path) == []


def test_session_folder_does_not_grow_over_load_unload_cycles(dev):
    name, cfg, sess = dev
    lib = build([HERE / "scalars.c"], cfg)
    mod = sess.load(lib)
    mod.unload()
    before = sorted(os.listdir(sess.workdir))
    for i in range(5):
        mod = sess.load(lib)
        assert mod["pick"](True, i) == i
        assert Path(mod.image.elf_path).is_file()   # kept while loaded (symbols, debugger)
        mod.unload()
        assert not Path(mod.image.elf_path).exists()
    assert sorted(os.listdir(sess.workdir)) == before
    assert not [f for f in before if f.endswith(".ld")]   # link scripts go once the link is done


# -- 17: stack frames and the Cortex-M stack guard ---------------------------------------------

def _big_frame_expected(seed: int) -> int:
    total = sum(i ^ seed for i in range(24 * 1024)) & 0xFFFFFFFF
    return total - (1 << 32) if total >= 1 << 31 else total


def _chain_expected(levels: int, seed: int) -> int:
    total = sum(sum(i ^ (seed + k) for i in range(6 * 1024)) for k in range(levels)) & 0xFFFFFFFF
    return total - (1 << 32) if total >= 1 << 31 else total


def test_a_96_kib_frame_gives_the_right_result_or_a_clear_error(dev):
    name, cfg, sess = dev
    lib = build([HERE / "big_frame.c"], cfg)
    frame = lib.stack_usage["big_frame"]
    assert 95 * 1024 <= frame < 97 * 1024   # 96 KiB less the x86-64 red zone on the host
    mod = sess.load(lib)
    stack = sess.stack_block.size
    if frame + 256 <= stack:
        assert name == "host"
        assert mod["big_frame"](5) == _big_frame_expected(5)
    else:
        guard = 4096 if cfg.abi["elf_machine"] == "EM_ARM" else 0
        need = (frame + 256 + guard + 4095) & ~4095
        with pytest.raises(LayoutError) as err:
            mod["big_frame"]
        guarded = f", {guard:,} of them its overflow guard" if guard else ""
        assert str(err.value) == (
            f"kernel 'big_frame' of 'big_frame' has a stack frame of {frame:,} bytes (gcc -fstack-usage), more than "
            f"fits in the device stack ({stack:,} bytes{guarded}; a call needs its frame and 256 bytes more): every "
            f"call would overflow it. Enlarge cfg['mem_layout']['stack']['size'] to at least {need:,}, or move the "
            "kernel's large local arrays into a parameter or the workspace (TVMBackendAllocWorkspace)")
        assert (err.value.region, err.value.needed, err.value.required_size) == ("stack", frame + 256, need)
    mod.unload()


@pytest.mark.parametrize("device", ["spike-rv32", "qemu-cortex-m3"])
def test_a_96_kib_frame_runs_once_the_stack_is_enlarged(device):
    cfg = device_cfg(device)
    grow = 128 * 1024 - cfg["mem_layout"]["stack"]["size"]
    cfg["mem_layout"]["stack"]["size"] += grow          # what the LayoutError's fix says
    cfg["mem_layout"]["heap"]["size"] -= grow           # the rest of RAM makes room
    with Session(cfg) as sess:
        mod = sess.load(build([HERE / "big_frame.c"], cfg))
        assert mod["big_frame"](5) == _big_frame_expected(5)
        assert mod["big_frame"](-77) == _big_frame_expected(-77)


def test_frames_that_overflow_the_stack_never_jump_its_guard(dev):
    """chain(3) needs three 24 KiB frames in a 64 KiB stack: the third lands below the stack.
    On QEMU's Cortex-M3 it used to jump the 4 KiB MPU guard into memory that reads zero."""
    name, cfg, sess = dev
    lib = build([HERE / "chain.c"], cfg)
    mod = sess.load(lib)
    assert mod["chain"](2, 1) == _chain_expected(2, 1)
    if sess.stack_block.size >= 3 * lib.stack_usage["chain"] + 4096:
        assert name == "host"
        assert mod["chain"](3, 1) == _chain_expected(3, 1)
    else:
        with pytest.raises(DeviceFault) as err:
            mod["chain"](3, 1)
        assert str(err.value).startswith("kernel 'chain' crashed: ")
        assert err.value.fault_address is not None and err.value.fault_address < sess.stack_block.start
        assert "the device was halted and its 1 library reloaded" in str(err.value)
    assert mod["chain"](2, 7) == _chain_expected(2, 7)   # the next call is correct
    mod.unload()


def test_cortex_m_guard_regions_cover_the_largest_frame():
    start = 0x20000000
    # the default Cortex-M3 layout: the stack at the start of RAM, code memory ends at 4 MiB
    assert stack_guard_regions(start, 0, 0x400000) == [(start, 4096)]
    assert stack_guard_regions(start, 98304 + 256, 0x400000) == [(start, 4096), (start - 0x20000, 0x20000)]
    # memory in use right below the stack: the guard cannot go there
    assert stack_guard_regions(start, 98304, start) == [(start, 4096)]
    # an unaligned stack start: several regions, exactly down to the floor
    assert stack_guard_regions(0x20013000, 40000, 0x20000000) == [(0x20010000, 0x4000), (0x20008000, 0x8000)]
    for limit, depth, floor in [(0x20013000, 40000, 0x20000000), (0x2000F000, 70000, 0x1000), (start, 5000, 0)]:
        regions = stack_guard_regions(limit, depth, floor)
        lo = min(b for b, _ in regions)
        assert lo >= floor and (limit + 4096 - lo >= depth or lo == (floor + 31) & ~31)
        for base, size in regions:
            assert size & (size - 1) == 0 and base % size == 0 and size >= 32
        covered = sorted(regions)
        for (b1, s1), (b2, s2) in zip(covered, covered[1:]):
            assert b1 + s1 == b2                             # contiguous, no gaps
        assert covered[-1][0] + covered[-1][1] == limit + 4096
