"""MISRA C:2012 (cppcheck's addon) over every device source, once per port configuration:
0 findings outside the deviations documented in device_stubs/MISRA.md."""
from __future__ import annotations

import re

import pytest

import checks
from conftest import require_tool


@pytest.fixture(autouse=True)
def _cppcheck():
    require_tool("cppcheck")


@pytest.mark.slow
@pytest.mark.parametrize("port", list(checks.PORTS))
def test_no_findings_outside_the_deviations(port):
    found = checks.misra(checks.PORTS[port])
    assert not found, "MISRA C:2012 findings (fix them, or document a deviation in device_stubs/MISRA.md):\n" + \
        "\n".join(str(f) for f in found)


def _device_sources():
    files = set()
    for port in checks.PORTS.values():
        files.update(port.files())
    files.update(checks.STUBS.glob("include/*.h"))
    return sorted(files)


def test_every_suppression_names_a_deviation_of_its_rule():
    table = checks.deviations()
    wrong = []
    for file, line, rule, ident in checks.suppressions(_device_sources()):
        if ident is None:
            wrong.append(f"{file}:{line}: a suppression of rule {rule} names no deviation ('; deviation ID')")
        elif ident not in table:
            wrong.append(f"{file}:{line}: deviation {ident} is not in device_stubs/MISRA.md")
        elif table[ident].rule != rule:
            wrong.append(f"{file}:{line}: deviation {ident} is for rule {table[ident].rule}, not {rule}")
    assert not wrong, "\n".join(wrong)


def test_deviations_are_reasoned_and_none_is_mandatory():
    table = checks.deviations()
    # named at the place it applies: by its suppression, or (where cppcheck 2.10 reports nothing to
    # suppress, e.g. rules it does not check) by a comment "deviation ID"
    text = "\n".join(f.read_text() for f in _device_sources())
    used = set(re.findall(r"deviation ([A-Z]\d+)", text))
    for d in table.values():
        assert checks.category(d.rule) != "Mandatory", f"{d.ident}: rule {d.rule} is Mandatory: it cannot be deviated"
        assert d.where, f"{d.ident}: 'where' is empty"
        for what, text in (("why it is needed", d.needed), ("why it is safe", d.safe)):
            assert len(text.split()) >= 5, f"{d.ident}: '{what}' says too little: {text!r}"
        assert d.ident in used, f"{d.ident} (rule {d.rule}) is documented but no code uses it: remove the row"


def test_the_check_finds_violations(tmp_path):
    """The check itself can fail: a file with known violations gives exactly those findings."""
    bad = tmp_path / "bad.c"
    bad.write_text("#include <stdint.h>\n"
                   "int32_t twice(int32_t x);\n"
                   "int32_t twice(int32_t x) {\n"
                   "  int32_t r = 0;\n"
                   "  if (x > 0) r = x * 2;\n"          # 15.6: a body without braces
                   "  if (x < -100) { return 0; }\n"    # 15.5: a second exit
                   "  return r;\n"
                   "}\n")
    rules = {f.rule for f in checks.misra(checks.PORTS["spike-rv32"], files=[bad])}
    assert {"15.6", "15.5"} <= rules
    bad.write_text(bad.read_text().replace("  if (x > 0) r = x * 2;\n",
                                           "  /* cppcheck-suppress misra-c2012-15.6 ; deviation X1 */\n"
                                           "  if (x > 0) r = x * 2;\n"))
    rules = {f.rule for f in checks.misra(checks.PORTS["spike-rv32"], files=[bad])}
    assert "15.6" not in rules and "15.5" in rules
