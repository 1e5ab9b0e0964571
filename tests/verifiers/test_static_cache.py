"""The static verifier's per-TU cppcheck cache (content-addressed by tool, argv and include
closure) and its reading of TUs cppcheck's own preprocessor refuses. Real cppcheck and clang in
the sandbox, on our own small plugins."""

import hashlib
import json

import pytest

import verifier_runners as vr
from pds_log.core.manifest import parse_plugin_manifest
from tests.support import EXAMPLES, HEADER, build_example, plugin_input
from verifier_runners.static_cache import TuCache, Uncacheable, include_closure, tu_key


def static(cache_dir=None, **options):
    verifier = vr.build_verifiers({"static": {"runner": "static_analysis", **options}})["static"]
    if cache_dir is not None:
        verifier.use_cache_dir(cache_dir)
    return verifier


def plugin_of(files: dict[str, str], name: str = "org.pds.tests.static"):
    data = {path: text.encode() for path, text in files.items()}
    data.setdefault("pquic.h", HEADER.read_bytes())
    return vr.PluginInput(name, "0" * 40, data, parse_plugin_manifest(data, name))


def same(a, b):
    return (a.status, a.reason, a.log) == (b.status, b.reason, b.log)


@pytest.fixture(scope="module")
def helper_bug(tmp_path_factory):
    return plugin_input(build_example("org.pds.examples.helper_bug", tmp_path_factory.mktemp("cache")))


def entries(cache_dir):
    return sorted(cache_dir.rglob("*.json"))


@pytest.mark.slow
def test_a_hit_gives_the_same_verdict_and_log_bytes(helper_bug, tmp_path):
    cold = static(tmp_path)
    first = vr.run_verifier(cold, helper_bug)
    assert first.status == "fail" and "helpers.h:22" in first.reason, first.reason
    assert cold.cache_stats["miss"] == 2 and cold.cache_stats["hit"] == 0
    assert len(entries(tmp_path)) == 2  # one per TU
    warm = static(tmp_path)
    second = vr.run_verifier(warm, helper_bug)
    assert warm.cache_stats["hit"] == 2 and warm.cache_stats["miss"] == 0
    assert same(first, second)
    uncached = vr.run_verifier(static(cache=False), helper_bug)
    assert same(first, uncached)


@pytest.mark.slow
def test_a_corrupt_or_tampered_entry_is_ignored_and_the_tu_run_again(helper_bug, tmp_path):
    first = vr.run_verifier(static(tmp_path), helper_bug)
    assert first.status == "fail"
    paths = entries(tmp_path)
    # one entry truncated, the other rewritten to say "no finding" with a stale checksum
    paths[0].write_bytes(paths[0].read_bytes()[:40])
    doc = json.loads(paths[1].read_bytes())
    doc["stderr"] = ""
    paths[1].write_text(json.dumps(doc))
    again = static(tmp_path)
    result = vr.run_verifier(again, helper_bug)
    assert again.cache_stats["hit"] == 0 and again.cache_stats["miss"] == 2
    assert same(first, result)
    # and the entries were rewritten: the next run hits again
    third = static(tmp_path)
    assert same(first, vr.run_verifier(third, helper_bug)) and third.cache_stats["hit"] == 2


@pytest.mark.slow
def test_an_entry_under_another_key_is_not_used(tmp_path):
    """A plugin whose header differs by one byte gets its own result, never its twin's."""
    bug = (EXAMPLES / "org.pds.examples.helper_bug" / "helpers.h").read_text()
    files = {"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
             "x.c": '#include "helpers.h"\nprotoop_arg_t entry(picoquic_cnx_t *cnx)\n'
                    "{\n    return rtt_history((picoquic_path_t *) get_cnx(cnx, AK_CNX_PATH, 0));\n}\n"}
    clean = bug.replace("samples[4] = get_path", "samples[3] = get_path")
    passing = vr.run_verifier(static(tmp_path), plugin_of({**files, "helpers.h": clean}))
    assert passing.status == "pass", passing.reason
    verifier = static(tmp_path)
    failing = vr.run_verifier(verifier, plugin_of({**files, "helpers.h": bug}))
    assert failing.status == "fail" and "in rtt_history(); reached by x.o" in failing.reason, failing.reason
    assert verifier.cache_stats["hit"] == 0
    # the same bytes in another plugin (another name, another manifest) share the entry
    other = plugin_of({**files, "helpers.h": bug, "p.plugin": "org.pds.tests.other\nupdate_rtt pre x.o\n"},
                      name="org.pds.tests.other")
    shared = static(tmp_path)
    assert vr.run_verifier(shared, other).status == "fail" and shared.cache_stats["hit"] == 1


def test_the_include_closure_covers_every_include_whatever_surrounds_it():
    files = {"a/x.c": b'#include "h.h"\n#if 0\n#  include <g.h>\n#endif\n/* #include "c.h" */\n'
                      b'  %: include "../top.h"\nconst char *s = "#include \\"s.h\\"";\n',
             "a/h.h": b"int h;\n", "top.h": b"#include_next <deep/n.h>\n", "deep/n.h": b""}
    closure = dict(include_closure(files, "a/x.c", "/tmp/pds-static-x/plugin"))
    digest = hashlib.sha256(b"int h;\n").hexdigest()
    assert closure["a/h.h"] == digest and closure["h.h"] == "absent"
    assert closure["a/g.h"] == "absent" and closure["g.h"] == "absent"  # in #if 0: still keyed
    assert "c.h" not in closure and "a/c.h" not in closure and "s.h" not in closure  # comment, string
    assert closure["top.h"] == hashlib.sha256(b"#include_next <deep/n.h>\n").hexdigest()
    assert closure["deep/n.h"] == hashlib.sha256(b"").hexdigest()
    assert closure["../top.h"] == "absent"  # the -I . candidate, above the plugin directory


