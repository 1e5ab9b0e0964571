"""`pds dev import` on a tree laid out as xbgp_plugins' (our own small files, not xBGP's): a
`<x>.plugin` JSON beside its sources, headers from the tree's shared API directory and a header
from outside the tree (libxbgp's include/, through -I). The manifest is copied byte for byte,
includes that leave the plugin directory are rewritten, nothing else changes, variants that
share one xBGP name get PDS names of their own; the result builds with the default recipe,
byte for byte as xbgp_plugins' Makefile pipeline builds it, and passes the PV's checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pds_log.core.errors import PdsError
from pds_log.developer.build import build_plugin
from pds_log.developer.importer import import_plugin
from tests.support import PDS, plugin_input

API_H = """#ifndef API_H
#define API_H
#include <stdint.h>
#include "common.h"
#include <tools_api.h>
extern struct path_attribute *get_attr_from_code(uint8_t code);
extern int add_attr(uint8_t code, uint8_t flags, uint16_t length, uint8_t *value);
extern uint64_t next(void);
#endif
"""
COMMON_H = "#define ATTR_MED 4\nstruct path_attribute { uint8_t flags; uint8_t code; uint16_t len; };\n"
TOOLS_H = "#define PLUGIN_FILTER_ACCEPT 1\n"
SET_MED = """#include "../api/api.h"
#include "local.h"

uint64_t set_med(void)
{
    uint8_t med[4] = {0, 0, 0, MED};
    if (get_attr_from_code(ATTR_MED) == 0)
        add_attr(ATTR_MED, 0x80, 4, med);
    return PLUGIN_FILTER_ACCEPT;
}
"""
LOOK = """#include "../api/api.h"

uint64_t look(void)
{
    return get_attr_from_code(ATTR_MED) != 0 ? next() : PLUGIN_FILTER_ACCEPT;
}
"""
MANIFEST = {"name": "med_tools", "jit_all": True, "extra_mem": 512, "shared_mem": 0,
            "obj_code_list": {"set_med": {"obj": "set_med.o", "permissions": ["read", "write", "usr_ptr"]},
                              "look": {"obj": "look.o", "permissions": ["read"]}},
            "insertion_points": {"bgp_pre_inbound_filter": {"replace": {"0": "set_med", "10": "look"}}}}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "xbgp_plugins"
    (root / "api").mkdir(parents=True)
    (root / "Makefile_plugins").write_text("CFLAGS += -O2\n")
    (root / "api" / "api.h").write_text(API_H)
    (root / "api" / "common.h").write_text(COMMON_H)
    lib = tmp_path / "libxbgp" / "include"
    lib.mkdir(parents=True)
    (lib / "tools_api.h").write_text(TOOLS_H)
    plugin = root / "med"
    plugin.mkdir()
    (plugin / "Makefile").write_text("CFLAGS += -O2\nCFLAGS += -Wall\nCFLAGS += -fno-stack-protector\n")
    (plugin / "local.h").write_text("#define MED 42\n")
    (plugin / "set_med.c").write_text(SET_MED)
    (plugin / "look.c").write_text(LOOK)
    # indented as the developer wrote it: the import must not re-encode it
    (plugin / "med.plugin").write_text(json.dumps(MANIFEST, indent=3) + "\n")
    (plugin / "variant.plugin").write_text(json.dumps({**MANIFEST, "jit_all": False}, indent=3) + "\n")
    (plugin / "unrelated.c").write_text("not copied\n")
    return root


def makefile_object(source: Path, include: Path) -> bytes:
    """xbgp_plugins' pipeline (Makefile_plugins): clang $(CFLAGS) -emit-llvm, then llc -O2."""
    bc, out = source.with_suffix(".bc"), source.with_suffix(".ref.o")
    subprocess.run(["clang", f"-I{include}", "-O2", "-Wall", "-fno-stack-protector", "-emit-llvm", "-c",
                    source.name, "-o", str(bc)], cwd=source.parent, check=True)
    subprocess.run(["llc", "-O2", "-march=bpf", "-filetype=obj", "-o", str(out), str(bc)], check=True)
    return out.read_bytes()


