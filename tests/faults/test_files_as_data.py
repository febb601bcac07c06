"""Files are data (issue 14, item 2): a graph file or a session registry record never supplies a
command, a compiler wrapper or a path outside its folder, and registry records are readable only
by their owner. Hostile files are written as an attacker would write them; the checks run the
real compiler, the real `utvm-host` command and, for "another user", a real second uid."""
from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import EXAMPLES, missing, session_for
from utvm_host import Session, build, devices
from utvm_host.executor import GraphExecutor
from utvm_host.graph import ALLOWED_FILE_CFLAGS, Graph, GraphBuilder, GraphError

CLI = [sys.executable, "-m", "utvm_host.cli"]
SCALE_C = ('#include <stdint.h>\n#include "scale.h"\n'
           "void scale(const int32_t *x, int32_t *y, int32_t n) { for (int i = 0; i < n; i++) y[i] = x[i] * FACTOR; }\n")


@pytest.fixture(scope="module")
def host_sess():
    yield from session_for(devices.host())


def write_graph(folder: Path, cflags, **changes) -> Path:
    """A one-node graph ``folder/g.json`` (y = x * FACTOR), written as a file would come: raw
    JSON, ``changes`` overriding its keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "k.c").write_text(SCALE_C)
    (folder / "inc").mkdir(exist_ok=True)
    (folder / "inc" / "scale.h").write_text("#ifndef FACTOR\n#define FACTOR 2\n#endif\n")
    doc = {"format": "utvm-host-graph", "version": 1, "name": "g", "sources": ["k.c"], "cflags": cflags,
           "tensors": {"x": {"shape": [8], "dtype": "int32"}, "y": {"shape": [8], "dtype": "int32"}},
           "inputs": ["x"], "outputs": ["y"],
           "nodes": [{"name": "n", "kernel": "scale", "inputs": ["x"], "outputs": ["y"], "attrs": {"n": 8}}]}
    doc.update(changes)
    path = folder / "g.json"
    path.write_text(json.dumps(doc))
    return path


def run_graph(graph: Graph, sess) -> np.ndarray:
    ex = GraphExecutor(graph, sess)
    try:
        ex.set_input("x", np.arange(8, dtype=np.int32))
        ex.run()
        return ex.get_output(0)
    finally:
        ex.close()


def refused_flag(path: Path, flag: str) -> str:
    return (f"graph file {path}: compiler flag '{flag}' is not allowed in a graph file (allowed: "
            f"{ALLOWED_FILE_CFLAGS}); pass other flags in Python: Graph.load(path, cflags=[...])")


# ---- graph files: compiler flags -------------------------------------------------------------

class TestGraphFlags:
    def test_a_compiler_wrapper_in_a_graph_file_is_refused_and_never_runs(self, tmp_path, host_sess):
        marker = tmp_path / "pwned"
        path = write_graph(tmp_path / "g", ["-I", "inc", "-wrapper", f"/bin/sh,-c,touch {marker}"])
        with pytest.raises(GraphError) as e:
            run_graph(Graph.load(path), host_sess)
        assert str(e.value) == refused_flag(path, "-wrapper")
        assert (e.value.file, e.value.entry) == (str(path), "-wrapper")
        assert not marker.exists()

    @pytest.mark.parametrize("cflags, flag", [
        (["-B/tmp/evil"], "-B/tmp/evil"),
        (["-specs=/tmp/evil.specs"], "-specs=/tmp/evil.specs"),
        (["--specs=evil.specs"], "--specs=evil.specs"),
        (["@flags.txt"], "@flags.txt"),
        (["-fplugin=./evil.so"], "-fplugin=./evil.so"),
        (["-fplugin=evil"], "-fplugin=evil"),
        (["-fdump-tree-all"], "-fdump-tree-all"),
        (["-fcompare-debug=-B."], "-fcompare-debug=-B."),
        (["-o", "/tmp/x"], "-o"),
        (["-x", "assembler"], "-x"),
        (["-Wl,-T,evil.ld"], "-Wl,-T,evil.ld"),
        (["-Wa,-o,/tmp/x"], "-Wa,-o,/tmp/x"),
        (["-Wp,-MD,/tmp/x"], "-Wp,-MD,/tmp/x"),
        (["-Xlinker", "-T"], "-Xlinker"),
        (["-save-temps"], "-save-temps"),
        (["-MF", "/tmp/x"], "-MF"),
        (["--sysroot=/tmp"], "--sysroot=/tmp"),
        (["-iprefix", "/tmp/"], "-iprefix"),
        (["-D"], "-D"),
    ])
    def test_flags_outside_the_allow_list_are_refused_naming_the_flag_and_file(self, tmp_path, cflags, flag):
        path = write_graph(tmp_path / "g", ["-O2"] + cflags)
        with pytest.raises(GraphError) as e:
            Graph.load(path)
        assert str(e.value) == refused_flag(path, flag)

    @pytest.mark.parametrize("cflags, flag, text, why", [
        (["-include", "/etc/passwd"], "-include", "/etc/passwd", "absolute"),
        (["-I/usr/include"], "-I", "/usr/include", "absolute"),
        (["-isystem", "/usr/include"], "-isystem", "/usr/include", "absolute"),
        (["-I", "../.."], "-I", "../..", "outside"),
        (["-imacros", "inc/../../secret.h"], "-imacros", "inc/../../secret.h", "outside"),
        (["-Iescape"], "-I", "escape", "outside"),   # a symlink in the folder that points out of it
    ])
    def test_include_paths_must_stay_inside_the_graph_folder(self, tmp_path, cflags, flag, text, why):
        folder = tmp_path / "g"
        path = write_graph(folder, cflags)
        (folder / "escape").symlink_to(tmp_path)
        root = folder.resolve()
        with pytest.raises(GraphError) as e:
            Graph.load(path)
        if why == "absolute":
            assert str(e.value) == (f"graph file {path}: compiler flag '{flag}' names '{text}', which is not a "
                                    f"relative path; paths in a graph file are relative to its folder {root} and "
                                    "stay inside it")
        else:
            assert str(e.value) == (f"graph file {path}: compiler flag '{flag}' names '{text}', which leads outside "
                                    f"the graph's folder {root} (to {(root / text).resolve()}); keep the files a "
                                    "graph names in its folder")

    def test_allowed_flags_work_with_paths_relative_to_the_graph_folder(self, tmp_path, host_sess, monkeypatch):
        path = write_graph(tmp_path / "g", ["-O3", "-D", "FACTOR=3", "-UNDEBUG", "-I", "inc", "-fno-strict-aliasing",
                                            "-g", "-Wall", "-Wno-unused-variable", "-std=c11", "-include",
                                            "inc/scale.h"])
        monkeypatch.chdir(tmp_path)   # relative to the file's folder, not to the working directory
        graph = Graph.load(path)
        root = path.parent.resolve()
        assert graph.cflags == ["-O3", "-DFACTOR=3", "-UNDEBUG", f"-I{root / 'inc'}", "-fno-strict-aliasing", "-g",
                                "-Wall", "-Wno-unused-variable", "-std=c11", "-include", str(root / "inc/scale.h")]
        np.testing.assert_array_equal(run_graph(graph, host_sess), np.arange(8, dtype=np.int32) * 3)

    def test_flags_given_in_python_are_not_restricted(self, tmp_path, host_sess):
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outside / "factor.h").write_text("#define FACTOR 5\n")
        path = write_graph(tmp_path / "g", ["-I", "inc"])
        graph = Graph.load(path, cflags=["-include", str(outside / "factor.h")])   # refused in a file
        np.testing.assert_array_equal(run_graph(graph, host_sess), np.arange(8, dtype=np.int32) * 5)


# ---- graph files: sources and params ----------------------------------------------------------

class TestGraphPaths:
    @pytest.mark.parametrize("key, value, shown, why", [
        ("sources", ["../k.c"], "../k.c", "outside"),
        ("sources", ["/etc/passwd"], "/etc/passwd", "absolute"),
        ("sources", ["link.c"], "link.c", "outside"),   # a symlink to a file outside the folder
        ("params", "../p.npz", "../p.npz", "outside"),
        ("params", "/tmp/p.npz", "/tmp/p.npz", "absolute"),
    ])
    def test_sources_and_params_must_stay_inside_the_graph_folder(self, tmp_path, key, value, shown, why):
        folder = tmp_path / "g"
        path = write_graph(folder, [], **{key: value})
        (tmp_path / "k.c").write_text(SCALE_C)
        (folder / "link.c").symlink_to(tmp_path / "k.c")
        root = folder.resolve()
        with pytest.raises(GraphError) as e:
            Graph.load(path)
        if why == "absolute":
            assert str(e.value) == (f"graph file {path}: '{key}' names '{shown}', which is not a relative path; "
                                    f"paths in a graph file are relative to its folder {root} and stay inside it")
        else:
            assert str(e.value) == (f"graph file {path}: '{key}' names '{shown}', which leads outside the graph's "
                                    f"folder {root} (to {(root / shown).resolve()}); keep the files a graph names "
                                    "in its folder")

    def test_save_copies_outside_sources_into_the_folder_and_loads_back(self, tmp_path, host_sess):
        src = tmp_path / "src" / "k.c"
        src.parent.mkdir()
        src.write_text(SCALE_C.replace('#include "scale.h"\n', "#define FACTOR 4\n"))
        b = GraphBuilder("g", sources=[src], cflags=["-O2"])
        x = b.input("x", (8,), "int32")
        b.output(b.node("n", "scale", [x], ("y", (8,), "int32"), n=8))
        path = b.graph().save(tmp_path / "out" / "g.json")
        assert json.loads(path.read_text())["sources"] == ["g_sources/k.c"]
        back = Graph.load(path)
        assert back.sources == [(tmp_path / "out" / "g_sources" / "k.c").resolve()]
        np.testing.assert_array_equal(run_graph(back, host_sess), np.arange(8, dtype=np.int32) * 4)

    def test_save_refuses_flags_a_file_could_not_hold(self, tmp_path):
        b = GraphBuilder("g", sources=[], cflags=["-B/opt/gcc"])
        b.output(b.input("x", (8,), "int32"))
        with pytest.raises(GraphError) as e:
            b.graph().save(tmp_path / "g.json")
        assert str(e.value) == refused_flag(tmp_path / "g.json", "-B/opt/gcc")
        assert not (tmp_path / "g.json").exists()


# ---- the session registry ---------------------------------------------------------------------

def cli(*args, env_dir: Path):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, UTVM_HOST_RUNTIME_DIR=str(env_dir)))


def other_user() -> pwd.struct_passwd:
    """An unprivileged uid to act as "another user on the machine" (needs root to switch to it)."""
    if os.geteuid() != 0:
        missing("switching to another uid needs root")
    for name in ("utvm-test-other", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "-r", "utvm-test-other"], check=True)
    return pwd.getpwnam("utvm-test-other")


def as_user(user: pwd.struct_passwd, argv) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, user=user.pw_uid, group=user.pw_gid,
                          extra_groups=[], timeout=30, env=dict(os.environ, LC_ALL="C"))


@pytest.fixture
def shared_tmp():
    """A folder other users may traverse (0711), so a check as another uid tests the modes of what
    is inside it, not only its parents'."""
    folder = Path(tempfile.mkdtemp(prefix="utvm-files-as-data-"))
    os.chmod(folder, 0o711)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


