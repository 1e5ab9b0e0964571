"""The verifier worker pool: `jobs` workers, every run bounded, a bad plugin fails alone, and the
results do not depend on `jobs`."""

from __future__ import annotations

import time

import pytest

import verifier_runners as vr
from pds_log.core.binding import canonical_json
from pds_log.core.manifest import parse_plugin_manifest
from pds_log.developer.build import read_plugin_dir
from pds_log.pv import verification
from pds_log.pv.config import load_config
from pds_log.pv.prsource import PluginSnapshot
from pds_log.pv.setup import DEFAULT_VERIFIERS, init_pv
from tests.hostile_objects import compressed_bomb, self_jumps
from tests.support import World, build_example
from tests.verifiers.hostile_runners import HangOn, HogOn, KillSelf, Liar, Peek, Quick, Quitter

pytestmark = pytest.mark.slow  # pools of worker processes, verifiers killed at their limits


def tiny(name: str) -> vr.PluginInput:
    files = {"p.plugin": f"{name}\nupdate_rtt post a.o\n".encode(), "a.o": b"x"}
    return vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name))


def run_pool(verifiers: dict, names: list[str], jobs: int = 2, **kw) -> tuple[dict, vr.WorkerPool]:
    tasks = [vr.Task(n, tiny(n), list(verifiers)) for n in names]
    with vr.WorkerPool(verifiers, jobs, **kw) as pool:
        out = {(t.key, r.verifier): r for t, r in pool.run(tasks)}
    assert len(out) == len(names) * len(verifiers)
    return out, pool


def statuses(out: dict) -> dict:
    return {key: r.status for key, r in out.items()}


def test_a_worker_killed_by_sigkill_fails_its_plugin_and_verifier_alone():
    verifiers = {"kill": KillSelf("kill", {"runner": "test_kill_self"}), "quick": Quick("quick", {"runner": "test_quick"})}
    names = ["org.x.a", "org.x.die", "org.x.b", "org.x.c"]
    out, _ = run_pool(verifiers, names)
    bad = out["org.x.die", "kill"]
    assert bad.status == "error" and "worker died on org.x.die (killed by signal 9" in bad.reason, bad.reason
    assert {k: s for k, s in statuses(out).items() if k != ("org.x.die", "kill")} == \
        {(n, v): "pass" for n in names for v in verifiers if (n, v) != ("org.x.die", "kill")}


def test_a_hanging_verifier_is_killed_at_its_limit_and_the_others_go_on():
    verifiers = {"hang": HangOn("hang", {"runner": "test_hang_on"}), "quick": Quick("quick", {"runner": "test_quick"})}
    names = ["org.x.hang", "org.x.a", "org.x.b", "org.x.c", "org.x.d"]
    start = time.monotonic()
    out, _ = run_pool(verifiers, names, wall=3)
    assert time.monotonic() - start < 30
    bad = out["org.x.hang", "hang"]
    assert bad.status == "error" and "exceeded the wall-clock limit of 3 s on org.x.hang" in bad.reason, bad.reason
    assert [k for k, s in statuses(out).items() if s != "pass"] == [("org.x.hang", "hang")]


def test_a_worker_out_of_memory_is_replaced_before_the_next_plugin():
    verifiers = {"hog": HogOn("hog", {"runner": "test_hog_on"}), "quick": Quick("quick", {"runner": "test_quick"})}
    out, pool = run_pool(verifiers, ["org.x.hog", "org.x.a", "org.x.b"], jobs=1, memory=768 << 20)
    bad = out["org.x.hog", "hog"]
    assert bad.status == "error" and "exceeded the memory limit of 768 MiB on org.x.hog" in bad.reason, bad.reason
    assert [k for k, s in statuses(out).items() if s != "pass"] == [("org.x.hog", "hog")]
    assert pool.started == 2


def test_a_worker_that_garbles_its_message_fails_that_run_alone():
    verifiers = {"liar": Liar("liar", {"runner": "test_liar"}), "quick": Quick("quick", {"runner": "test_quick"})}
    out, _ = run_pool(verifiers, ["org.x.a", "org.x.lie", "org.x.b"])
    bad = out["org.x.lie", "liar"]
    assert bad.status == "error" and "malformed or oversized message on org.x.lie" in bad.reason, bad.reason
    assert [k for k, s in statuses(out).items() if s != "pass"] == [("org.x.lie", "liar")]


