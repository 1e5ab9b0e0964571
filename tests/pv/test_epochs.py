"""PV epochs for real: a PR with 20+ plugins over several pushes and epochs (accepted, rejected
with the reason recorded and sent to the PR, updated, deleted); one log commit per epoch; every
STR verifies and chains; a rewritten PR history is refused."""

import json

import pygit2
import pytest

from pds_log.auditor.audit import audit
from pds_log.core import log_layout as layout
from pds_log.core.note import NoteVerifier
from pds_log.core.signed_root import check_chain, open_str
from pds_log.pv.config import load_config
from tests.support import PDS, World, epoch, run

pytestmark = pytest.mark.slow  # real epochs with builds and verifiers

GOOD = ["org.pds.examples.rtt_monitor", "org.pds.examples.cwin_total", "org.pds.examples.state_logger",
        "org.pds.examples.xbgp_med"]
BAD = {  # example -> the verifier that rejects it under this PV's acceptance
    "org.pds.examples.nonrepro": "reproducible",
    "org.pds.examples.stack_escape": "safety",
    "org.pds.examples.local_call": "safety",
    "org.pds.examples.spin_wait": "termination",
    "org.pds.examples.rtt_tamper": "side_effects",
    "org.pds.examples.forbidden_helper": "safety",
    "org.pds.examples.dynamic_key": "side_effects: error",  # a run-time key cannot be judged
}
ACCEPTANCE = "reproducible & safety & termination & side_effects"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("epochs"))
    config = world.add_pv("pv1.example", acceptance=ACCEPTANCE)
    first = {f"org.pds.good{i}.{ex.split('.')[-1]}": ex for i in range(4) for ex in GOOD}  # 16 good
    first.update({f"org.pds.bad.{ex.split('.')[-1]}": ex for ex in BAD})  # 7 bad
    world.push_plugins(first, message="first batch")
    e1 = epoch(config)
    # second push: update two, delete two, add two more, and fix one bad plugin
    world.push_plugins({"org.pds.good0.rtt_monitor": "org.pds.examples.state_logger",
                        "org.pds.good1.rtt_monitor": "org.pds.examples.cwin_total",
                        "org.pds.new.one": "org.pds.examples.rtt_monitor",
                        "org.pds.new.two": "org.pds.examples.xbgp_med",
                        "org.pds.bad.spin_wait": "org.pds.examples.cwin_total"},
                       delete=("org.pds.good2.cwin_total", "org.pds.good3.state_logger"), message="second batch")
    e2 = epoch(config)
    e3 = epoch(config)  # nothing changed: still a new, fresh STR
    return {"world": world, "config": config, "epochs": [e1, e2, e3], "first": first}


def test_first_epoch_accepts_good_and_rejects_bad_with_reasons(scenario):
    e1 = scenario["epochs"][0]
    assert len(scenario["first"]) >= 20
    assert e1["epoch"] == 1 and e1["size"] == 16
    assert sorted(e1["added"]) == sorted(n for n in scenario["first"] if ".good" in n)
    rejected = {r["name"]: r["reason"] for r in e1["rejected"]}
    assert set(rejected) == {n for n in scenario["first"] if ".bad." in n}
    for name, example in scenario["first"].items():
        if example in BAD:
            expected = BAD[example] if ":" in BAD[example] else f"{BAD[example]}: fail"
            assert expected in rejected[name], rejected[name]
    assert "unproven loop at wait_for_window" in rejected["org.pds.bad.spin_wait"]
    assert e1["pushes"]["pr"] == "ok"


def test_second_epoch_updates_removes_adds(scenario):
    e2 = scenario["epochs"][1]
    assert sorted(e2["updated"]) == ["org.pds.good0.rtt_monitor", "org.pds.good1.rtt_monitor"]
    assert sorted(e2["added"]) == ["org.pds.bad.spin_wait", "org.pds.new.one", "org.pds.new.two"]
    assert {r["name"]: r["reason"] for r in e2["removed"]} == {
        "org.pds.good2.cwin_total": "deleted from the PR", "org.pds.good3.state_logger": "deleted from the PR"}
    assert e2["size"] == 16 - 2 + 3


def test_epoch_reports_its_time_per_phase_and_per_verifier(scenario):
    e1, _e2, e3 = scenario["epochs"]
    seconds = e1["seconds"]
    for phase in ("load", "fetch", "commit_checks", "verify", "tree", "reserve and sign", "commit", "push"):
        assert seconds[phase] >= 0, phase
    # every configured verifier ran in epoch 1, and its runs' time is reported apart
    assert {k for k in seconds if k.startswith("verifier ")} == {
        f"verifier {v} (sum)" for v in ("reproducible", "safety", "termination", "side_effects", "static")}
    assert all(seconds[f"verifier {v} (sum)"] > 0 for v in ("reproducible", "termination"))
    # nothing changed in epoch 3: every result is a cache hit, no verifier time
    assert not any(k.startswith("verifier ") for k in e3["seconds"])