class TestRegistryPermissions:
    def test_records_are_readable_only_by_their_owner_whatever_the_umask(self, shared_tmp, monkeypatch):
        folder = shared_tmp / "sessions"
        monkeypatch.setenv("UTVM_HOST_RUNTIME_DIR", str(folder))
        modes = []
        real_replace = os.replace

        def observe(src, dst):   # an observer, not a fake: the mode of a record before it is renamed
            if Path(dst).parent == folder:
                modes.append(stat.S_IMODE(os.stat(src).st_mode))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", observe)
        old = os.umask(0)
        try:
            sess = Session(devices.host()).open()
        finally:
            os.umask(old)
        try:
            record = sess._registry_path
            assert modes == [0o600]
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
            user = other_user()
            assert as_user(user, ["cat", str(record)]).stderr == f"cat: {record}: Permission denied\n"
            os.chmod(folder, 0o711)   # even where the folder lets others through, the record is closed
            assert as_user(user, ["cat", str(record)]).stderr == f"cat: {record}: Permission denied\n"
            os.chmod(folder, 0o700)
        finally:
            sess.close()
        assert not record.exists()

    def test_a_folder_of_another_user_is_refused_with_the_fix(self, tmp_path, caplog, monkeypatch):
        user = other_user()
        folder = tmp_path / "sessions"
        folder.mkdir(mode=0o700)
        os.chown(folder, user.pw_uid, user.pw_gid)
        out = cli("info", env_dir=folder)
        assert out.returncode == 1
        assert out.stderr == (f"utvm-host info: the session registry folder {folder} belongs to uid {user.pw_uid}, "
                              f"not to you (uid 0): its owner could read or forge session records; remove it, or "
                              "set UTVM_HOST_RUNTIME_DIR to a folder of your own\n")
        monkeypatch.setenv("UTVM_HOST_RUNTIME_DIR", str(folder))
        with Session(devices.host()) as sess:   # the session works; it is just not announced
            assert sess._registry_path is None
        assert list(folder.iterdir()) == []
        assert "this session is not announced to `utvm-host info/debug`: the session registry folder" in caplog.text

    def test_a_folder_others_may_write_is_refused_and_one_they_may_read_is_closed(self, tmp_path):
        folder = tmp_path / "sessions"
        folder.mkdir()
        os.chmod(folder, 0o777)
        out = cli("debug", env_dir=folder)
        assert (out.returncode, out.stderr) == (
            1, f"utvm-host debug: the session registry folder {folder} is writable by other users (mode 0777): "
               f"they could forge session records; run `chmod 700 {folder}`, or set UTVM_HOST_RUNTIME_DIR to a "
               "folder of your own\n")
        os.chmod(folder, 0o755)   # as versions before this fix created it
        out = cli("info", env_dir=folder)
        assert out.returncode == 0 and out.stdout.startswith("no utvm-host session is running")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


