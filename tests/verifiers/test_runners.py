"""The runner machinery: sandboxed tools, timeouts, missing tools, the cache, the decoder."""

import struct
import sys
import time

import pytest

import verifier_runners as vr
from pds_log.core.errors import FormatError
from tests.support import build_example, plugin_input
from verifier_runners import ebpf
from verifier_runners.sandbox import run_tool


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return plugin_input(build_example("org.pds.examples.rtt_monitor", tmp_path_factory.mktemp("good")))


def external(name, **spec):
    return vr.build_verifiers({name: {"runner": "external", "inline": spec}})[name]


@pytest.mark.slow
def test_hung_external_tool_is_killed_at_its_timeout(good, tmp_path):
    v = external("hang", argv=[sys.executable, "-c", "import time; time.sleep(60)"], timeout=1, **{"pass": "ok"})
    start = time.monotonic()
    result = vr.run_verifier(v, good)
    assert time.monotonic() - start < 15
    assert result.status == "error" and "timed out" in result.reason and "killed" in result.reason


def test_missing_tool_is_an_error_never_a_pass(good):
    for spec in ("t2.yaml", "cbmc.yaml", "esbmc.yaml", "seahorn.yaml"):
        v = vr.build_verifiers({"x": {"runner": "external", "config": spec}})["x"]
        result = vr.run_verifier(v, good)
        assert result.status == "error", (spec, result)
        assert "not found" in result.reason, (spec, result.reason)


def test_external_pass_fail_and_no_verdict(good):
    ok = external("ok", argv=[sys.executable, "-c", "print('VERIFICATION SUCCESSFUL for {entry}')"],
                  **{"pass": "^VERIFICATION SUCCESSFUL", "fail": "^VERIFICATION FAILED"})
    result = vr.run_verifier(ok, good)
    assert result.status == "pass" and "record_progress" in result.log
    bad = external("bad", argv=[sys.executable, "-c", "print('VERIFICATION FAILED: overflow in {source}')"],
                   **{"pass": "^VERIFICATION SUCCESSFUL", "fail": "^VERIFICATION FAILED"})
    result = vr.run_verifier(bad, good)
    assert result.status == "fail" and "overflow in record_progress.c" in result.reason
    mute = external("mute", argv=[sys.executable, "-c", "print('hmm')"], **{"pass": "SUCCESS"})
    assert vr.run_verifier(mute, good).status == "error"
    crash = external("crash", argv=[sys.executable, "-c", "import os; os.abort()"], **{"pass": "SUCCESS"})
    result = vr.run_verifier(crash, good)
    assert result.status == "error" and "signal" in result.reason


def test_external_runs_without_network(good):
    probe = external("net", argv=[sys.executable, "-c",
                                  "import socket; print(sorted(n for _, n in socket.if_nameindex()))"],
                     **{"pass": "\\['lo'\\]"})
    assert vr.run_verifier(probe, good).status == "pass"


def test_resource_limits_apply(tmp_path):
    run = run_tool([sys.executable, "-c", "open('big', 'wb').write(b'x' * (4 << 20))"], tmp_path, 20,
                   file_size=1 << 20)
    assert run.returncode != 0 and not (tmp_path / "big").exists() or (tmp_path / "big").stat().st_size <= 1 << 20


def test_bad_external_configs():
    with pytest.raises(FormatError, match="unknown placeholder"):
        external("x", argv=["tool", "{nope}"])
    with pytest.raises(FormatError, match="argv must be"):
        external("x", argv="tool {source}")
    with pytest.raises(FormatError, match="unknown runner"):
        vr.build_verifiers({"x": {"runner": "magic"}})
    with pytest.raises(FormatError, match="unknown option"):
        vr.build_verifiers({"x": {"runner": "termination", "bound": 3}})


def test_crashing_verifier_is_an_error(good):
    class Boom(vr.Verifier):
        runner = "boom"

        def check(self, plugin, workdir):
            raise RuntimeError("kaboom")

    result = vr.run_verifier(Boom("boom", {"runner": "boom"}), good)
    assert result.status == "error" and "kaboom" in result.reason


