"""A hostile or compromised PR can neither halt nor exhaust the PV (issue 11).

Commits are "planted" as a compromised git server would: written into the PR's bare repo by a
receive-pack that runs no hook. Everything else is real: the PR is made with `pds pr init`,
commits are SSH-signed by git, the PV runs `pds pv epoch` and `pds pv publish`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from pds_log.core import log_layout as layout
from pds_log.core.note import NoteVerifier
from pds_log.core.signed_root import open_str
from pds_log.pv.config import load_config
from tests.support import World, epoch, run

pytestmark = pytest.mark.slow  # real epochs over a PR with planted commits

VERIFIERS = {"safety": {"runner": "bytecode_safety"}}
GOOD = "org.pds.examples.rtt_monitor"
MEMORY_BOUND_KIB = 300 * 1024


def plant(ws) -> subprocess.CompletedProcess:
    """Write the workspace's HEAD into the PR's main branch with no hook at all."""
    return run("git", "-C", ws.path, "push", "-q", "--receive-pack=git -c core.hooksPath=/dev/null receive-pack",
               "origin", "HEAD:main")


def xbgp_plugin(ws, name: str, manifest: bytes) -> None:
    ws.write(f"plugins/{name}/manifest.json", manifest)
    ws.write(f"plugins/{name}/med_filter.o", b"\x7fELF not really")


def verifier_of(config) -> NoteVerifier:
    desc = json.loads(run("git", "--git-dir", config.log_repo, "show", f"main:{layout.PV_DESCRIPTOR}").stdout)
    return NoteVerifier.from_string(desc["vkey"])


def log_file(config, path: str) -> bytes:
    repo = pygit2.Repository(str(config.log_repo))
    tree = repo.revparse_single("main").tree
    return repo[tree[path].id].data


def pr_area_report(pr: Path, origin: str, epoch_no: int) -> dict:
    repo = pygit2.Repository(str(pr))
    tip = repo[repo.references[f"refs/heads/pvs/{origin}"].target]
    return json.loads(repo[tip.tree[f"pvs/{origin}/reports/{epoch_no}.json"].id].data)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Epoch 1 accepts a good plugin; then a compromised server plants, on the PR's branch:
    an unsigned commit setting pds/policy.yaml to `version: 9…9` (5,000 digits), an unsigned
    commit changing the good plugin, and two commits alice really signed whose manifest.json
    holds a 5,000-digit integer and 100k-deep JSON; then alice pushes a good plugin through
    the hook. Three epochs and a publish follow."""
    world = World(tmp_path_factory.mktemp("hostile"))
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    config = load_config(config_path)
    world.push_plugins({"org.pds.a.one": GOOD})
    e1 = epoch(config_path)
    assert e1["added"] == ["org.pds.a.one"]
    ws = world.ws
    ws.reset_to_remote()
    ws.write("pds/policy.yaml", "version: " + "9" * 5000 + "\n")
    planted_policy = ws.commit("planted: policy", None)
    ws.write("plugins/org.pds.a.one/notes.txt", "planted")
    planted_change = ws.commit("planted: change a plugin", None)
    xbgp_plugin(ws, "org.pds.bad.bigint", b'{"jit_all": true, "plugins": {"p": {"extra_mem": ' + b"9" * 5000 + b"}}}")
    bigint = ws.commit("bigint manifest", world.key("alice"))
    xbgp_plugin(ws, "org.pds.bad.deep", b"[" * 100_000 + b"]" * 100_000)
    deep = ws.commit("deep manifest", world.key("alice"))
    plant(ws)
    pushed = world.push_plugins({"org.pds.a.two": GOOD}, message="a good plugin, through the hook")
    runs = [run(sys.executable, "-m", "pds_log", "pv", "epoch", "--config", config_path, "--json", check=False)
            for _ in range(3)]
    out = config_path.parent / "site"
    published = run(sys.executable, "-m", "pds_log", "pv", "publish", "--config", config_path, "--out", out,
                    check=False)
    return {"world": world, "config": config, "runs": runs, "published": published, "out": out,
            "planted": [planted_policy, planted_change], "bad": [bigint, deep], "pushed": pushed}