# ---- forged records ----------------------------------------------------------------------------

def forge(registry_dir: Path, session_dir: Path, **changes) -> Path:
    """A record as a live session would write it (this test process is its pid), with ``changes``."""
    registry_dir.mkdir(mode=0o700, exist_ok=True)
    runtime = session_dir / "000_runtime.elf"
    lib = session_dir / "001_k.elf"
    for f in (runtime, lib):
        f.write_bytes(b"\x7fELF")
    record = {"id": f"{os.getpid()}-99", "pid": os.getpid(), "device": "spike-rv32imac", "arch": "rv32imac",
              "transport": "openocd", "started": time.time(), "folder": str(session_dir),
              "gdb": {"host": "127.0.0.1", "port": 3333, "arch": "riscv:rv32", "shared": True},
              "runtime": str(runtime),
              "modules": [{"name": "k", "elf": str(lib), "kernels": ["k"], "sections": {".text": 0x80010000}}],
              "memory_map": "ram 0x80000000-0x81000000"}
    for key, value in changes.items():
        if value is None and key in record and key != "gdb":
            del record[key]
        else:
            record[key] = value
    path = registry_dir / f"{record['id']}.json"
    path.write_text(json.dumps(record))
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def session_dir(tmp_path):
    d = Path(tempfile.mkdtemp(prefix="utvm-session-", dir=tmp_path))   # 0700, like a session's folder
    return d


