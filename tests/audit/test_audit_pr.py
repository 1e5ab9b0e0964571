"""Auditing a PV log against the PR it served: an honest five-epoch log (adds, updates, deletes,
a rejection, a re-submission, plugins tainted by commits planted unsigned in the PR) is clean
with --pr; a PV that keeps a deleted plugin, ignores an update, a fix or a refused commit, or rewrites a rejected plugin's
results/ record in a later epoch is caught, each finding naming the epoch, the plugin and the
check. The lies are told as a dishonest PV would: the epoch is rewritten consistently (bindings,
results, epoch record, tiles) and the STR re-signed with the PV's real key."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pygit2
import pytest

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding, canonical_json
from pds_log.core.names import name_key
from pds_log.core.signed_root import TreeHead, open_str, sign_str
from pds_log.core.tiles import positioned_tiles
from pds_log.core.tree import PrefixTree
from pds_log.pv.config import load_config
from tests.support import World, forger_clone, run

pytestmark = pytest.mark.slow

FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}
GOOD, OTHER, THIRD = "org.pds.examples.rtt_monitor", "org.pds.examples.cwin_total", "org.pds.examples.state_logger"
BAD = "org.pds.examples.local_call"  # a local call: the safety verifier fails it

KEEP, UPD, DEL, REJ, RESUB, TAINT, DEL2, UPD2 = (f"org.pds.s.{n}" for n in (
    "keep", "upd", "del", "rej", "resub", "taint", "del2", "upd2"))


def pds(*args, check=True):
    return run(sys.executable, "-m", "pds_log", *args, check=check)


def epoch(config_path, push: bool = True) -> dict:
    """`pds pv epoch`, which also pushes the STR to the PV's PR area (the auditor compares them)."""
    return json.loads(pds("pv", "epoch", "--config", config_path, "--json", *([] if push else ["--no-push"])).stdout)


def plant_unsigned_commit(world: World, plugin: str, example: str) -> str:
    """A commit with no signature put straight into the PR's branch, behind the hook's back (as a
    compromised git server could): the PV must refuse it and taint the plugin it touches."""
    world.ws.reset_to_remote()
    world.ws.add_plugin(world.example(example, plugin), plugin)
    commit = world.ws.commit(f"planted change of {plugin}", None)
    run("git", "--git-dir", world.pr, "fetch", "-q", world.ws.path, f"{commit}:refs/planted")
    run("git", "--git-dir", world.pr, "update-ref", "refs/heads/main", commit)
    return commit


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("audit-pr"))
    config_path = world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects")
    summaries = []
    world.push_plugins({KEEP: GOOD, UPD: GOOD, DEL: OTHER, REJ: BAD, RESUB: BAD, TAINT: GOOD, DEL2: OTHER,
                        UPD2: GOOD}, message="first batch")
    summaries.append(epoch(config_path))                                     # 1: six in, two rejected
    world.push_plugins({UPD: OTHER}, delete=(DEL,), message="update and delete")
    planted = plant_unsigned_commit(world, TAINT, OTHER)
    summaries.append(epoch(config_path))                                     # 2: update, delete, taint
    world.push_plugins({RESUB: THIRD}, message="re-submission")
    summaries.append(epoch(config_path))                                     # 3: the fixed plugin is in
    summaries.append(epoch(config_path))                                     # 4: heartbeat
    world.push_plugins({TAINT: THIRD, UPD2: THIRD}, delete=(DEL2,), message="fix taint, update, delete")
    planted5 = plant_unsigned_commit(world, KEEP, OTHER)
    # not pushed: the lying PVs below publish their own version of epoch 5, not this one
    summaries.append(epoch(config_path, push=False))                         # 5
    config = load_config(config_path)
    return {"world": world, "config": config, "summaries": summaries, "planted": planted, "planted5": planted5}


