"""Device configurations: shape, the seed's idiom, and clear errors for invalid ones."""
from __future__ import annotations

import pytest

from utvm_host import ConfigError, devices
from utvm_host.config import SECTION_KINDS


class TestShapes:
    @pytest.mark.parametrize("make", [devices.host, lambda: devices.spike(isa="rv32imac"),
                                      lambda: devices.spike(isa="rv64imac"), lambda: devices.qemu("riscv32"),
                                      lambda: devices.qemu("riscv64"), lambda: devices.qemu("cortex-m3"),
                                      lambda: devices.qemu("cortex-m33")])
    def test_every_factory_gives_a_complete_valid_layout(self, make):
        cfg = make()
        regions = cfg.resolved_layout()
        assert sorted(r.name for r in regions) == sorted(SECTION_KINDS)
        for r in regions:
            assert r.size > 0 and r.start % r.align == 0
            assert any(m["start"] <= r.start and r.end <= m["start"] + m["size"] for m in cfg["memory"])

    def test_stack_sits_lowest_in_ram(self):
        for cfg in (devices.host(), devices.spike(isa="rv32imac")):
            spec = {r.name: r for r in cfg.resolved_layout()}
            assert spec["stack"].start == cfg["memory"][0]["start"]

    def test_abis(self):
        assert devices.spike(isa="rv32imac").abi["pointer_size"] == 4
        assert devices.spike(isa="rv64imac").abi["pointer_size"] == 8
        m3 = devices.qemu("cortex-m3")
        assert (m3.abi["elf_machine"], m3.abi["thumb"], m3.abi["pointer_size"]) == ("EM_ARM", True, 4)

    def test_cortex_m_code_in_flash_data_in_sram(self):
        cfg = devices.qemu("cortex-m3")
        spec = {r.name: r for r in cfg.resolved_layout()}
        assert spec["text"].start == 0x400 and spec["rodata"].start < 0x20000000
        assert spec["stack"].start == 0x20000000 and spec["data"].start == spec["stack"].end

    def test_seed_idiom_repacks_following_sections(self):
        cfg = devices.host()
        before = {r.name: r.start for r in cfg.resolved_layout()}
        cfg["mem_layout"]["text"]["size"] = 64 * 1024
        after = {r.name: r for r in cfg.resolved_layout()}
        assert after["text"].size == 64 * 1024
        assert after["rodata"].start == after["text"].end
        assert after["text"].start == before["text"]

    def test_copy_is_deep(self):
        cfg = devices.host()
        other = cfg.copy()
        other["mem_layout"]["text"]["size"] = 4096
        assert cfg["mem_layout"]["text"]["size"] == 8 * 1024 * 1024

    def test_board_configs_from_the_issue(self):
        cfg = devices.openocd(config_files=["board/stm32f7discovery.cfg"], arch="cortex-m7",
                              memory=[(0x20000000, 320 * 1024)])
        assert cfg["transport"]["config_files"] == ["board/stm32f7discovery.cfg"]
        assert "-mcpu=cortex-m7" in cfg["toolchain"]["cflags"] and cfg.abi["thumb"]
        regions = cfg.resolved_layout()
        assert all(0x20000000 <= r.start and r.end <= 0x20000000 + 320 * 1024 for r in regions)
        g = devices.gdb_remote("127.0.0.1", 3333, arch="rv32imac", memory=[(0x80000000, 0x100000)])
        assert g["transport"] == {"kind": "gdb", "launch": None, "server_addr": "127.0.0.1", "server_port": 3333}
        with pytest.raises(ConfigError) as e:
            devices.openocd(config_files=[], arch="cortex-m4", memory=[])
        assert str(e.value) == "a board needs its memory: pass memory=[(start, size), ...] (e.g. the SRAM)"

    def test_spike_attach_mode(self):
        cfg = devices.spike(isa="rv64imac", base_addr=0x80000000, server_addr="127.0.0.1", server_port=6666)
        assert cfg["transport"] == {"kind": "openocd", "launch": None, "isa": "rv64imac",
                                    "server_addr": "127.0.0.1", "server_port": 6666}


def _host_with(edit):
    cfg = devices.host()
    edit(cfg)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    return str(e.value)