def test_cache_hits_skip_the_run(good, tmp_path):
    from pds_log.core.binding import plugin_files_digest

    calls = []

    class Counting(vr.Verifier):
        runner = "counting"

        def check(self, plugin, workdir):
            calls.append(1)
            return self.result("pass", "counted")

    v = Counting("c", {"runner": "counting"})
    cache = vr.ResultCache(tmp_path)
    digest = plugin_files_digest(good.files)
    assert cache.get(v, digest) is None
    cache.put(v, digest, vr.run_verifier(v, good))
    assert len(calls) == 1
    hit = cache.get(v, digest)
    assert hit is not None and hit.status == "pass" and len(calls) == 1
    assert cache.get(v, plugin_files_digest({**good.files, "x.c": b"changed"})) is None
    other = Counting("c", {"runner": "counting", "timeout": 5})
    assert cache.get(other, digest) is None  # another configuration, another key
    cache.put(v, "ab" * 32, vr.VerifierResult("c", "error", "tool missing"))
    assert cache.get(v, "ab" * 32) is None  # errors are retried, never remembered


def insn(opcode, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", opcode, dst | (src << 4), off, imm)


def section(code: bytes) -> ebpf.Section:
    s = ebpf.Section(".text", 1, code)
    s.insns = ebpf.decode(code)
    return s


SAFETY = vr.build_verifiers({"s": {"runner": "bytecode_safety"}})["s"]
EXIT = insn(0x95)


@pytest.mark.parametrize("code, message", [
    (insn(0x05, off=5) + EXIT, "jump out of range"),
    (insn(0x05, off=1) + insn(0x18, 1, imm=1) + insn(0) + EXIT, "into the middle of a 16-byte lddw"),
    (insn(0xFF) + EXIT, "invalid"),
    (insn(0xB7, dst=10, imm=1) + EXIT, "read-only frame pointer"),
    (insn(0x7A, dst=10, off=-520, imm=1) + EXIT, "outside the 512-byte frame"),
    (insn(0x7A, dst=10, off=0, imm=1) + EXIT, "outside the 512-byte frame"),
    (insn(0xBF, dst=1, src=10) + insn(0x07, dst=1, imm=-600) + insn(0x7A, dst=1, off=0, imm=1) + EXIT,
     "r10-600"),
    (insn(0x85, src=1, imm=3) + EXIT, "local call without a relocation"),
    (insn(0xB7, imm=0), "falls off the end"),
    (insn(0x20) + EXIT, "legacy packet load"),
])
def test_decoder_rejects(code, message):
    problems = SAFETY.check_section(section(code))
    assert any(message in p for p in problems), problems


def test_decoder_accepts_in_frame_access_and_lddw():
    code = (insn(0x18, 1, imm=5) + insn(0, imm=0) + insn(0x7B, dst=10, src=1, off=-8)
            + insn(0x79, dst=0, src=10, off=-8) + EXIT)
    assert SAFETY.check_section(section(code)) == []


def test_truncated_or_garbage_objects_fail(tmp_path):
    result = SAFETY.check_object("x.o", b"\x7fELF garbage", [])
    assert result and "malformed ELF" in result[0]
    with pytest.raises(ebpf.ObjectError, match="multiple of 8"):
        ebpf.decode(b"\x00" * 7)


@pytest.mark.slow
def test_pds_pv_check_cli(tmp_path, pds):
    good = build_example("org.pds.examples.rtt_monitor", tmp_path)
    result = pds("pv", "check", good)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    for verifier in ("reproducible", "safety", "termination", "side_effects", "static"):
        assert verifier in out
    assert "all verifiers pass" in out
    bad = build_example("org.pds.examples.spin_wait", tmp_path)
    result = pds("pv", "check", bad)
    assert result.returncode == 1 and "unproven loop at wait_for_window" in result.stdout.decode()
    unbuilt = tmp_path / "org.pds.examples.unbuilt"
    unbuilt.mkdir()
    (unbuilt / "x.plugin").write_text("org.pds.examples.unbuilt\nupdate_rtt post x.o\n")
    result = pds("pv", "check", unbuilt)
    assert result.returncode == 1 and "missing pluglet" in result.stderr.decode()


def test_t2_pipeline_compiles_with_the_default_recipe():
    from pds_log.core.recipe import DEFAULT_FLAGS
    from verifier_runners.tools import t2_pipeline

    assert t2_pipeline.RECIPE_FLAGS == DEFAULT_FLAGS


@pytest.mark.slow
def test_hostile_objects_are_refused_before_anything_is_inflated(tmp_path):
    """A compressed .text claiming 1 GiB and an out-of-range section: refused from their headers;
    the rebuild comparison does not inflate the bomb either (peak RSS measured in a fresh process)."""
    import subprocess

    from tests.hostile_objects import compressed_bomb, elf_object

    with pytest.raises(ebpf.ObjectError, match="compressed"):
        ebpf.load_object(compressed_bomb(1 << 30))
    truncated = elf_object(b"\x95" + bytes(7) * 1)[:-200]  # section headers cut off
    with pytest.raises(ebpf.ObjectError):
        ebpf.load_object(truncated)
    bomb = tmp_path / "bomb.o"
    bomb.write_bytes(compressed_bomb(1 << 30))  # made here: zlib on 1 GiB of zeros costs memory itself
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forked copy of this
    # (large) test process, so it would measure pytest rather than the probe
    probe = ("import re, sys; from verifier_runners.builtin import describe_difference; "
             "print(describe_difference(open(sys.argv[1], 'rb').read(), b'x')); "
             "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert "unreadable" in out[0]
    assert int(out[1]) < 200 * 1024, f"peak RSS {out[1]} KiB"


@pytest.mark.slow
def test_self_jumps_are_linear():
    """130k self-jumps (a 1 MiB object): CFG and dataflow finish; the old passes were quadratic
    (measured > 600 s). No time is asserted here (benchmarks do that); a quadratic pass would
    make this test run for many minutes."""
    from tests.hostile_objects import self_jumps

    obj = ebpf.load_object(self_jumps(130_000))
    (_, _, insns, cfg), = list(ebpf.functions(obj))
    assert len(cfg.back_edges) == 130_000
    assert len(ebpf.constant_registers(insns, cfg)) == len(insns)


@pytest.mark.slow
def test_each_recipe_stage_is_checked(tmp_path):
    """A failed stage is named; nothing is compared against what a failed pipe would leave. The
    second case is the real one: host IR that llc cannot lower (a signed 64-bit division, as in
    one of PQUIC's own pluglets)."""
    import shutil

    plugin_dir = build_example("org.pds.examples.sys_headers", tmp_path)
    repro = vr.build_verifiers({"r": {"runner": "reproducible"}})["r"]
    assert vr.run_verifier(repro, plugin_input(plugin_dir)).status == "pass"
    (plugin_dir / "pds-build.yaml").unlink()  # without its defines the source hits its #error
    result = vr.run_verifier(repro, plugin_input(plugin_dir))
    assert result.status == "fail" and "rebuild failed at clang" in result.reason, result.reason
    sdiv = tmp_path / "sdiv"
    shutil.copytree(plugin_dir, sdiv)
    (sdiv / "record_progress.c").write_text(
        '#include "pquic.h"\nprotoop_arg_t record_progress(picoquic_cnx_t *cnx)\n'
        '{ int64_t a = (int64_t) get_cnx(cnx, AK_CNX_INPUT, 0); return (protoop_arg_t) (a / 4); }\n')
    result = vr.run_verifier(repro, plugin_input(sdiv, "org.pds.examples.sys_headers"))
    assert result.status == "fail" and "rebuild failed at llc" in result.reason, result.reason