class TestForgedRecords:
    def test_a_well_formed_record_gives_a_quoted_gdb_argv(self, tmp_path, session_dir):
        folder = tmp_path / "sessions"
        forge(folder, session_dir)
        out = cli("debug", env_dir=folder)
        assert out.returncode == 0, out.stderr
        assert shlex.split(out.stdout) == [
            "gdb-multiarch", "-nx", "-q", "-ex", "set confirm off", "-ex", "set pagination off",
            "-ex", "set architecture riscv:rv32", "-ex", f"file {session_dir}/000_runtime.elf",
            "-ex", f"add-symbol-file {session_dir}/001_k.elf 0x80010000", "-ex", "target remote 127.0.0.1:3333"]

    @pytest.mark.parametrize("changes, reason", [
        # gdb's `target remote | CMD` runs CMD through a shell
        ({"gdb": {"host": "| touch {marker}", "port": 1, "arch": "riscv:rv32", "shared": True}},
         "'gdb' host must be 127.0.0.1 (or give a Unix 'socket' in the session's folder), not '| touch {marker}'"),
        ({"gdb": {"socket": "| touch {marker}", "arch": None, "shared": True}},
         "'gdb' socket must be an absolute path, not '| touch {marker}'"),
        ({"gdb": {"socket": "/tmp/.X11-unix/X0", "arch": None, "shared": True}},
         "'gdb' socket '/tmp/.X11-unix/X0' is outside the session's folder {session}"),
        ({"gdb": {"host": "127.0.0.1", "port": "3333\nshell touch {marker}", "arch": None, "shared": True}},
         "'gdb' port must be a TCP port number, not '3333\\nshell touch {marker}'"),
        ({"gdb": {"host": "127.0.0.1", "port": 3333, "arch": "riscv:rv32\nshell touch {marker}", "shared": True}},
         "'gdb' arch must be text without control characters, not 'riscv:rv32\\nshell touch {marker}'"),
        ({"gdb": {"host": "127.0.0.1", "port": 3333, "arch": "auto", "shared": True}},
         "'gdb' arch 'auto' is not one of: riscv:rv32, riscv:rv64, arm"),
        ({"runtime": "/etc/passwd"}, "'runtime' '/etc/passwd' is outside the session's folder {session}"),
        ({"runtime": "{session}/../../x.elf"}, "'runtime' '{session}/../../x.elf' is outside the session's folder {session}"),
        ({"modules": [{"name": "k", "elf": "/bin/sh", "kernels": ["k"], "sections": {".text": 1}}]},
         "'modules'[0] 'elf' '/bin/sh' is outside the session's folder {session}"),
        ({"modules": [{"name": "k", "elf": "{session}/001_k.elf", "kernels": ["k"],
                       "sections": {".text -readnow": 1}}]},
         "'modules'[0] section '.text -readnow' is malformed"),
        ({"folder": "/tmp"}, "'folder' '/tmp' must be a folder (not a link) of uid 0 with mode 0700, not uid 0 mode 1777"),
        ({"pid": "1; touch {marker}"}, "'pid' must be a positive integer, not '1; touch {marker}'"),
        ({"device": "x$(touch {marker})"}, "'device' 'x$(touch {marker})' is malformed"),
        ({"arch": "rv32imac; id"}, "'arch' 'rv32imac; id' is not one of: "),
        ({"transport": "ssh"}, "'transport' 'ssh' is not one of: host, openocd, gdb, serial"),
    ])
    def test_a_forged_record_is_refused_and_runs_nothing(self, tmp_path, session_dir, changes, reason):
        marker = tmp_path / "pwned"
        folder = tmp_path / "sessions"
        fill = lambda v: json.loads(json.dumps(v).replace("{marker}", str(marker)).replace("{session}", str(session_dir)))
        path = forge(folder, session_dir, **fill(changes))
        # --gdb names a real program that would leave the marker if it ran: only a refusal keeps it away
        out = cli("debug", "--run", "--gdb", "/bin/true", env_dir=folder)
        want = f"session record {path} is refused: {fill(reason)}"
        assert out.returncode == 1
        assert out.stderr.startswith("no matching utvm-host session is running")
        assert want in out.stderr.splitlines()[1]
        assert not marker.exists() and not Path(str(marker) + ":1").exists()
        info = cli("info", "--json", env_dir=folder)
        assert (info.returncode, json.loads(info.stdout)) == (0, [])
        assert path.exists()   # refused, not deleted: the user may want to look at it

    def test_a_record_in_another_session_folder_not_0700_is_refused(self, tmp_path, session_dir):
        folder = tmp_path / "sessions"
        path = forge(folder, session_dir)
        os.chmod(session_dir, 0o755)
        out = cli("debug", env_dir=folder)
        assert out.returncode == 1
        assert out.stderr.splitlines()[1] == (
            f"session record {path} is refused: 'folder' '{session_dir}' must be a folder (not a link) of uid 0 with "
            "mode 0700, not uid 0 mode 0755")

    def test_records_of_another_uid_are_ignored(self, tmp_path, session_dir):
        user = other_user()
        folder = tmp_path / "sessions"
        path = forge(folder, session_dir)
        os.chown(path, user.pw_uid, user.pw_gid)
        out = cli("info", env_dir=folder)
        assert (out.returncode, out.stderr) == (0, "")
        assert out.stdout.startswith("no utvm-host session is running")
        assert path.exists()

    def test_a_real_session_record_passes_the_checks(self, tmp_path, monkeypatch):
        monkeypatch.setenv("UTVM_HOST_RUNTIME_DIR", str(tmp_path / "sessions"))
        cfg = devices.host()
        with Session(cfg) as sess:
            mod = sess.load(build([EXAMPLES / "vadd.c"], cfg))
            out = cli("info", "--json", env_dir=tmp_path / "sessions")
            (rec,) = json.loads(out.stdout)
            assert (rec["id"], rec["pid"], rec["folder"], rec["gdb"]) == (sess._registry_id, os.getpid(),
                                                                          str(sess.workdir), None)
            assert rec["modules"][0]["elf"] == mod.image.elf_path and rec["modules"][0]["kernels"] == ["vadd"]
            dbg = cli("debug", env_dir=tmp_path / "sessions")
            assert (dbg.returncode, dbg.stderr) == (1, f"session {rec['id']} (host) has no gdb port: the host device "
                                                       "runs kernels in a host process\n")