def audit(path, *extra):
    result = pds("audit", path, *extra, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def test_the_scenario_is_what_it_claims(scenario):
    s = scenario["summaries"]
    assert [e["epoch"] for e in s] == [1, 2, 3, 4, 5]
    assert sorted(s[0]["added"]) == sorted([KEEP, UPD, DEL, TAINT, DEL2, UPD2])
    assert {r["name"] for r in s[0]["rejected"]} == {REJ, RESUB}
    assert s[1]["updated"] == [UPD]
    assert {r["name"]: r["reason"] for r in s[1]["removed"]} == {
        DEL: "deleted from the PR", TAINT: next(r["reason"] for r in s[1]["rejected"] if r["name"] == TAINT)}
    assert f"commit {scenario['planted'][:12]} refused" in s[1]["removed"][1]["reason"]
    assert s[2]["added"] == [RESUB]
    assert s[3]["added"] == s[3]["updated"] == s[3]["removed"] == []
    assert s[4]["added"] == [TAINT] and s[4]["updated"] == [UPD2] and \
        [r["name"] for r in s[4]["removed"]] == [DEL2, KEEP]
    assert f"commit {scenario['planted5'][:12]} refused" in s[4]["removed"][1]["reason"]


def test_honest_log_audits_clean_with_the_pr(scenario):
    code, out = audit(scenario["config"].log_repo, "--pr", scenario["world"].pr)
    assert code == 0 and out.strip().endswith("clean"), out
    assert "audited 5 epochs, 4 plugins in the final tree" in out


# ---------------------------------------------------------------------------- a dishonest PV
@pytest.fixture
def clone(scenario, tmp_path):
    return forger_clone(scenario["config"].log_repo, tmp_path / "clone")


def rewrite_last_epoch(clone, signer, ignore: list[str]) -> None:
    """Rewrite the last epoch as if the PV had not processed the plugins in `ignore`: their
    bindings and results are those of the epoch before, the epoch record no longer mentions them,
    and tiles, record root and size and the STR (re-signed with the PV's own key) all agree."""
    repo = pygit2.Repository(str(clone))
    parent = repo.revparse_single("HEAD~1")
    for name in ignore:
        for path in (layout.binding_path(name, layout.LATEST_LAYOUT), layout.result_path(name, layout.LATEST_LAYOUT)):
            target = clone / path
            try:
                data = repo[parent.tree[path].id].data
            except KeyError:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    bindings = {}
    for path in (clone / "bindings").rglob("*.json"):
        binding = Binding.decode(path.read_bytes())
        bindings[binding.name] = binding
    tree = PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})
    shutil.rmtree(clone / "tiles")
    for (level, prefix), h, tile in positioned_tiles(tree):
        target = clone / layout.tile_path(level, h, layout.LATEST_LAYOUT, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tile.encode())
    signed = open_str((clone / layout.LATEST_STR).read_bytes(), signer.verifier())
    h = signed.head
    record_path = clone / layout.epoch_record_path(h.epoch)
    record = json.loads(record_path.read_bytes())
    for label in ("added", "updated"):
        record[label] = [n for n in record[label] if n not in ignore]
    for label in ("removed", "rejected"):
        record[label] = [r for r in record[label] if r["name"] not in ignore]
    record["root"], record["size"] = tree.root().hex(), len(tree)
    record_path.write_bytes(canonical_json(record) + b"\n")
    forged = sign_str(TreeHead(h.origin, h.epoch, tree.root(), h.prev, h.time, h.pr, len(tree), h.policy), signer)
    (clone / layout.LATEST_STR).write_bytes(forged.note)
    (clone / layout.str_path(h.epoch)).write_bytes(forged.note)
    run("git", "-C", clone, "add", "-A")
    run("git", "-C", clone, "commit", "-q", "--amend", "--no-edit")


def test_a_pv_that_keeps_a_deleted_plugin(scenario, clone):
    rewrite_last_epoch(clone, scenario["config"].signer(), [DEL2])
    code, out = audit(clone)
    assert code == 0, out  # a consistent lie: the log alone cannot tell
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"FINDING epoch 5: pr tree: {DEL2}: deleted from the PR at {scenario['summaries'][4]['pr_to'][:12]} " \
           f"but still in the tree" in out
    assert out.count("FINDING") == 1, out


def test_a_pv_that_ignores_an_update(scenario, clone):
    rewrite_last_epoch(clone, scenario["config"].signer(), [UPD2])
    code, out = audit(clone)
    assert code == 0, out
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"FINDING epoch 5: pr tree: {UPD2}: the tree serves source" in out and "an update was ignored" in out
    assert out.count("FINDING") == 1, out


def test_a_pv_that_ignores_a_fix_of_a_tainted_plugin(scenario, clone):
    """Lagging the other way: the plugin stays out of the tree with its old (epoch 2) rejection."""
    rewrite_last_epoch(clone, scenario["config"].signer(), [TAINT])
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"FINDING epoch 5: pr tree: {TAINT}: in the PR at" in out
    assert "absent from the tree with a 'rejected' record of epoch 2: neither served nor rejected" in out


