"""The side-effect check on every writing helper PQUIC registers, with small pluglets of our own
built by clang with the pinned recipe: an allowed write passes, a write the protoop's spec does
not name fails, a key that names no field fails, a key computed at run time is an `error`, and
so is a helper or a protoop the spec cannot judge."""

import re
import shutil

import pytest

import verifier_runners as vr
from pds_log.developer.build import build_plugin
from tests.support import HEADER

pytestmark = pytest.mark.slow  # one clang build of forty pluglets (seconds), shared by every test here

SIDE = vr.build_verifiers({"side_effects": {"runner": "side_effects"}})["side_effects"]
SAFETY = vr.build_verifiers({"safety": {"runner": "bytecode_safety"}})["safety"]

# helper -> (pointer the pluglet gets, a write through it with a constant key, a protoop that may
# write that field, one that may not, the field's name in the spec)
WRITERS = {
    "set_cnx": ("picoquic_cnx_t *", "set_cnx(cnx, AK_CNX_LATEST_PROGRESS_TIME, 0, 1)", "update_rtt",
                "connection_state_changed", "cnx.latest_progress_time"),
    "set_path": ("picoquic_path_t *", "set_path(p, AK_PATH_SMOOTHED_RTT, 0, 1)", "update_rtt", "parse_frame",
                 "path.smoothed_rtt"),
    "set_pkt_ctx": ("picoquic_packet_context_t *", "set_pkt_ctx(p, AK_PKTCTX_ACK_DELAY_LOCAL, 1)", "update_ack_delay",
                    "update_rtt", "pkt_ctx.ack_delay_local"),
    "set_pkt": ("picoquic_packet_t *", "set_pkt(p, AK_PKT_IS_PURE_ACK, 1)", "schedule_frames_on_path", "update_rtt",
                "pkt.is_pure_ack"),
    "set_sack_item": ("picoquic_sack_item_t *", "set_sack_item(p, AK_SACKITEM_START_RANGE, 1)",
                      "process_ack_of_ack_range", "update_rtt", "sack_item.start_range"),
    "set_cnxid": ("picoquic_connection_id_t *", "set_cnxid(p, AK_CNXID_LEN, 8)", "CNXID_PROTOOP", "update_rtt",
                  "cnxid.len"),
    "set_stream_head": ("picoquic_stream_head *", "set_stream_head(p, AK_STREAMHEAD_SENT_OFFSET, 1)",
                        "prepare_stream_frame", "update_rtt", "stream_head.sent_offset"),
    "set_crypto_context": ("picoquic_crypto_context_t *", "set_crypto_context(p, AK_CRYPTOCONTEXT_AEAD_ENCRYPTION, 0)",
                           "CRYPTO_PROTOOP", "update_rtt", "crypto_context.aead_encryption"),
    "set_ph": ("picoquic_packet_header *", "set_ph(p, AK_PH_OFFSET, 1)", "PH_PROTOOP", "update_rtt", "ph.offset"),
    "set_preq": ("plugin_req_pid_t *", "set_preq(p, AK_PIDREQ_REQUESTED, 1)", "schedule_frames_on_path", "update_rtt",
                 "preq.requested"),
}
METADATA = {
    "set_cnx_metadata": "set_cnx_metadata(cnx, 3, 1)",
    "set_path_metadata": "set_path_metadata(cnx, (picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, 0), 3, 1)",
    "set_pkt_ctx_metadata": "set_pkt_ctx_metadata(cnx, (picoquic_packet_context_t *) get_cnx(cnx, AK_CNX_INPUT, 0), 3, 1)",
    "set_pkt_metadata": "set_pkt_metadata(cnx, (picoquic_packet_t *) get_cnx(cnx, AK_CNX_INPUT, 0), 3, 1)",
}


def _pluglet(name: str, body: str, extra: str = "") -> str:
    return (f'#include "pquic.h"\n{extra}\nprotoop_arg_t pluglet_{name}(picoquic_cnx_t *cnx)\n{{\n'
            f"    {body};\n    return 0;\n}}\n")


