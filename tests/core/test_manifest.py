import json

import pytest

from pds_log.core.errors import FormatError
from pds_log.core.manifest import check_pluglets, ebpf_object_problem, parse_plugin_manifest

ELF_BPF = b"\x7fELF\x02\x01\x01" + bytes(9) + (1).to_bytes(2, "little") + (247).to_bytes(2, "little") + bytes(44)


def test_pquic_manifest_with_include_and_params():
    files = {
        "main.plugin": b"be.ex.fec dynamic_memory negotiate\nupdate_rtt post rtt.o\n"
                       b"parse_frame param 0x28 replace parse.o\nfrag.plugin include\n\n",
        "frag.plugin": b"process_frame param 0x28 replace proc.o\nnoparam extern ext.o\n",
    }
    m = parse_plugin_manifest(files, "be.ex.fec")
    assert m.kind == "pquic" and m.path == "main.plugin" and m.flags == ("dynamic_memory", "negotiate")
    assert m.pluglets == ("ext.o", "parse.o", "proc.o", "rtt.o")
    assert m.fragments == ("frag.plugin",)
    assert {h.param for h in m.hooks} == {None, 0x28}


@pytest.mark.parametrize("text, extra, message", [
    ("be.ex.p badflag\nx post a.o\n", {}, "p.plugin:1: unknown flag 'badflag'"),
    ("be.ex.p\nx middle a.o\n", {}, "p.plugin:2: anchor 'middle'"),
    ("be.ex.p\nx post a.c\n", {}, "must be an object file"),
    ("be.ex.p\nx post ../a.o\n", {}, "unsafe path"),
    ("be.ex.p\nx post /a.o\n", {}, "absolute path"),
    ("be.ex.p\nx param 28 post a.o\n", {}, "not hex"),
    ("be.ex.p\nx  post a.o\n", {}, "single spaces"),
    ("be.ex.p\nx post a.o extra\n", {}, "expected 'protoop"),
    ("be.ex.p\n", {}, "names no pluglet"),
    ("be.ex.p\ngone.plugin include\n", {}, "included file gone.plugin is missing"),
    ("be.ex.p\nf.plugin include\n", {"f.plugin": "p.plugin include\n"}, "include cycle"),
    ("be.ex.p\nx replace a.o\nx replace b.o\n", {}, "second 'replace' for x"),
    ("be.ex.p\n9x post a.o\n", {}, "invalid protoop name"),
])
def test_pquic_errors_name_file_and_line(text, extra, message):
    files = {"p.plugin": text.encode(), **{k: v.encode() for k, v in extra.items()}}
    with pytest.raises(FormatError, match=message):
        parse_plugin_manifest(files, "be.ex.p")


def test_pquic_name_must_match_directory_and_manifest_must_exist():
    with pytest.raises(FormatError, match="no manifest"):
        parse_plugin_manifest({"p.plugin": b"be.ex.other\nx post a.o\n"}, "be.ex.p")
    with pytest.raises(FormatError, match="more than one manifest"):
        parse_plugin_manifest({"a.plugin": b"be.ex.p\nx post a.o\n", "manifest.json": b"{}"}, "be.ex.p")


XBGP = {"jit_all": True, "plugins": {"bgp_decode_message": {"extra_mem": 64, "shared_mem": 0,
                                                            "replace": {"0": {"path": "decode.o"}},
                                                            "pre": {"1": {"path": "pre.o"}}}}}


def test_xbgp_manifest():
    m = parse_plugin_manifest({"manifest.json": json.dumps(XBGP).encode()}, "org.x.bgp")
    assert m.kind == "xbgp" and m.pluglets == ("decode.o", "pre.o")
    assert m.options["bgp_decode_message.extra_mem"] == 64


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("jit_all"), "'jit_all' must be true or false"),
    (lambda d: d.update(extra=1), "unknown top-level key"),
    (lambda d: d["plugins"]["bgp_decode_message"].update(extra_mem=-1), "extra_mem: must be an integer"),
    (lambda d: d["plugins"]["bgp_decode_message"].update(replace={"x": {"path": "a.o"}}), "decimal"),
    (lambda d: d["plugins"]["bgp_decode_message"].update(replace={"0": {"path": "a.o", "x": 1}}), "exactly"),
    (lambda d: d["plugins"]["bgp_decode_message"].update(post={}), "non-empty"),
    (lambda d: d.update(plugins={}), "non-empty object"),
])
def test_xbgp_errors(mutate, message):
    doc = json.loads(json.dumps(XBGP))
    mutate(doc)
    with pytest.raises(FormatError, match=message):
        parse_plugin_manifest({"manifest.json": json.dumps(doc).encode()}, "org.x.bgp")


def test_xbgp_duplicate_keys_and_bad_json():
    with pytest.raises(FormatError, match="duplicate JSON key"):
        parse_plugin_manifest({"manifest.json": b'{"jit_all":true,"jit_all":false}'}, "org.x.bgp")
    with pytest.raises(FormatError, match="manifest.json:1:"):
        parse_plugin_manifest({"manifest.json": b'{"jit_all":'}, "org.x.bgp")


def test_pluglet_checks():
    files = {"p.plugin": b"be.ex.p\nx post a.o\ny post b.o\nz post c.o\n", "a.o": ELF_BPF, "b.o": b"\x7fELF junk"}
    m = parse_plugin_manifest(files, "be.ex.p")
    problems = check_pluglets(m, files, prefix="plugins/be.ex.p/")
    assert problems == ["plugins/be.ex.p/b.o: not an eBPF object: too short to be an ELF object",
                        "plugins/be.ex.p/c.o: missing pluglet named at plugins/be.ex.p/p.plugin:4"]
    x86 = bytearray(ELF_BPF)
    x86[18] = 62
    assert "not eBPF" in ebpf_object_problem(bytes(x86))


def test_pquic_comments_and_the_pre_negotiation_marker_as_pquic_reads_them():
    """picoquic/plugin.c skips blank and '#' lines and ends the pre-negotiation part at a line
    starting with '-' (as qlog.plugin and multipath_cond.plugin use them)."""
    from pds_log.core.manifest import find_manifest_path, parse_pquic

    files = {"m.plugin": b"# header comment\n\nbe.example.m negotiate\n# TODO a comment\n"
                         b"write_transport_parameter param 0x40 replace a.o\n-\nfrag.plugin include\n",
             "frag.plugin": b"# fragment comment\nparse_frame param 0x0e post b.o\n"}
    assert find_manifest_path(files, "be.example.m") == "m.plugin"
    manifest = parse_pquic(files, "m.plugin", "be.example.m")
    assert [h.pluglet for h in manifest.hooks] == ["a.o", "b.o"]
    assert manifest.pre_negotiation == 1 and manifest.flags == ("negotiate",)
    assert parse_pquic({"m.plugin": b"be.example.m\nx replace a.o\n"}, "m.plugin").pre_negotiation is None
