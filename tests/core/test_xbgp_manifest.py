"""The xBGP `<x>.plugin` JSON manifest, read as libxbgp's loader (static_injection.c) reads it,
strictly: every refusal names the key. Manifests written by us in the real format."""

from __future__ import annotations

import copy
import json

import pytest

from pds_log.core.errors import FormatError
from pds_log.core.manifest import find_manifest_path, parse_manifest_at, parse_plugin_manifest

NAME = "org.example.bgp"
DOC = {"name": "med_tools", "jit_all": True, "extra_mem": 4096, "shared_mem": 8192,
       "obj_code_list": {"decode": {"obj": "decode.o", "permissions": ["read", "write", "usr_ptr"]},
                         "before": {"obj": "look.o", "jit": False, "permissions": ["READ"]},
                         "after": {"obj": "sub/look2.o"}},
       "insertion_points": {"bgp_decode_attr": {"replace": {"0": "decode", "10": "decode"}},
                            "bgp_med_decision": {"pre": {"5": "before"}, "post": {"0": "after"}}}}


def parse(doc) -> object:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_plugin_manifest({"tools.plugin": data, "README": b"x"}, NAME)


def test_replace_pre_post_codes_and_permissions():
    m = parse(DOC)
    assert m.kind == "xbgp" and m.path == "tools.plugin" and m.name == NAME
    assert m.pluglets == ("decode.o", "look.o", "sub/look2.o")
    assert [(h.point, h.anchor, h.seq, h.code) for h in m.hooks] == [
        ("bgp_decode_attr", "replace", 0, "decode"), ("bgp_decode_attr", "replace", 10, "decode"),
        ("bgp_med_decision", "pre", 5, "before"), ("bgp_med_decision", "post", 0, "after")]
    codes = m.options["codes"]
    assert codes["decode"]["permissions"] == ("read", "usr_ptr", "write")
    assert codes["before"]["permissions"] == ("read",)  # libxbgp compares case-insensitively
    assert codes["after"]["permissions"] == ()  # no key: no permission (libxbgp's default 0)
    assert (codes["before"]["jit"], codes["after"]["jit"]) == (False, True)  # jit defaults to jit_all
    assert m.options["xbgp_name"] == "med_tools" and m.options["extra_mem"] == 4096


def test_libxbgp_defaults_job_plugin_and_unattached_codes():
    doc = {"name": "job", "obj_code_list": {"walk": {"obj": "walk.o", "permissions": ["read"]},
                                            "spare": {"obj": "spare.o"}},
           "job_plugin": {"schedule": 15}}
    m = parse(doc)
    assert (m.options["jit_all"], m.options["extra_mem"], m.options["shared_mem"]) == (False, 4096, 0)
    assert [(h.point, h.anchor, h.seq, h.code) for h in m.hooks] == [
        ("job_plugins", "replace", 0, "walk"), ("job_plugins", "replace", 10, "spare")]
    doc = copy.deepcopy(DOC)
    doc["obj_code_list"]["unused"] = {"obj": "unused.o"}
    m = parse(doc)  # loaded by nothing, but libxbgp resolves its object's path: one of the files
    assert "unused.o" in m.pluglets and m.options["unattached"] == ("unused.o",)


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return mutate


@pytest.mark.parametrize("mutate, message", [
    (_set(["name"], KeyError), r"tools.plugin: 'name' missing"),
    (_set(["name"], 7), r"'name' must be a non-empty string"),
    (_set(["name"], "x" * 255), r"'name' must be a non-empty string of at most 254 bytes"),
    (_set(["jit_all"], 1), r"'jit_all' must be true or false"),
    (_set(["extra_mem"], -1), r"'extra_mem' must be an integer in 0\.\.268435456"),
    (_set(["shared_mem"], 268435457), r"'shared_mem' must be an integer"),
    (_set(["memory_mgmt"], "slab"), r"'memory_mgmt' must be one of bump, michelfra"),
    (_set(["obj_dir"], "/usr/lib"), r"'obj_dir' is not supported"),
    (_set(["jobs_plugins"], {}), r"unknown top-level key\(s\) 'jobs_plugins'"),
    (_set(["obj_code_list"], KeyError), r"'obj_code_list' missing"),
    (_set(["obj_code_list"], {}), r"'obj_code_list' must be a non-empty object"),
    (_set(["obj_code_list", "decode", "obj"], KeyError), r"obj_code_list\.decode: 'obj' missing"),
    (_set(["obj_code_list", "decode", "obj"], "decode.c"), r"obj_code_list\.decode\.obj: .*must be an object file"),
    (_set(["obj_code_list", "decode", "obj"], "../decode.o"), r"obj_code_list\.decode\.obj: unsafe path"),
    (_set(["obj_code_list", "decode", "permission"], ["read"]),
     r"obj_code_list\.decode: unknown key\(s\) 'permission' \(did you mean 'permissions'\?\)"),
    (_set(["obj_code_list", "decode", "permissions"], ["read", "root"]),
     r"obj_code_list\.decode\.permissions\[1\]: unknown permission 'root'"),
    (_set(["obj_code_list", "decode", "permissions"], "read"), r"obj_code_list\.decode\.permissions: must be a list"),
    (_set(["obj_code_list", "decode", "permissions"], ["read", "Read"]), r"permissions: duplicate"),
    (_set(["obj_code_list", "decode", "jit"], "yes"), r"obj_code_list\.decode: 'jit' must be true or false"),
    (_set(["insertion_points"], KeyError), r"needs 'insertion_points' or 'job_plugin'"),
    (_set(["job_plugin"], {"schedule": 1}), r"'insertion_points' and 'job_plugin' exclude each other"),
    (_set(["insertion_points", "bgp_decode_attr", "replace", "0"], "nosuch"),
     r"insertion_points\.bgp_decode_attr\.replace\.0: code 'nosuch' is not in obj_code_list"),
    (_set(["insertion_points", "bgp_decode_attr", "replace", "-1"], "decode"),
     r"insertion_points\.bgp_decode_attr\.replace\.-1: sequence must be a decimal number"),
    (_set(["insertion_points", "bgp_decode_attr", "replace", "007"], "decode"), r"replace\.007: sequence"),
    (_set(["insertion_points", "bgp_decode_attr", "replaceX"], {"0": "decode"}),
     r"insertion_points\.bgp_decode_attr\.replaceX: anchor must be one of replace, pre, post"),
    (_set(["insertion_points", "bgp_decode_attr", "replace"], {}), r"bgp_decode_attr\.replace: must be a non-empty"),
    (_set(["insertion_points", "bgp_decode_attr", "replace", "0"], {"path": "decode.o"}),
     r"replace\.0: must name a code of obj_code_list"),
    (_set(["insertion_points", "x" * 51], {"replace": {"0": "decode"}}), r"at most 50 characters"),
    (_set(["insertion_points", "bgp_decode_attr"], []), r"insertion_points\.bgp_decode_attr: must be a non-empty"),
])
def test_bad_manifests_are_refused_naming_the_key(mutate, message):
    doc = copy.deepcopy(DOC)
    mutate(doc)
    with pytest.raises(FormatError, match=message):
        parse(doc)