def _sources() -> dict[str, str]:
    out = {}
    for helper, (ptype, call, *_rest) in WRITERS.items():
        pointer = f"    {ptype}p = ({ptype}) get_cnx(cnx, AK_CNX_INPUT, 0);\n" if not helper == "set_cnx" else ""
        out[f"{helper}_ok"] = _pluglet(f"{helper}_ok", pointer.strip() + "\n    " + call if pointer else call)
        unknown = re.sub(r"AK_\w+", "0x7ff", call)  # a key number getset.h does not define
        out[f"{helper}_unknown"] = _pluglet(f"{helper}_unknown", pointer.strip() + "\n    " + unknown if pointer else unknown)
        dynamic = re.sub(r"AK_\w+", "(access_key_t) get_cnx(cnx, AK_CNX_INPUT, 1)", call)
        out[f"{helper}_dynamic"] = _pluglet(f"{helper}_dynamic", pointer.strip() + "\n    " + dynamic if pointer else dynamic)
    for helper, call in METADATA.items():
        out[helper] = _pluglet(helper, call)
    out["set_state"] = _pluglet("set_state", "picoquic_set_cnx_state(cnx, 0)",
                                "extern void picoquic_set_cnx_state(picoquic_cnx_t *cnx, int state);")
    find = "extern void *picoquic_find_stream(picoquic_cnx_t *cnx, uint64_t stream_id, int create);"
    out["find_stream"] = _pluglet("find_stream", "picoquic_find_stream(cnx, 4, 0)", find)
    out["create_stream"] = _pluglet("create_stream", "picoquic_find_stream(cnx, 4, 1)", find)
    out["my_memset_call"] = _pluglet("my_memset_call", "my_memset(my_malloc(cnx, 16), 0, 16)")
    out["host_io"] = _pluglet("host_io", "close(3)", "extern int close(int fd);")
    # clang merges two calls that differ only in their constant key into one call reached with
    # either key (basic/schedule_frames_on_path.c in PQUIC's plugins does this)
    out["set_pkt_merged"] = _pluglet("set_pkt_merged", "picoquic_packet_t *p = (picoquic_packet_t *) get_cnx(cnx, "
                                     "AK_CNX_INPUT, 0);\n    if (get_cnx(cnx, AK_CNX_INPUT, 1)) {\n"
                                     "        get_cnx(cnx, AK_CNX_INPUT, 2); set_pkt(p, AK_PKT_LENGTH, 0);\n    } else {\n"
                                     "        get_cnx(cnx, AK_CNX_INPUT, 3); set_pkt(p, AK_PKT_IS_PURE_ACK, 0);\n    }")
    return out


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """Every pluglet above, built once by the pinned recipe: name -> object bytes."""
    root = tmp_path_factory.mktemp("writers") / "org.pds.tests.writers"
    root.mkdir()
    shutil.copy(HEADER, root / "pquic.h")
    sources = _sources()
    lines = ["org.pds.tests.writers"]
    for name, text in sources.items():
        (root / f"{name}.c").write_text(text)
        lines.append(f"update_rtt post {name}.o")
    (root / "writers.plugin").write_text("\n".join(lines) + "\n")
    build_plugin(root, name="org.pds.tests.writers")
    return {name: (root / f"{name}.o").read_bytes() for name in sources}


def judge(objects, pluglet: str, protoop: str, verifier=SIDE):
    """The verdict on a one-pluglet plugin attaching `pluglet` to `protoop`."""
    from pds_log.core.manifest import parse_plugin_manifest

    name = "org.pds.tests.one"
    files = {"one.plugin": f"{name}\n{protoop} post {pluglet}.o\n".encode(), f"{pluglet}.o": objects[pluglet]}
    return vr.run_verifier(verifier, vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name)))


@pytest.fixture(scope="module")
def granting(tmp_path_factory):
    """The shipped spec plus a protoop `test_op` that may write every field above: a PV's own
    spec may grant what ours does not."""
    import yaml

    doc = yaml.safe_load((vr.builtin.DATA / "pquic_side_effects.yaml").read_text())
    doc["protoops"]["test_op"] = {"why": "test", "writes": [w[4] for w in WRITERS.values()]}
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return vr.build_verifiers({"s": {"runner": "side_effects", "specs": str(path)}}, base_dir=path.parent)["s"]


@pytest.mark.parametrize("helper", sorted(WRITERS))
def test_allowed_write_passes(objects, granting, helper):
    field = WRITERS[helper][4]
    result = judge(objects, f"{helper}_ok", "test_op", granting)
    assert result.status == "pass", result.reason
    assert f"{helper}({field}) allowed in test_op" in result.log
    protoop = WRITERS[helper][2]
    if protoop in SIDE.spec.protoops:  # and the shipped spec grants it where the protoop's purpose needs it
        result = judge(objects, f"{helper}_ok", protoop)
        assert result.status == "pass", result.reason
        assert f"{helper}({field}) allowed in {protoop}" in result.log
    else:  # no PQUIC protoop is granted this field by our spec: the write fails wherever it is
        granted = [p for p, w in SIDE.spec.protoops.items() if field in w]
        assert not granted
        assert judge(objects, f"{helper}_ok", "update_rtt").status == "fail"