class TestInvalid:
    def test_unknown_section(self):
        msg = _host_with(lambda c: c["mem_layout"].__setitem__("txt", {"size": 4}))
        assert msg == ("unknown section 'txt' in cfg['mem_layout']; known sections: text, rodata, data, bss, "
                       "args, heap, workspace, stack")

    def test_unknown_section_key(self):
        msg = _host_with(lambda c: c["mem_layout"]["text"].__setitem__("sise", 4))
        assert msg == "unknown key 'sise' in cfg['mem_layout']['text']; known keys: size, start, align"

    def test_unknown_top_level_key(self):
        msg = _host_with(lambda c: c.__setitem__("timeuot", 3))
        assert msg.startswith("unknown key 'timeuot' in the device config; known keys: name, arch, abi,")

    def test_zero_size(self):
        msg = _host_with(lambda c: c["mem_layout"]["heap"].__setitem__("size", 0))
        assert msg == "cfg['mem_layout']['heap']['size'] is 0; every section needs room: give it a size > 0"

    def test_negative_size(self):
        msg = _host_with(lambda c: c["mem_layout"]["heap"].__setitem__("size", -1))
        assert msg == "cfg['mem_layout']['heap']['size'] must be >= 0, got -1"

    def test_unaligned_start(self):
        msg = _host_with(lambda c: c["mem_layout"]["text"].__setitem__("start", 0x10100001))
        assert msg == ("cfg['mem_layout']['text']['start'] = 0x10100001 is not aligned to 16 bytes; "
                       "use 0x10100010")

    def test_overlap(self):
        msg = _host_with(lambda c: c["mem_layout"]["heap"].__setitem__("start", 0x10100000))
        assert msg == ("sections 'text' (0x10100000-0x10900000) and 'heap' (0x10100000-0x14100000) overlap; "
                       "change their 'start' or 'size'")

    def test_outside_memory(self):
        msg = _host_with(lambda c: c["mem_layout"]["heap"].__setitem__("size", 1 << 30))
        assert msg == ("section 'heap' (0x11f10000-0x51f10000, 1,073,741,824 bytes) lies outside the device's "
                       "memory (ram 0x10000000-0x18000000); shrink cfg['mem_layout'] sizes or move its start")

    def test_missing_section(self):
        msg = _host_with(lambda c: c["mem_layout"].pop("stack"))
        assert msg == "cfg['mem_layout'] lacks section 'stack'; add cfg['mem_layout']['stack'] = {'size': BYTES}"

    def test_not_an_integer(self):
        msg = _host_with(lambda c: c["mem_layout"]["text"].__setitem__("size", "64K"))
        assert msg == "cfg['mem_layout']['text']['size'] must be an integer, got '64K'"

    def test_overlapping_memory_regions(self):
        msg = _host_with(lambda c: c["memory"].append({"name": "ram2", "start": 0x10000100, "size": 16}))
        assert msg == "memory regions 'ram' (0x10000000-0x18000000) and 'ram2' (0x10000100-0x10000110) overlap"

    def test_bad_timeout(self):
        msg = _host_with(lambda c: c.__setitem__("timeout", 0))
        assert msg == "cfg['timeout'] must be a positive number of seconds, got 0"

    def test_bad_isa_and_machine(self):
        with pytest.raises(ConfigError) as e:
            devices.spike(isa="rv33i")
        assert str(e.value).startswith("unknown RISC-V isa 'rv33i'; known: rv32imac,")
        with pytest.raises(ConfigError) as e:
            devices.qemu("z80")
        assert str(e.value) == "unknown QEMU machine 'z80'; known: riscv32, riscv64, cortex-m3, cortex-m33"

    def test_config_error_is_also_a_value_error(self):
        assert issubclass(ConfigError, ValueError)

    def test_session_validates_edits(self):
        from utvm_host import Session
        cfg = devices.host()
        cfg["mem_layout"]["text"]["size"] = 0
        with pytest.raises(ConfigError) as e:
            Session(cfg).open()
        assert str(e.value) == "cfg['mem_layout']['text']['size'] is 0; every section needs room: give it a size > 0"