def test_bad_json_and_limits_name_the_file():
    with pytest.raises(FormatError, match=r"tools.plugin:1:"):
        parse(b'{"name": ')
    with pytest.raises(FormatError, match=r"duplicate JSON key 'name'"):
        parse(b'{"name": "a", "name": "b"}')
    with pytest.raises(FormatError, match=r"tools.plugin: 'name' missing"):
        parse(b" \n{}")
    with pytest.raises(FormatError, match="tools.plugin: integer of 5000 digits|tools.plugin: invalid JSON"):
        parse(b'{"name": "a", "extra_mem": ' + b"9" * 5000 + b"}")
    with pytest.raises(FormatError, match="tools.plugin: JSON nested too deeply|nested deeper"):
        parse(b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_which_file_is_the_manifest():
    one = json.dumps(DOC).encode()
    assert find_manifest_path({"rr.plugin": one, "decode.o": b""}, NAME) == "rr.plugin"
    with pytest.raises(FormatError, match="more than one manifest: rr.plugin, rr_both.plugin"):
        find_manifest_path({"rr.plugin": one, "rr_both.plugin": one}, NAME)


def test_legacy_manifest_json_is_still_read_without_permissions():
    legacy = {"jit_all": True, "plugins": {"bgp_pre_outbound_filter": {"replace": {"0": {"path": "f.o"}}}}}
    m = parse_plugin_manifest({"manifest.json": json.dumps(legacy).encode()}, NAME)
    assert m.kind == "xbgp" and m.pluglets == ("f.o",) and m.options["legacy"] and "codes" not in m.options
    assert parse_manifest_at({"manifest.json": json.dumps(legacy).encode()}, "manifest.json", NAME).pluglets == ("f.o",)


def test_mutated_manifests_parse_or_raise_format_error_only():
    """Random structural mutations of a valid manifest: a Manifest or a FormatError, nothing else."""
    import random

    rng = random.Random(12)
    values = [None, True, 0, -1, 2**70, "", "x.o", "../x.o", [], ["read"], {}, {"0": "decode"}, 1.5, "\ud7ff"]
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(400):
        doc = copy.deepcopy(DOC)
        for _ in range(rng.randint(1, 3)):
            target, keys = doc, []
            while isinstance(target, dict) and target and rng.random() < 0.7:
                key = rng.choice(sorted(target))
                keys.append(key)
                if not isinstance(target[key], dict):
                    break
                target = target[key]
            if not keys:
                continue
            parent = doc
            for key in keys[:-1]:
                parent = parent[key]
            if rng.random() < 0.3:
                del parent[keys[-1]]
            else:
                parent[keys[-1]] = rng.choice(values)
        try:
            parse(doc)
            outcomes["ok"] += 1
        except FormatError as exc:
            assert str(exc).startswith("tools.plugin"), exc
            outcomes["refused"] += 1
    assert outcomes["ok"] and outcomes["refused"]


def test_a_misspelt_job_plugin_says_what_libxbgp_would_do():
    # xbgp_plugins' rib_walk.plugin writes 'jobs_plugins' for 'job_plugin': libxbgp ignores the
    # key, then finds neither insertion_points nor job_plugin and refuses the plugin.
    doc = copy.deepcopy(DOC)
    doc["jobs_plugins"] = doc.pop("insertion_points")
    with pytest.raises(FormatError, match=r"'jobs_plugins' \(did you mean 'job_plugin'\?\).*libxbgp ignores a key "
                                          r"it does not know.*finds neither 'insertion_points' nor 'job_plugin' and "
                                          r"does not load this plugin"):
        parse(doc)
