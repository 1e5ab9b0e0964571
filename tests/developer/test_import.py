"""`pds dev import` on a tree laid out as PQUIC's (our own small files, not PQUIC's): headers
from the plugin's directory, from plugins/ and from picoquic/ through -I, fragments, Makefile
defines, comment and `-` lines, variants. The result builds with the default recipe, byte for
byte as the tree's own two-stage pipeline builds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pds_log.core.errors import PdsError
from pds_log.developer.build import build_plugin
from pds_log.developer.importer import import_plugin

PICOQUIC_H = """#ifndef PICOQUIC_H
#define PICOQUIC_H
#include <stdint.h>
#include "getset.h"
typedef uint64_t protoop_arg_t;
typedef struct st_picoquic_cnx_t picoquic_cnx_t;
#endif
"""
GETSET_H = """#ifndef GETSET_H
#define GETSET_H
#define AK_CNX_INPUT 0x00
#endif
"""
HELPERS_H = """#include "picoquic.h"
static inline uint64_t twice(uint64_t x) { return TWICE_FACTOR * x; }
"""
SOURCE = """#include <picoquic.h>
#include "../helpers.h"
#include "local.h"
extern protoop_arg_t get_cnx(picoquic_cnx_t *cnx, uint16_t ak, uint16_t param);
protoop_arg_t {fn}(picoquic_cnx_t *cnx)
{{
    return twice(get_cnx(cnx, AK_CNX_INPUT, LOCAL_PARAM));
}}
"""


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "pquic"
    (root / "picoquic").mkdir(parents=True)
    (root / "picoquic" / "picoquic.h").write_text(PICOQUIC_H)
    (root / "picoquic" / "getset.h").write_text(GETSET_H)
    plugin = root / "plugins" / "demo"
    plugin.mkdir(parents=True)
    (root / "plugins" / "helpers.h").write_text(HELPERS_H)
    (plugin / "local.h").write_text("#define LOCAL_PARAM 0\n")
    (plugin / "Makefile").write_text("CFLAGS=-I../../picoquic -DTWICE_FACTOR=2 -DDISABLE_PROTOOP_PRINTF -Werror\n")
    (plugin / "demo.plugin").write_text("# a comment before the name line\nbe.example.demo\nupdate_rtt post first.o\n"
                                        "-\ncommon.plugin include\n")
    (plugin / "common.plugin").write_text("# a fragment: no name line\nprocess_ack_range replace sub/second.o\n")
    (plugin / "first.c").write_text(SOURCE.format(fn="first"))
    (plugin / "sub").mkdir()
    (plugin / "sub" / "second.c").write_text(SOURCE.format(fn="second").replace('"../helpers.h"', '"../../helpers.h"')
                                             .replace('"local.h"', '"../local.h"'))
    (plugin / "unrelated.c").write_text("this is not copied\n")
    return root


def reference_object(tree: Path, rel_source: str) -> bytes:
    """The tree's own pipeline, run where the Makefile runs it."""
    plugin = tree / "plugins" / "demo"
    src = plugin / rel_source
    out = src.with_suffix(".ref.o")
    cmd = ["bash", "-o", "pipefail", "-c",
           f"clang -I{tree / 'picoquic'} -DTWICE_FACTOR=2 -DDISABLE_PROTOOP_PRINTF -O2 -fno-gnu-inline-asm "
           f"-emit-llvm -c {src.name} -o - | llc -march=bpf -filetype=obj -o {out}"]
    subprocess.run(cmd, cwd=src.parent, check=True)
    return out.read_bytes()


@pytest.mark.slow
def test_import_copies_rewrites_and_builds_byte_for_byte(tree, tmp_path):
    out = tmp_path / "out"
    report = import_plugin(tree / "plugins" / "demo" / "demo.plugin", out)
    assert report.kind == "pquic" and report.name == "be.example.demo"
    copied = {dst for _, dst in report.copied}
    assert copied == {"demo.plugin", "common.plugin", "first.c", "sub/second.c", "local.h",
                      "ext/plugins/helpers.h", "ext/picoquic/picoquic.h", "ext/picoquic/getset.h"}
    assert not (out / "unrelated.c").exists()
    first = (out / "first.c").read_text()
    assert '#include "ext/picoquic/picoquic.h"' in first and '#include "ext/plugins/helpers.h"' in first
    assert '#include "local.h"' in first  # still finds its copy: left as it was
    assert '#include "../ext/plugins/helpers.h"' in (out / "sub" / "second.c").read_text()
    assert '#include "../picoquic/picoquic.h"' in (out / "ext" / "plugins" / "helpers.h").read_text()
    assert "#include <stdint.h>" in (out / "ext" / "picoquic" / "picoquic.h").read_text()  # system: untouched
    assert report.defines == ["TWICE_FACTOR=2", "DISABLE_PROTOOP_PRINTF"]
    assert "-Werror" in report.skipped_flags
    # apart from include lines, the sources are unchanged
    original = (tree / "plugins" / "demo" / "first.c").read_text().splitlines()
    imported = first.splitlines()
    assert [a for a, b in zip(original, imported, strict=False) if a != b] == ['#include <picoquic.h>', '#include "../helpers.h"']
    assert build_plugin(out, name="be.example.demo") == ["first.o", "sub/second.o"]
    assert (out / "first.o").read_bytes() == reference_object(tree, "first.c")
    assert (out / "sub" / "second.o").read_bytes() == reference_object(tree, "sub/second.c")


def test_variants_get_their_own_name(tree, tmp_path):
    report = import_plugin(tree / "plugins" / "demo" / "demo.plugin", tmp_path / "v2", name="be.example.demo.v2")
    text = (tmp_path / "v2" / "demo.plugin").read_text()
    assert report.name == "be.example.demo.v2"
    assert text.startswith("# a comment before the name line\nbe.example.demo.v2\n")


def test_import_refuses_clearly(tree, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(PdsError, match="not empty"):
        import_plugin(tree / "plugins" / "demo" / "demo.plugin", tmp_path / "full")
    (tree / "plugins" / "demo" / "first.c").unlink()
    with pytest.raises(PdsError, match="no source"):
        import_plugin(tree / "plugins" / "demo" / "demo.plugin", tmp_path / "o2")
    with pytest.raises(PdsError, match="invalid plugin name"):
        import_plugin(tree / "plugins" / "demo" / "demo.plugin", tmp_path / "o3", name="nodots")


def test_cli_json(tree, tmp_path):
    out = subprocess.run([sys.executable, "-m", "pds_log", "dev", "import", str(tree / "plugins/demo/demo.plugin"),
                          "--out", str(tmp_path / "cli"), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "be.example.demo"