def test_empty_epoch_still_signs(scenario):
    e2, e3 = scenario["epochs"][1:]
    assert e3["epoch"] == 3 and e3["root"] == e2["root"] and e3["added"] == e3["updated"] == []
    assert e3["str_sha256"] != e2["str_sha256"]


def test_log_has_one_commit_per_epoch_and_strs_chain(scenario):
    config = load_config(scenario["config"])
    repo = pygit2.Repository(str(config.log_repo))
    verifier = NoteVerifier.from_string(str(config.signer().verifier()))
    commits = list(repo.walk(repo.references["refs/heads/main"].target))
    assert [c.message.split("\n")[0] for c in commits] == ["epoch 3", "epoch 2", "epoch 1"]
    head = commits[0]
    prev = None
    for e in (1, 2, 3):
        signed = open_str(repo[head.tree[layout.str_path(e)].id].data,
                          verifier)
        check_chain(prev, signed)
        prev = signed
    report = audit(config.log_repo, pr_path=scenario["world"].pr)
    assert report.ok, [str(f) for f in report.findings]


def test_results_and_failure_report_reach_the_pr(scenario):
    world = scenario["world"]
    repo = pygit2.Repository(str(world.pr))
    area = repo.revparse_single("refs/heads/pvs/pv1.example")
    report = json.loads(repo[area.tree["pvs/pv1.example/reports/1.json"].id].data)
    assert {r["name"] for r in report["rejected"]} == {n for n in scenario["first"] if ".bad." in n}
    notes = {e.name for e in repo[area.tree["pvs/pv1.example/str"].id]}
    assert notes == {"1.note", "2.note", "3.note"}
    config = load_config(scenario["config"])
    log = pygit2.Repository(str(config.log_repo))
    head = log.revparse_single("main")
    result = json.loads(log[head.tree[layout.result_path("org.pds.bad.rtt_tamper", layout.LATEST_LAYOUT)].id].data)
    assert result["status"] == "rejected"
    assert "set_cnx(cnx.state) is not allowed in protoop update_rtt" in result["verifiers"]["side_effects"]["reason"]
    log_blob = log[head.tree[layout.blob_path("logs", result["verifiers"]["side_effects"]["log_sha256"], layout.LATEST_LAYOUT)].id].data
    assert b"reset_state" in log_blob


def test_force_pushed_pr_is_refused_and_nothing_signed(scenario, tmp_path):
    world, config = scenario["world"], scenario["config"]
    cfg = load_config(config)
    log = pygit2.Repository(str(cfg.log_repo))
    before = str(log.references["refs/heads/main"].target)
    # the PR is compromised: its branch is rewritten behind the hook's back
    pr = pygit2.Repository(str(world.pr))
    main = pr.revparse_single("main")
    run("git", "--git-dir", world.pr, "update-ref", "refs/heads/main", str(main.parents[0].parents[0].id))
    try:
        result = epoch(config, check=False)
        assert result.get("code") == 1 and "PR history rewritten" in result["error"]
        assert "refusing to sign anything" in result["error"]
        assert str(log.references["refs/heads/main"].target) == before
        assert not (cfg.state_dir / "pending.json").exists()
    finally:
        run("git", "--git-dir", world.pr, "update-ref", "refs/heads/main", str(main.id))


def test_split_plan_run_one_seal(scenario, tmp_path):
    """The CI fan-out path produces an epoch like the single job does."""
    world, config = scenario["world"], scenario["config"]
    world.push_plugins({"org.pds.fan.a": "org.pds.examples.rtt_monitor",
                        "org.pds.fan.b": "org.pds.examples.spin_wait"}, message="fan-out batch")
    plan_path = tmp_path / "plan.json"
    run(*PDS, "pv", "plan", "--config", config, "--out", plan_path)
    plan = json.loads(plan_path.read_text())
    assert {i["plugin"] for i in plan["items"]} == {"org.pds.fan.a", "org.pds.fan.b"}
    results = tmp_path / "results"
    results.mkdir()
    # seal refuses while results are missing
    missing = run(*PDS, "pv", "seal", "--config", config, "--plan", plan_path, "--results", results, check=False)
    assert missing.returncode == 1 and "run `pds pv run-one`" in missing.stderr
    for item in plan["items"]:
        run(*PDS, "pv", "run-one", "--config", config, "--plan", plan_path, "--item", item["id"],
            "--out", results / f"{item['id']}.json")
    out = run(*PDS, "pv", "seal", "--config", config, "--plan", plan_path, "--results", results, "--json")
    summary = json.loads(out.stdout)
    assert summary["added"] == ["org.pds.fan.a"]
    assert [r["name"] for r in summary["rejected"]] == ["org.pds.fan.b"]
    stale = run(*PDS, "pv", "seal", "--config", config, "--plan", plan_path, "--results", results, check=False)
    assert stale.returncode == 1 and "stale plan" in stale.stderr