def test_every_epoch_after_the_planted_commits_ends_with_a_signed_str(hostile):
    config = hostile["config"]
    verifier = verifier_of(config)
    for i, result in enumerate(hostile["runs"]):
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        summary = json.loads(result.stdout)
        assert summary["epoch"] == 2 + i
        signed = open_str(log_file(config, layout.str_path(2 + i)), verifier)  # a heartbeat, validly signed
        assert signed.head.epoch == 2 + i and signed.head.pr == hostile["pushed"]


def test_planted_commits_are_refused_and_raise_the_alarm_in_the_log(hostile):
    summary = json.loads(hostile["runs"][0].stdout)
    record = layout.EpochRecord.decode(log_file(hostile["config"], layout.epoch_record_path(2)))
    by_id = {c["id"]: c for c in record.commits}
    for commit in hostile["planted"]:
        assert by_id[commit]["ok"] is False and "unsigned commit" in by_id[commit]["reasons"]
        assert by_id[commit]["alarm"].startswith(f"PR integrity: commit {commit[:12]}")
    assert len(summary["alarms"]) == 2
    # the policy the planted commit wrote is never used: the policy in effect is still the
    # one of epoch 1, and alice's later commits are judged by it (not "no usable policy")
    first = layout.EpochRecord.decode(log_file(hostile["config"], layout.epoch_record_path(1)))
    assert record.pr_policy and record.pr_policy == first.pr_policy
    assert by_id[hostile["pushed"]]["ok"] is True
    assert {c["policy"] for c in record.commits} == {first.pr_policy}  # every commit judged by it
    for commit in hostile["bad"]:
        assert by_id[commit]["ok"] is False and "alarm" not in by_id[commit]  # signed by a policy key
        assert any("malformed manifest" in r for r in by_id[commit]["reasons"]), by_id[commit]


def test_each_bad_plugin_fails_alone_and_the_good_one_is_accepted(hostile):
    summary = json.loads(hostile["runs"][0].stdout)
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert set(rejected) == {"org.pds.a.one", "org.pds.bad.bigint", "org.pds.bad.deep"}
    assert "unsigned commit" in rejected["org.pds.a.one"]  # tainted by the planted change
    assert "malformed manifest" in rejected["org.pds.bad.bigint"]
    assert "malformed manifest" in rejected["org.pds.bad.deep"]
    assert summary["added"] == ["org.pds.a.two"]
    assert [r["name"] for r in summary["removed"]] == ["org.pds.a.one"]
    later = [json.loads(r.stdout) for r in hostile["runs"][1:]]
    assert all(s["size"] == 1 and not s["rejected"] and not s["alarms"] for s in later)


def test_the_alarm_reaches_the_pr_area_and_the_site(hostile):
    planted = hostile["planted"]
    summary = json.loads(hostile["runs"][0].stdout)
    assert summary["pushes"]["pr"] == "ok"
    report = pr_area_report(hostile["world"].pr, "pv1.example", 2)
    alarms = {c["id"]: c["alarm"] for c in report["refused_commits"] if c.get("alarm")}
    assert set(alarms) == set(planted)
    assert hostile["published"].returncode == 0, hostile["published"].stderr
    index = (hostile["out"] / "site" / "index.html").read_text()
    assert "PR-integrity alarms" in index and planted[0][:12] in index and planted[1][:12] in index
    page = (hostile["out"] / "site" / "epochs" / "2.html").read_text()
    assert "ALARM" in page and planted[0][:12] in page
    record = json.loads((hostile["out"] / layout.epoch_record_path(2)).read_bytes())
    assert sum(1 for c in record["commits"] if c.get("alarm")) == 2