def test_a_path_back_into_the_plugin_directory_is_keyed_by_its_bytes():
    files = {"x.c": b'#include "../plugin/h.h"\n', "h.h": b'#include "i.h"\n', "i.h": b"int i;\n"}
    closure = dict(include_closure(files, "x.c", "/tmp/pds-static-x/plugin"))
    assert closure["../plugin/h.h"] == hashlib.sha256(b'#include "i.h"\n').hexdigest()
    assert closure["i.h"] == hashlib.sha256(b"int i;\n").hexdigest()


@pytest.mark.parametrize("source", [
    b"#include HEADER\n",  # a computed include
    b"#if __has_include(\"x.h\")\n#endif\n",
    b'#include "/usr/include/stdio.h"\n',
    b'#include "../../../usr/include/stdio.h"\n',
    b'#inc\\ \nlude "x.h"\n',  # a backslash and a blank before the newline
    b'// a comment \\\n#include "x.h"\n',
    b"??=include \"x.h\"\n",  # a trigraph
    b"#error it's\n",  # an unterminated literal
    b'#include "x.h"\r#include "y.h"\n',  # a lone CR
])
def test_includes_the_reader_cannot_follow_make_the_tu_uncacheable(source):
    with pytest.raises(Uncacheable):
        include_closure({"x.c": source}, "x.c", "/tmp/pds-static-x/plugin")


def test_the_key_depends_on_the_tool_argv_and_closure():
    closure = [("x.c", "a" * 64)]
    keys = {tu_key("t1", ["cppcheck", "x.c"], closure), tu_key("t2", ["cppcheck", "x.c"], closure),
            tu_key("t1", ["cppcheck", "-DA", "x.c"], closure), tu_key("t1", ["cppcheck", "x.c"], [("x.c", "b" * 64)])}
    assert len(keys) == 4


def test_an_entry_names_its_key(tmp_path):
    cache = TuCache(tmp_path)
    cache.put("ab" + "0" * 62, 0, "", "x.c:1:1:error:e:m")
    assert cache.get("ab" + "0" * 62) == (0, "", "x.c:1:1:error:e:m")
    moved = tmp_path / "ab" / ("ab" + "1" * 62 + ".json")
    moved.write_bytes((tmp_path / "ab" / ("ab" + "0" * 62 + ".json")).read_bytes())
    assert cache.get("ab" + "1" * 62) is None  # an entry copied under another key is not read


PROOF_STYLE = """#include "pquic.h"
#ifdef PROVERS
#define PROOF(...) __VA_ARGS__
#else
#define PROOF(...)
#endif

PROOF(
#define HARNESS 1
        uint64_t nondet(void);
)

#define CLAMP(x) ({ uint64_t __clamped__; if ((x) > 8) __clamped__ = 8; else __clamped__ = (x); __clamped__; })

protoop_arg_t entry(picoquic_cnx_t *cnx)
{
    uint64_t slots[2];
    slots[0] = CLAMP(get_cnx(cnx, AK_CNX_STATE, 0));
    slots[LIMIT] = 1;
    return slots[0];
}
"""


def test_a_directive_inside_a_macro_argument_is_analysed_from_clangs_preprocessed_output():
    """xBGP's PROOF_INSTS(#define ...): cppcheck's preprocessor refuses it (C leaves it undefined,
    clang applies it); the TU is analysed as clang compiles it, findings at their own lines."""
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
                        "x.c": PROOF_STYLE.replace("#include \"pquic.h\"\n", "#include \"pquic.h\"\n#define LIMIT 2\n")})
    result = vr.run_verifier(static(), plugin)
    assert result.status == "fail", (result.reason, result.log[-2000:])
    assert "x.c:20: error:" in result.reason and "arrayIndexOutOfBounds" in result.reason
    assert "in entry(); reached by x.o" in result.reason
    assert "analysing clang's preprocessed output" in result.log
    # the statement expression's value is not "unused": listed apart, not counted
    assert any(line.startswith("apart: x.c:19:") and "__clamped__" in line for line in result.log.splitlines())
    fixed = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
                       "x.c": PROOF_STYLE.replace("#include \"pquic.h\"\n", "#include \"pquic.h\"\n#define LIMIT 1\n")})
    result = vr.run_verifier(static(), fixed)
    assert result.status == "pass", (result.reason, result.log[-2000:])


def test_a_tu_clang_cannot_preprocess_either_is_an_error():
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
                        "x.c": PROOF_STYLE.replace("#include \"pquic.h\"\n", "#include \"pquic.h\"\n#include \"gone.h\"\n")})
    result = vr.run_verifier(static(), plugin)
    assert result.status == "error" and "clang cannot preprocess it either" in result.reason, result.reason


def test_a_plugin_std_cfg_is_never_loaded_as_cppchecks_own():
    """Measured: cppcheck reads ./std.cfg before its installed one; a plugin must not configure
    the tool that judges it."""
    plugin = plugin_of({"p.plugin": "org.pds.tests.static\nupdate_rtt post x.o\n",
                        "x.c": '#include "pquic.h"\nprotoop_arg_t entry(picoquic_cnx_t *cnx) { return 0; }\n',
                        "std.cfg": '<?xml version="1.0"?>\n<def format="2"/>\n'})
    result = vr.run_verifier(static(), plugin)
    assert result.status == "error" and "std.cfg" in result.reason, result.reason
