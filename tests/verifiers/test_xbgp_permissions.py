"""side_effects on xBGP plugins: the manifest's per-code permissions against the attributes
libxbgp gives each helper (configs/xbgp_helpers.yaml). Small plugins written by us, built by
clang with the default recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import verifier_runners as vr
from pds_log.developer.build import build_plugin
from tests.support import plugin_input

HEADER = """typedef unsigned long uint64_t; typedef unsigned short uint16_t; typedef unsigned char uint8_t;
extern struct path_attribute *get_attr(void);
extern int write_to_buffer(uint8_t *buffer, uint64_t len);
extern int set_peer_info(unsigned int key, int type, void *value, int len);
extern int schedule_bgp_message(int type, void *msg, const char *peer);
extern int not_a_libxbgp_helper(int x);
extern uint64_t next(void);
extern uint64_t ebpf_ntohll(uint64_t x);
"""
SOURCES = {
    # writes pluglet bytes into the message being encoded: write + usr_ptr
    "encode.c": "uint64_t encode(void) { uint8_t b[4] = {1, 2, 3, 4}; return write_to_buffer(b, 4); }",
    # changes peer data, passing nothing of its own memory: write only
    "peer.c": "uint64_t peer(void) { return set_peer_info(1, 2, 0, 0); }",
    "reader.c": "uint64_t reader(void) { return get_attr() != 0 ? next() : ebpf_ntohll(7); }",
    "unknown.c": "uint64_t unknown(void) { return not_a_libxbgp_helper(3); }",
}
VERIFIER = vr.build_verifiers({"side_effects": {"runner": "side_effects"}})["side_effects"]


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("xbgp_perm")
    (root / "api.h").write_text(HEADER)
    for name, body in SOURCES.items():
        (root / name).write_text('#include "api.h"\n' + body + "\n")
    codes = {Path(n).stem: {"obj": Path(n).stem + ".o", "permissions": ["read", "write", "usr_ptr"]} for n in SOURCES}
    (root / "all.plugin").write_text(json.dumps({"name": "all", "obj_code_list": codes, "insertion_points": {
        "bgp_encode_attr": {"replace": {str(i): c for i, c in enumerate(codes)}}}}))
    build_plugin(root, name="org.example.all")
    return {Path(n).stem + ".o": (root / (Path(n).stem + ".o")).read_bytes() for n in SOURCES}


def check(tmp_path: Path, objects: dict[str, bytes], codes: dict, points: dict):
    plugin = tmp_path / "p"
    plugin.mkdir(parents=True)
    for spec in codes.values():
        (plugin / spec["obj"]).write_bytes(objects[spec["obj"]])
    (plugin / "p.plugin").write_text(json.dumps({"name": "p", "obj_code_list": codes, "insertion_points": points}))
    return vr.run_verifier(VERIFIER, plugin_input(plugin, "org.example.p"))


def replace(code: str) -> dict:
    return {"bgp_encode_attr": {"replace": {"0": code}}}


def test_writing_helper_without_write_fails_and_with_write_passes(tmp_path, objects):
    result = check(tmp_path / "a", objects, {"peer": {"obj": "peer.o", "permissions": ["read"]}}, replace("peer"))
    assert result.status == "fail"
    assert "code peer calls set_peer_info, which needs permission write; the manifest grants it read" in result.reason
    result = check(tmp_path / "b", objects, {"peer": {"obj": "peer.o", "permissions": ["write"]}}, replace("peer"))
    assert result.status == "pass", result.reason
    assert "set_peer_info needs write: granted" in result.log


def test_user_pointer_helper_needs_usr_ptr(tmp_path, objects):
    result = check(tmp_path / "a", objects, {"encode": {"obj": "encode.o", "permissions": ["read", "write"]}},
                   replace("encode"))
    assert result.status == "fail" and "write_to_buffer, which needs permission usr_ptr;" in result.reason
    result = check(tmp_path / "b", objects, {"encode": {"obj": "encode.o", "permissions": ["write", "usr_ptr"]}},
                   replace("encode"))
    assert result.status == "pass", result.reason


def test_no_permissions_at_all_and_per_code_judgement(tmp_path, objects):
    # one object, two codes: judged per code, with each code's own permissions
    codes = {"r1": {"obj": "reader.o", "permissions": ["read"]}, "r2": {"obj": "reader.o"}}
    result = check(tmp_path / "a", objects, codes, {"bgp_encode_attr": {"replace": {"0": "r1", "10": "r2"}}})
    assert result.status == "fail" and "code r2 calls get_attr, which needs permission read; the manifest grants it " \
                                       "none" in result.reason
    assert "code r1: get_attr needs read: granted" in result.log


def test_next_only_in_replace(tmp_path, objects):
    codes = {"r": {"obj": "reader.o", "permissions": ["read"]}}
    result = check(tmp_path / "a", objects, codes, {"bgp_med_decision": {"pre": {"0": "r"}}})
    assert result.status == "fail" and "calls next, which libxbgp registers only for replace pluglets, not pre" \
        in result.reason


def test_a_helper_libxbgp_does_not_register_is_an_error_not_a_pass(tmp_path, objects):
    codes = {"u": {"obj": "unknown.o", "permissions": ["read", "write", "usr_ptr"]}}
    result = check(tmp_path / "a", objects, codes, replace("u"))
    assert result.status == "error" and "not_a_libxbgp_helper" in result.reason


def test_a_code_whose_object_is_missing_fails_with_its_name(tmp_path, objects):
    """A hostile or broken plugin: its manifest names an object it does not ship."""
    plugin = tmp_path / "gone"
    plugin.mkdir()
    (plugin / "reader.o").write_bytes(objects["reader.o"])
    codes = {"r": {"obj": "reader.o", "permissions": ["read"]}, "g": {"obj": "gone.o", "permissions": ["read"]}}
    (plugin / "p.plugin").write_text(json.dumps({"name": "p", "obj_code_list": codes, "insertion_points": replace("r")}))
    result = vr.run_verifier(VERIFIER, plugin_input(plugin, "org.example.gone"))
    assert result.status == "fail" and "code g: its object gone.o is not in the plugin" in result.reason, result


def test_legacy_manifest_cannot_pass(tmp_path, objects):
    plugin = tmp_path / "legacy"
    plugin.mkdir()
    (plugin / "reader.o").write_bytes(objects["reader.o"])
    (plugin / "manifest.json").write_text(json.dumps(
        {"jit_all": True, "plugins": {"bgp_encode_attr": {"replace": {"0": {"path": "reader.o"}}}}}))
    result = vr.run_verifier(VERIFIER, plugin_input(plugin, "org.example.legacy"))
    assert result.status == "error" and "declares no per-code permissions" in result.reason


def test_config_is_what_libxbgp_registers():
    from verifier_runners.xbgp_permissions import load_helper_permissions

    helpers = load_helper_permissions()
    assert len(helpers) == 61  # 37 of ubpf_api.c:base_api_fun__ + 24 of xbgp_api_vars.h:api_funcs
    assert helpers["add_attr"]["requires"] == ("usr_ptr", "write")
    assert helpers["set_peer_info"]["requires"] == ("write",)
    assert helpers["get_attr"]["requires"] == ("read",)
    assert helpers["next"]["anchors"] == ("replace",) and helpers["ebpf_memcpy"]["requires"] == ()
    safety = set(vr.builtin.load_helpers("default", Path("."), "xbgp"))
    assert safety == set(helpers)


def test_a_strncmp_of_the_plugins_own_becomes_bcmp_and_safety_says_why(tmp_path):
    # The construct of xbgp_plugins' decision_process/alternate_old_new.c: the plugin defines its
    # own strncmp; clang at -O2 (host-target IR, as the default recipe and xBGP's Makefiles build)
    # still treats the name as the C library's and lowers a comparison with 0 to bcmp, a call
    # libxbgp does not register. The reason says the compiler emitted it.
    root = tmp_path / "cmp"
    root.mkdir()
    (root / "cmp.c").write_text(
        "typedef unsigned long size_t;\n"
        "inline __attribute__((always_inline)) int strncmp(const char *s1, const char *s2, size_t n) {\n"
        "    unsigned char u1, u2;\n"
        "    while (n > 0) {\n"
        "        u1 = (unsigned char) *s1++; u2 = (unsigned char) *s2++;\n"
        "        if (u1 != u2) return u1 - u2;\n"
        "        if (u1 == 0) return 0;\n"
        "        n -= 1;\n"
        "    }\n"
        "    return 0;\n}\n"
        "struct vrf_info { int vrf_id; char name[8]; };\n"
        "extern int get_vrf(struct vrf_info *info);\n"
        "unsigned long cmp(void) {\n"
        "    struct vrf_info info = {0};\n"
        "    if (get_vrf(&info) != 0) return 2;\n"
        "    return strncmp(info.name, \"red\", 3) != 0;\n}\n")
    (root / "cmp.plugin").write_text(json.dumps({"name": "cmp", "obj_code_list": {
        "c": {"obj": "cmp.o", "permissions": ["read"]}}, "insertion_points": replace("c")}))
    build_plugin(root, name="org.example.cmp")
    safety = vr.build_verifiers({"safety": {"runner": "bytecode_safety"}})["safety"]
    result = vr.run_verifier(safety, plugin_input(root, "org.example.cmp"))
    assert result.status == "fail", result.reason
    assert "call to bcmp, which is not on the helper allow-list (a C library function clang emits by itself" \
        in result.reason
    assert "-fno-builtin" in result.reason