@pytest.mark.slow
def test_xbgp_import_copies_rewrites_and_builds_byte_for_byte(tree, tmp_path):
    lib = tmp_path / "libxbgp" / "include"
    out = tmp_path / "out"
    report = import_plugin(tree / "med" / "med.plugin", out, name="org.example.med", include_dirs=[str(lib)])
    assert report.kind == "xbgp" and report.name == "org.example.med"
    assert {dst for _, dst in report.copied} == {"med.plugin", "set_med.c", "look.c", "local.h",
                                                 "ext/api/api.h", "ext/api/common.h", "ext/include/tools_api.h"}
    assert not (out / "unrelated.c").exists() and not (out / "variant.plugin").exists()
    assert (out / "med.plugin").read_bytes() == (tree / "med" / "med.plugin").read_bytes()
    set_med = (out / "set_med.c").read_text()
    original = (tree / "med" / "set_med.c").read_text().splitlines()
    assert [a for a, b in zip(original, set_med.splitlines(), strict=False) if a != b] == ['#include "../api/api.h"']
    assert '#include "ext/api/api.h"' in set_med and '#include "local.h"' in set_med
    assert '#include "../include/tools_api.h"' in (out / "ext" / "api" / "api.h").read_text()
    assert any("set_med.c:1" in r and "ext/api/api.h" in r for r in report.rewritten)
    assert "#include <stdint.h>" in (out / "ext" / "api" / "api.h").read_text()  # system: untouched
    assert "-fno-stack-protector" in report.skipped_flags and not report.defines
    assert build_plugin(out, name="org.example.med") == ["look.o", "set_med.o"]
    assert (out / "set_med.o").read_bytes() == makefile_object(tree / "med" / "set_med.c", lib)
    assert (out / "look.o").read_bytes() == makefile_object(tree / "med" / "look.c", lib)
    import verifier_runners as vr

    verifiers = vr.build_verifiers({"safety": {"runner": "bytecode_safety"},
                                    "side_effects": {"runner": "side_effects"}})
    for verifier in verifiers.values():
        result = vr.run_verifier(verifier, plugin_input(out, "org.example.med"))
        assert result.status == "pass", (verifier.name, result.reason, result.log)


def test_xbgp_variant_gets_its_own_pds_name_and_keeps_xbgp_name(tree, tmp_path):
    lib = tmp_path / "libxbgp" / "include"
    first = import_plugin(tree / "med" / "med.plugin", tmp_path / "a", name="org.example.med",
                          include_dirs=[str(lib)])
    second = import_plugin(tree / "med" / "variant.plugin", tmp_path / "b", name="org.example.med.nojit",
                           include_dirs=[str(lib)])
    assert (first.name, second.name) == ("org.example.med", "org.example.med.nojit")
    assert json.loads((tmp_path / "b" / "variant.plugin").read_text())["name"] == "med_tools"
    assert plugin_input(tmp_path / "b", "org.example.med.nojit").manifest.options["jit_all"] is False


def test_xbgp_import_refuses_clearly(tree, tmp_path):
    with pytest.raises(PdsError, match="not a PDS plugin name.*--name"):
        import_plugin(tree / "med" / "med.plugin", tmp_path / "o1")
    bad = {**MANIFEST, "insertion_points": {"bgp_pre_inbound_filter": {"replace": {"0": "nosuch"}}}}
    (tree / "med" / "med.plugin").write_text(json.dumps(bad))
    with pytest.raises(PdsError, match=r"insertion_points\.bgp_pre_inbound_filter\.replace\.0: code 'nosuch'"):
        import_plugin(tree / "med" / "med.plugin", tmp_path / "o2", name="org.example.med")
    assert not (tmp_path / "o2").exists()  # refused before anything was copied
    (tree / "med" / "med.plugin").write_text(json.dumps(MANIFEST))
    (tree / "med" / "look.c").unlink()
    with pytest.raises(PdsError, match="no source"):
        import_plugin(tree / "med" / "med.plugin", tmp_path / "o3", name="org.example.med")


@pytest.mark.slow
def test_xbgp_import_cli(tree, tmp_path):
    lib = tmp_path / "libxbgp" / "include"
    out = subprocess.run([*PDS, "dev", "import", str(tree / "med" / "med.plugin"), "--out", str(tmp_path / "cli"),
                          "--name", "org.example.med", "-I", str(lib), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["kind"] == "xbgp" and {"from": "med/med.plugin", "to": "med.plugin"} in report["copied"]
    refused = subprocess.run([*PDS, "dev", "import", str(tree / "med" / "med.plugin"), "--out",
                              str(tmp_path / "cli2")], capture_output=True, text=True)
    assert refused.returncode != 0 and "--name" in refused.stderr and "Traceback" not in refused.stderr