def test_a_refused_commit_never_sets_the_policy(tmp_path):
    """A planted, unsigned commit writes a *valid* policy that makes mallory a developer:
    mallory's signed plugin is still refused by the PV (the policy in effect is the last one
    an accepted commit set), until an admin really adds mallory."""
    world = World(tmp_path)
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    world.push_plugins({"org.pds.a.one": GOOD})
    assert epoch(config_path)["epoch"] == 1
    mallory = world.key("mallory")
    ws = world.ws
    ws.reset_to_remote()
    from pds_log.core.policy import Policy, Principal, key_id
    from pds_log.infra.sshkeys import read_public_key

    policy = Policy.parse((ws.path / "pds" / "policy.yaml").read_bytes())
    policy.developers.append(Principal("mallory", key_id(read_public_key(f"{mallory}.pub")), "developer",
                                       ("org.pds.*",)))
    ws.write("pds/policy.yaml", policy.to_yaml())
    planted = ws.commit("planted: make mallory a developer", None)
    ws.add_plugin(world.example(GOOD, "org.pds.m.evil"), "org.pds.m.evil")
    evil = ws.commit("mallory's plugin", mallory)
    plant(ws)
    summary = epoch(config_path)
    assert summary["epoch"] == 2 and summary["added"] == []
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert "is not in the policy" in rejected["org.pds.m.evil"], rejected
    record = layout.EpochRecord.decode(log_file(load_config(config_path), layout.epoch_record_path(2)))
    by_id = {c["id"]: c for c in record.commits}
    assert "alarm" in by_id[planted] and "alarm" in by_id[evil]  # mallory's key is unknown to the policy
    assert epoch(config_path)["epoch"] == 3
    # the auditor judges by the same policy in effect: under the planted one mallory's commit
    # would pass, and an auditor using it would call the honest PV's refusal a lie
    from pds_log.auditor.audit import audit

    report = audit(load_config(config_path).log_repo, pr_path=world.pr)
    assert report.ok, [str(f) for f in report.findings]