def test_a_worker_that_exits_is_error_with_its_last_words_and_the_rest_goes_on():
    verifiers = {"quit": Quitter("quit", {"runner": "test_quitter"}), "quick": Quick("quick", {"runner": "test_quick"})}
    out, _ = run_pool(verifiers, ["org.x.a", "org.x.quit", "org.x.b"])
    bad = out["org.x.quit", "quit"]
    assert bad.status == "error" and "worker died on org.x.quit (exit code 3" in bad.reason, bad.reason
    assert "last words: giving up on org.x.quit" in bad.reason, bad.reason
    assert [k for k, s in statuses(out).items() if s != "pass"] == [("org.x.quit", "quit")]


def test_a_worker_inherits_no_secret_environment_variable_and_no_open_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PDS_TEST_SECRET", "do-not-leak")
    key = tmp_path / "note.key"
    key.write_text("PRIVATE")
    with open(key) as handle:
        result = vr.run_verifier_bounded(Peek("peek", {"runner": "test_peek"}), tiny("org.x.a"))
        assert handle.fileno() > 2
    assert result.status == "pass", result.reason
    env, fds = result.reason.split(" fds=")
    assert "PDS_TEST_SECRET" not in env and "PATH" in env
    assert len(eval(fds)) <= 6, fds  # stdin, stdout, stderr, the two pipe ends (and listdir's own)


@pytest.fixture(scope="module")
def epoch_plugins(tmp_path_factory):
    """Clang-built examples (passing, failing at several verifiers) and two hostile objects."""
    work = tmp_path_factory.mktemp("pool")
    plugins = []
    for example in ("rtt_monitor", "sack_walk", "overflow", "path_sum", "forbidden_helper"):
        name = f"org.pool.{example}"
        files = read_plugin_dir(build_example(f"org.pds.examples.{example}", work, rename=name))
        plugins.append((PluginSnapshot(name, "0" * 40, files), parse_plugin_manifest(files, name)))
    for name, obj in (("org.pool.jumps", self_jumps(130_000)), ("org.pool.bomb", compressed_bomb())):
        files = {"p.plugin": f"{name}\nupdate_rtt post a.o\n".encode(), "a.o": obj, "a.c": b"int x;\n"}
        plugins.append((PluginSnapshot(name, "0" * 40, files), parse_plugin_manifest(files, name)))
    world = World(work / "world", developers={"alice": ["org.pool.*"]})
    return load_config(init_pv(work / "pv", "pool.pv", str(world.pr), verifiers=DEFAULT_VERIFIERS)), plugins


def as_written(results: dict) -> bytes:
    return canonical_json([[name, [[v, {k: x for k, x in r.to_obj().items() if k != "duration_s"}]
                                   for v, r in per.items()]] for name, per in results.items()])


def test_results_are_byte_identical_whatever_jobs(epoch_plugins):
    import shutil

    config, plugins = epoch_plugins
    seen = {}
    for jobs in (1, 2, 3):
        config.jobs = jobs
        shutil.rmtree(config.state_dir / "results-cache", ignore_errors=True)
        usage: dict[str, float] = {}
        results = verification.run_all(config, plugins, usage=usage)
        assert list(results) == [s.name for s, _ in plugins]
        assert all(list(per) == list(DEFAULT_VERIFIERS) for per in results.values())
        assert set(usage) == set(results) and all(cpu > 0 for cpu in usage.values())
        seen[jobs] = as_written(results)
    assert seen[1] == seen[2] == seen[3]
    by_name = {name: {v: r.status for v, r in per.items()} for name, per in results.items()}
    assert by_name["org.pool.rtt_monitor"] == {v: "pass" for v in DEFAULT_VERIFIERS}
    assert by_name["org.pool.sack_walk"]["termination"] == "fail"
    assert by_name["org.pool.overflow"]["static"] == "fail"
    assert by_name["org.pool.jumps"]["safety"] != "pass" and by_name["org.pool.bomb"]["safety"] != "pass"