@pytest.mark.parametrize("helper", sorted(WRITERS))
def test_forbidden_write_fails(objects, helper):
    protoop = WRITERS[helper][3]
    result = judge(objects, f"{helper}_ok", protoop)
    assert result.status == "fail", result.reason
    assert f"{helper}({WRITERS[helper][4]}) is not allowed in protoop {protoop}" in result.reason


@pytest.mark.parametrize("helper", sorted(WRITERS))
def test_unknown_key_fails(objects, helper):
    result = judge(objects, f"{helper}_unknown", "update_rtt")
    assert result.status == "fail", result.reason
    assert f"{helper} with unknown key 0x7ff (r2)" in result.reason


@pytest.mark.parametrize("helper", sorted(WRITERS))
def test_non_constant_key_is_an_error(objects, helper):
    result = judge(objects, f"{helper}_dynamic", "update_rtt")
    assert result.status == "error", result.reason
    assert f"{helper} with a non-constant key (r2)" in result.reason


def test_a_call_reached_with_one_of_several_constant_keys_is_judged_for_each(objects):
    # the pinned recipe really merges the two set_pkt calls: one call, r2 = 5 on one path, 0xb on the other
    result = judge(objects, "set_pkt_merged", "schedule_frames_on_path")
    assert result.status == "pass", result.reason
    assert "set_pkt key r2 is one of 0x5, 0xb (merged call paths)" in result.log
    assert "set_pkt(pkt.length) allowed" in result.log and "set_pkt(pkt.is_pure_ack) allowed" in result.log
    result = judge(objects, "set_pkt_merged", "update_rtt")
    assert result.status == "fail" and "set_pkt(pkt.is_pure_ack) is not allowed in protoop update_rtt" in result.log
    assert "set_pkt(pkt.length) is not allowed in protoop update_rtt" in result.log


@pytest.mark.parametrize("helper", sorted(METADATA))
def test_metadata_setters_write_plugin_storage_anywhere(objects, helper):
    for protoop in ("update_rtt", "connection_state_changed", "parse_frame"):
        result = judge(objects, helper, protoop)
        assert result.status == "pass", result.reason
    register = "r2" if helper == "set_cnx_metadata" else "r3"
    assert f"{helper} writes the plugin's private metadata (index {register} = 3)" in result.log


def test_fixed_field_helper_is_judged_like_a_write(objects):
    assert judge(objects, "set_state", "connection_error").status == "pass"
    result = judge(objects, "set_state", "update_rtt")
    assert result.status == "fail" and "picoquic_set_cnx_state(cnx.state) is not allowed" in result.reason


def test_a_helper_that_writes_only_when_asked_is_judged_by_its_argument(objects):
    result = judge(objects, "find_stream", "update_rtt")
    assert result.status == "pass" and "picoquic_find_stream with r3 = 0 writes nothing" in result.log
    result = judge(objects, "create_stream", "update_rtt")
    assert result.status == "fail" and "picoquic_find_stream(cnx.first_stream) is not allowed" in result.reason


def test_plugin_memory_passes_and_host_io_is_granted_nowhere(objects):
    assert judge(objects, "my_memset_call", "parse_frame").status == "pass"
    result = judge(objects, "host_io", "update_rtt")
    assert result.status == "fail" and "close(host.io) is not allowed" in result.reason


def test_unknown_protoop_is_an_error_for_a_write(objects):
    result = judge(objects, "set_cnx_ok", "no_such_protoop")
    assert result.status == "error" and "which the spec does not know" in result.reason
    # a pluglet that writes nothing needs no spec
    assert judge(objects, "my_memset_call", "no_such_protoop").status == "pass"


def test_every_writing_helper_pquic_registers_is_exercised():
    helpers = set(vr.builtin.load_helpers("default", HEADER.parent))
    writers = {h for h in helpers if h.startswith("set_")}
    assert writers == set(WRITERS) | set(METADATA)
    assert set(SIDE.spec.keys) == set(WRITERS) and set(SIDE.spec.private) == set(METADATA)