def test_a_1_gib_zero_blob_is_refused_with_bounded_memory(tmp_path):
    """A 1 GiB blob of zeros (about 1 MB packed): the PR hook refuses it from its object header,
    and a PV fed the same blob planted directly refuses it too, each process tree staying far
    below the blob's size (measured: ru_maxrss of the hook's / epoch's children)."""
    world = World(tmp_path)
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    world.push_plugins({"org.pds.a.one": GOOD})
    assert epoch(config_path)["epoch"] == 1
    hooks = world.pr / "hooks"
    (hooks / "pre-receive").rename(hooks / "pre-receive.real")
    rss_file = tmp_path / "hook-rss"
    wrapper = hooks / "pre-receive"
    wrapper.write_text(f"#!{sys.executable}\n"
                       "import resource, subprocess, sys\n"
                       f"code = subprocess.call([{str(hooks / 'pre-receive.real')!r}])\n"
                       f"open({str(rss_file)!r}, 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                       "sys.exit(code)\n")
    wrapper.chmod(0o755)
    ws = world.ws
    ws.reset_to_remote()
    big = ws.path / "plugins" / "org.pds.a.big" / "big.o"
    big.parent.mkdir(parents=True)
    big.touch()
    os.truncate(big, 1 << 30)  # sparse: no disk used by the test itself
    ws.write("plugins/org.pds.a.big/manifest.json",
             '{"jit_all": true, "plugins": {"p": {"extra_mem": 0, "replace": {"0": {"path": "big.o"}}}}}')
    commit = ws.commit("a 1 GiB blob", world.key("alice"))
    big.unlink()
    pushed = ws.push()
    assert pushed.returncode != 0
    assert f"refused {commit[:12]}: plugins/org.pds.a.big/big.o: 1073741824 bytes, over the" in pushed.stderr
    hook_kib = int(rss_file.read_text())
    assert 0 < hook_kib < MEMORY_BOUND_KIB, f"hook peak RSS {hook_kib} KiB"
    plant(ws)
    code = ("import resource, subprocess, sys\n"
            "r = subprocess.run([sys.executable, '-m', 'pds_log', 'pv', 'epoch', '--config', sys.argv[1], '--json'],"
            " capture_output=True, text=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "print(r.returncode)\nprint(r.stdout)\nsys.stderr.write(r.stderr)\n")
    measured = run(sys.executable, "-c", code, config_path)
    pv_kib, returncode, out = measured.stdout.split("\n", 2)
    assert int(returncode) == 0, measured.stderr
    summary = json.loads(out)
    assert summary["epoch"] == 2
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert "1073741824 bytes, over the 1048576-byte limit" in rejected["org.pds.a.big"], rejected
    assert 0 < int(pv_kib) < MEMORY_BOUND_KIB, f"PV epoch peak RSS {pv_kib} KiB"
    print(f"peak RSS: hook {hook_kib} KiB, PV epoch {pv_kib} KiB")


def test_a_plugin_with_too_many_files_is_refused_by_the_hook_and_the_pv(tmp_path):
    from pds_log.infra.commit_check import MAX_PLUGIN_FILES

    world = World(tmp_path)
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    ws = world.ws
    ws.reset_to_remote()
    ws.add_plugin(world.example(GOOD, "org.pds.a.many"), "org.pds.a.many")
    for i in range(MAX_PLUGIN_FILES + 1):
        ws.write(f"plugins/org.pds.a.many/extra/{i}.txt", "x")
    commit = ws.commit("many files", world.key("alice"))
    pushed = ws.push()
    assert pushed.returncode != 0 and f"refused {commit[:12]}: plugins/org.pds.a.many: more than " \
                                      f"{MAX_PLUGIN_FILES} files" in pushed.stderr, pushed.stderr
    plant(ws)
    summary = epoch(config_path)
    rejected = {r["name"]: r["reason"] for r in summary["rejected"]}
    assert f"more than {MAX_PLUGIN_FILES} files" in rejected["org.pds.a.many"], rejected


def test_an_admin_repairs_a_planted_policy_through_the_hook(tmp_path):
    """After a planted unparseable policy, the hook still judges pushes by the last policy that
    parses, so the admin can push the repair; the PV adopts the repaired policy from then on."""
    world = World(tmp_path)
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety")
    assert epoch(config_path)["epoch"] == 1
    ws = world.ws
    ws.reset_to_remote()
    good_policy = (ws.path / "pds" / "policy.yaml").read_text()
    ws.write("pds/policy.yaml", "version: " + "9" * 5000 + "\n")
    planted = ws.commit("planted: policy", None)
    plant(ws)
    ws.write("pds/policy.yaml", good_policy.replace("max_blob_bytes: 1048576", "max_blob_bytes: 2097152"))
    repair = ws.commit("repair the policy", world.admin)
    pushed = ws.push()
    assert pushed.returncode == 0, pushed.stderr
    world.push_plugins({"org.pds.a.one": GOOD})  # alice, judged by the repaired policy
    summary = epoch(config_path)
    assert summary["added"] == ["org.pds.a.one"] and len(summary["alarms"]) == 1
    record = layout.EpochRecord.decode(log_file(load_config(config_path), layout.epoch_record_path(2)))
    by_id = {c["id"]: c for c in record.commits}
    assert "alarm" in by_id[planted] and by_id[repair]["ok"] is True
    assert record.pr_policy == repair


def test_the_auditor_judges_commits_by_the_same_policy_in_effect(hostile, tmp_path):
    """One rule (commit_check.PolicyChain) for the PV and the auditor: after a planted policy,
    the honest log audits clean with --pr (the auditor once judged by the parent's policy and
    reported the good commits after the planted one)."""
    from pds_log.auditor.audit import audit

    report = audit(hostile["config"].log_repo, pr_path=hostile["world"].pr)
    assert report.ok, [str(f) for f in report.findings]