def test_a_pv_that_ignores_a_refused_commit(scenario, clone):
    """It keeps serving the plugin an unsigned, planted commit touched (the epoch record even
    shows the refusal): the PR re-check says the plugin is tainted."""
    rewrite_last_epoch(clone, scenario["config"].signer(), [KEEP])
    code, out = audit(clone)
    assert code == 0, out
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"FINDING epoch 5: pr tree: {KEEP}: in the tree although its latest PR change is refused " \
           f"(commit {scenario['planted5'][:12]} refused" in out
    assert out.count("FINDING") == 1, out


def rewrite_result(clone, name, **fields) -> dict:
    path = clone / layout.result_path(name, layout.LATEST_LAYOUT)
    record = json.loads(path.read_bytes())
    for verifier in record["verifiers"].values():
        verifier["status"], verifier["reason"] = "pass", ""
    record.update(fields)
    path.write_bytes(canonical_json(record) + b"\n")
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    return record


def test_a_rejected_plugins_record_rewritten_to_all_pass_later(scenario, clone):
    record = rewrite_result(clone, REJ)  # epoch 1's record, rewritten in the epoch-5 commit
    assert record["epoch"] == 1 and record["status"] == "rejected" and record["verifiers"]
    code, out = audit(clone)
    assert code == 1, out
    assert f"FINDING epoch 5: results: {REJ}: record of epoch 1 changed in epoch 5" in out
    assert f"FINDING epoch 5: results: {REJ}: record says rejected, but its verifier results satisfy" in out
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert f"FINDING epoch 5: results: {REJ}: record rewritten in epoch 5 although the PR did not change" in out


def test_a_rejected_plugins_record_rewritten_as_accepted_in_its_new_epoch(scenario, clone):
    rewrite_result(clone, REJ, epoch=5, status="accepted", reason="")
    code, out = audit(clone)
    assert code == 1, out
    assert f"FINDING epoch 5: results: {REJ}: record says accepted, but the tree does not hold it" in out
    assert "record of epoch" not in out  # the epoch field is right: the other checks catch it


def test_hostile_records_make_findings_not_tracebacks(scenario, clone):
    (clone / layout.result_path(REJ, layout.LATEST_LAYOUT)).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (clone / layout.result_path(KEEP, layout.LATEST_LAYOUT)).write_bytes(b'{"v":1,"epoch":' + b"9" * 5000 + b"}")
    record = clone / layout.epoch_record_path(5)
    record.write_bytes(b'{"v":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"epoch 5: results: {layout.result_path(REJ, layout.LATEST_LAYOUT)}: JSON nested too deeply" in out
    assert f"epoch 5: results: {layout.result_path(KEEP, layout.LATEST_LAYOUT)}: invalid JSON (integer of 5000 digits" in out
    assert f"epoch 5: record: {layout.epoch_record_path(5)}: JSON nested too deeply" in out


def test_a_record_that_hides_or_misjudges_pr_commits(scenario, clone, tmp_path):
    # The PV claims the planted unsigned commit passed the policy: epoch 2's record, in every
    # commit from epoch 2 on (history rewritten consistently, with plain git).
    record = json.loads((clone / layout.epoch_record_path(2)).read_bytes())
    planted = next(c for c in record["commits"] if c["id"] == scenario["planted"])
    assert planted["ok"] is False
    planted["ok"], planted["reasons"] = True, []
    forged = tmp_path / "2.json"
    forged.write_bytes(canonical_json(record) + b"\n")
    target = layout.epoch_record_path(2)
    run("git", "-C", clone, "filter-branch", "-f", "--tree-filter",
        f"if [ -f {target} ]; then cp {forged} {target}; fi", "HEAD",
        env={**os.environ, "FILTER_BRANCH_SQUELCH_WARNING": "1"})
    # and epoch 5's record hides the PR commit of that epoch
    path5 = clone / layout.epoch_record_path(5)
    record5 = json.loads(path5.read_bytes())
    record5["commits"] = []
    path5.write_bytes(canonical_json(record5) + b"\n")
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone, "--pr", scenario["world"].pr)
    assert code == 1, out
    assert f"FINDING epoch 2: pr commits: the epoch record says PR commit {scenario['planted'][:12]} was accepted; " \
           f"re-checked against the PR policy it is refused" in out
    assert "FINDING epoch 5: pr commits: the epoch record lists 0 PR commit(s), the PR has 2" in out
    assert out.count("FINDING") == 2, out


def test_an_old_epoch_record_rewritten_later(clone):
    path = clone / layout.epoch_record_path(1)
    record = json.loads(path.read_bytes())
    record["rejected"] = []
    path.write_bytes(canonical_json(record) + b"\n")
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone)
    assert code == 1 and f"FINDING epoch 5: history: {layout.epoch_record_path(1)} (the record of epoch 1) " \
                         f"changed in epoch 5" in out, out