def test_every_registered_helper_passes_the_allow_list_and_has_an_effect_class():
    helpers = set(vr.builtin.load_helpers("default", HEADER.parent))
    assert len(helpers) == 115
    judged = set(SIDE.spec.keys) | set(SIDE.spec.private) | set(SIDE.spec.classes)
    assert helpers == judged
    xbgp = set(vr.builtin.load_helpers("default", HEADER.parent, "xbgp"))
    assert "helper_protoop_printf" not in helpers | xbgp and "set_attr" in xbgp and "set_attr" not in helpers


def test_allow_list_follows_the_protocol(objects, tmp_path):
    """An xBGP helper in a PQUIC pluglet is refused (the lists are no longer shared)."""
    from pds_log.core.manifest import parse_plugin_manifest

    plugin = tmp_path / "org.pds.tests.xh"
    plugin.mkdir()
    shutil.copy(HEADER, plugin / "pquic.h")
    (plugin / "xh.c").write_text(_pluglet("xh", "next()", "extern int next(void);"))
    (plugin / "xh.plugin").write_text("org.pds.tests.xh\nupdate_rtt post xh.o\n")
    build_plugin(plugin, name="org.pds.tests.xh")
    files = {"xh.plugin": (plugin / "xh.plugin").read_bytes(), "xh.o": (plugin / "xh.o").read_bytes()}
    result = vr.run_verifier(SAFETY, vr.PluginInput("org.pds.tests.xh", "0" * 40, files,
                                                    parse_plugin_manifest(files, "org.pds.tests.xh")))
    assert result.status == "fail" and "call to next, which is not on the helper allow-list" in result.reason


def test_header_and_spec_use_one_numbering():
    """pquic.h (which every example vendors byte for byte) and the spec's keys agree: both are
    PQUIC's getset.h numbers, e.g. AK_CNX_STATE 0x0e, AK_PATH_CWIN 0x17, AK_PATH_SEND_MTU 0x15."""
    groups = {"CNX": "set_cnx", "PATH": "set_path", "PKTCTX": "set_pkt_ctx", "PKT": "set_pkt",
              "SACKITEM": "set_sack_item", "CNXID": "set_cnxid", "STREAMHEAD": "set_stream_head",
              "CRYPTOCONTEXT": "set_crypto_context", "PH": "set_ph", "PIDREQ": "set_preq"}
    prefixes = {"set_cnx": "cnx", "set_path": "path", "set_pkt_ctx": "pkt_ctx", "set_pkt": "pkt",
                "set_sack_item": "sack_item", "set_cnxid": "cnxid", "set_stream_head": "stream_head",
                "set_crypto_context": "crypto_context", "set_ph": "ph", "set_preq": "preq"}
    defines = re.findall(r"^#define AK_(" + "|".join(groups) + r")_(\w+) (0x[0-9a-f]+)$", HEADER.read_text(), re.M)
    seen = 0
    for group, field, value in defines:
        helper = groups[group]
        _, fields = SIDE.spec.keys[helper]
        assert fields.get(int(value, 16)) == f"{prefixes[helper]}.{field.lower()}", (group, field, value)
        seen += 1
    assert seen == sum(len(f) for _, f in SIDE.spec.keys.values())
    assert ("CNX", "STATE", "0x0e") in defines and ("PATH", "CWIN", "0x17") in defines
    assert ("PATH", "SEND_MTU", "0x15") in defines


@pytest.mark.parametrize("doc, message", [
    ({"keys": [], "protoops": {}}, "expected 'keys:"),
    ({"keys": {"set_cnx": {"key": "r9", "fields": {"cnx.a": 1}}}, "protoops": {}}, "register r1..r5"),
    ({"keys": {"set_cnx": {"key": "r2", "fields": {"cnx.a": 1, "cnx.b": 1}}}, "protoops": {}}, "names both"),
    ({"keys": {"set_cnx": {"key": "r2", "fields": {"cnx.a": 1 << 20}}}, "protoops": {}}, "16-bit"),
    ({"keys": {}, "private": ["set_cnx_metadata"], "protoops": {}}, "private: expected a mapping"),
    ({"keys": {}, "protoops": {"update_rtt": {"writes": "cnx.a"}}}, "expected a list of names"),
])
def test_a_bad_spec_is_refused_with_its_place(doc, message):
    from pds_log.core.errors import FormatError

    with pytest.raises(FormatError, match=message):
        vr.builtin.SideEffectSpec(doc)
