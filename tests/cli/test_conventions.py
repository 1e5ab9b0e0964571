"""The CLI's conventions, command group by command group, through `sys.executable -m pds_log`:
exit 0 ok / 1 verification failed or refused / 2 usage or configuration error; `--json` on
every reporting command (stdout is one JSON document, stderr has no progress bar).

One real world for the module: a PR, one PV (`pds pv init --json`), a plugin pushed with a
signed commit, one epoch, the log published (`pds pv publish --json`) and served over HTTP."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from pds_log.core.note import NoteSigner, sign
from tests.support import PDS, StaticServer, World, run, write_trust

pytestmark = pytest.mark.slow  # a real PR and PV driven through every CLI command

PLUGIN = "org.pds.demo.rtt"
FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}


def pds(*args, **kw):
    return run(*PDS, *map(str, args), check=False, **kw)


def json_of(result) -> dict:
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr, result.stderr  # no progress bar
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    w = World(root)
    init = pds("pv", "init", root / "pv1", "--origin", "pv1.example", "--pr", w.pr, "--json")
    assert init.returncode == 0, init.stderr
    made = json_of(init)
    config = root / "pv1" / "pv.yaml"
    assert made["config"] == str(config) and made["vkey"].startswith("pv1.example+"), made
    doc = yaml.safe_load(config.read_text())
    doc.update(verifiers=FAST, acceptance="safety & side_effects")
    config.write_text(yaml.safe_dump(doc))
    run(*PDS, "pr", "add-pv", "--repo", w.pr, "--admin-key", w.admin, "--origin", "pv1.example",
        "--key", made["ssh_public_key"])
    w.push_plugins({PLUGIN: "org.pds.examples.rtt_monitor"})
    ep = pds("pv", "epoch", "--config", config, "--json")
    assert ep.returncode == 0, ep.stderr
    assert json_of(ep)["epoch"] == 1
    site = root / "site"
    pub = pds("pv", "publish", "--config", config, "--out", site, "--no-site", "--json")
    assert pub.returncode == 0, pub.stderr
    published = json_of(pub)
    assert published["epochs"] == [1] and published["latest_epoch"] == 1 and published["files_written"] > 0
    server = StaticServer(site)
    trust = write_trust(root / "trust.yaml", {"pv1": (made["vkey"], [server.url])}, "pv1")
    tdoc = yaml.safe_load(trust.read_text())
    tdoc["pvs"]["pv1"]["pr"] = str(w.pr)
    trust.write_text(yaml.safe_dump(tdoc))
    yield {"world": w, "root": root, "config": config, "vkey": made["vkey"], "site": site, "trust": trust,
           "bytecode": w.example("org.pds.examples.rtt_monitor", PLUGIN)}
    server.stop()


@pytest.fixture
def broken(tmp_path):
    """A broken pv.yaml and a broken trust.yaml (both valid YAML, wrong content)."""
    pv_yaml = tmp_path / "pv.yaml"
    pv_yaml.write_text("version: 1\norigin: pv1.example\npr: {url: /nowhere}\nkeys: 7\n")
    trust_yaml = tmp_path / "trust.yaml"
    trust_yaml.write_text("version: 1\npvs: {pv1: {vkey: 'not a key', mirrors: ['http://127.0.0.1:9/']}}\n"
                          "require: pv1\n")
    return pv_yaml, trust_yaml


def usage_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and all(w in result.stderr for w in words), result.stderr


def failed(result, *words):
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    out = result.stdout + result.stderr
    assert "Traceback" not in result.stderr and all(w in out for w in words), out


# ---------------------------------------------------------------------- exit codes, per group
def test_pv_codes(world, broken, tmp_path):
    pv_yaml, _ = broken
    for args in (("epoch",), ("plan", "--out", tmp_path / "plan.json"), ("publish", "--out", tmp_path / "out"),
                 ("seal", "--plan", pv_yaml, "--results", tmp_path)):
        usage_error(pds("pv", *args, "--config", pv_yaml), str(pv_yaml), "keys")
    usage_error(pds("pv", "epoch", "--config", tmp_path / "missing.yaml"), "does not exist")
    usage_error(pds("pv", "epoch", "--config", world["config"], "--no-such-option"), "no-such-option")
    usage_error(pds("pv", "publish", "--out", tmp_path / "o"), "exactly one of --config or --log")
    # a PV whose PR is gone refuses to run the epoch: 1, saying what is wrong
    gone = tmp_path / "gone"
    shutil.copytree(world["root"] / "pv1", gone)
    doc = yaml.safe_load((gone / "pv.yaml").read_text())
    doc["pr"]["url"] = str(tmp_path / "no-pr.git")
    (gone / "pv.yaml").write_text(yaml.safe_dump(doc))
    failed(pds("pv", "epoch", "--config", gone / "pv.yaml"), "no repository at", "no-pr.git")


def test_peer_monitor_gossip_codes(world, broken, tmp_path):
    _, trust_yaml = broken
    usage_error(pds("peer", "verify", PLUGIN, "--trust", trust_yaml), "vkey")
    usage_error(pds("peer", "bundle", PLUGIN, "--trust", trust_yaml, "-o", tmp_path / "b.json"), "vkey")
    usage_error(pds("monitor", "--developer", f"{world['world'].key('alice')}.pub", "--trust", trust_yaml), "vkey")
    usage_error(pds("gossip", "--trust", trust_yaml, "--out", tmp_path), "vkey")
    usage_error(pds("monitor", "--developer", tmp_path / "nokey.pub", "--trust", world["trust"]), "nokey.pub")
    usage_error(pds("peer", "verify", "not a name", "--trust", world["trust"]))
    # failing verifications: 1
    failed(pds("peer", "verify", "org.pds.never.pushed", "--trust", world["trust"], "--metadata-only"),
           "verdict: REJECT")
    failed(pds("peer", "verify", PLUGIN, "--trust", world["trust"]), "verdict: INCOMPLETE")
    assert pds("peer", "verify", PLUGIN, "--trust", world["trust"], "--bytecode", world["bytecode"]).returncode == 0


def test_note_tree_audit_codes(world, tmp_path):
    signer = NoteSigner.generate("pv1.example")
    note = tmp_path / "n.note"
    note.write_bytes(sign("hello\n", [signer]))
    vkey = str(signer.verifier())
    assert pds("note", "verify", note, vkey).returncode == 0
    usage_error(pds("note", "verify", note, "garbage"), "malformed verifier key")
    usage_error(pds("note", "verify", tmp_path / "missing.note", vkey), "missing.note")
    bad = tmp_path / "bad.note"
    bad.write_bytes(b"hello\n\n\xe2\x80\x94 pv1.example AAAA\n")
    failed(pds("note", "verify", bad, vkey), "invalid")
    failed(pds("note", "verify", world["site"] / "latest.note", vkey), "invalid")  # another key's STR
    usage_error(pds("tree", "check", note, "zz"), "64 hex")
    failed(pds("tree", "check", note, "00" * 32), "invalid")
    usage_error(pds("audit", world["root"] / "pv1" / "log.git", "--vkey", "garbage"), "malformed verifier key")
    assert pds("audit", world["root"] / "pv1" / "log.git").returncode == 0


# ---------------------------------------------------------------------- --json everywhere
def test_json_outputs(world, tmp_path):
    w = world["world"]
    latest = world["site"] / "latest.note"
    valid = json_of(pds("note", "verify", latest, world["vkey"], "--json"))
    assert valid["valid"] and valid["kind"] == "str" and valid["str"]["epoch"] == 1, valid
    other = str(NoteSigner.generate("pv1.example").verifier())
    invalid = pds("note", "verify", latest, other, "--json")
    assert invalid.returncode == 1 and json_of(invalid)["valid"] is False

    mon = pds("monitor", "--developer", f"{w.key('alice')}.pub", "--trust", world["trust"], "--json",
              "--state", tmp_path / "m-state.json")
    assert mon.returncode == 0, mon.stdout + mon.stderr
    report = json_of(mon)
    assert report["plugins"] == [PLUGIN] and report["alerts"] == 0
    assert [(r["plugin"], r["pv"], r["status"]) for r in report["rows"]] == [(PLUGIN, "pv1", "ok")], report

    gos = pds("gossip", "--trust", world["trust"], "--out", tmp_path, "--json", "--state", tmp_path / "g.json")
    assert gos.returncode == 0, gos.stdout + gos.stderr
    seen = json_of(gos)
    assert seen["equivocation"] is False and seen["pvs"]["pv1.example"]["1"]["distinct_strs"] == 1, seen

    verdict = json_of(pds("peer", "verify", PLUGIN, "--trust", world["trust"], "--bytecode", world["bytecode"],
                          "--json"))
    assert (verdict["accepted"], verdict["outcome"], verdict["bytecode_checked"]) == (True, "accept", True)

    plan = pds("pv", "plan", "--config", world["config"], "--out", tmp_path / "plan.json", "--json")
    assert plan.returncode == 0 and json_of(plan)["epoch"] == 2, plan.stderr
    again = json_of(pds("pv", "publish", "--config", world["config"], "--out", world["site"], "--no-site",
                        "--json"))
    assert again["epochs"] == [] and again["latest_epoch"] == 1  # nothing new since last time


def test_json_and_codes_of_key_dev_pr(world, tmp_path):
    made = pds("key", "generate", "pv7.example", "--out", tmp_path / "pv7.key", "--json")
    assert made.returncode == 0, made.stderr
    doc = json_of(made)
    assert doc["vkey"] == (tmp_path / "pv7.key.pub").read_text().strip() and doc["origin"] == "pv7.example"
    failed(pds("key", "generate", "pv7.example", "--out", tmp_path / "pv7.key", "--json"), "refusing to overwrite")
    w = world["world"]
    usage_error(pds("pr", "add-developer", "--repo", w.pr, "--admin-key", w.admin, "--name", "eve",
                    "--key", tmp_path / "none.pub", "--namespace", "org.eve.*"), "none.pub")
    usage_error(pds("pr", "add-developer", "--repo", w.pr, "--admin-key", w.admin, "--name", "eve",
                    "--key", f"{w.key('alice')}.pub", "--namespace", "org.eve.*", "--valid-after", "someday"),
                "--valid-after")
    added = pds("pr", "add-pv", "--repo", w.pr, "--admin-key", w.admin, "--origin", "pv7.example",
                "--key", f"{w.key('alice')}.pub", "--json")
    assert added.returncode == 0, added.stderr
    assert len(json_of(added)["policy_commit"]) == 40
    broken = tmp_path / "pv.yaml"
    broken.write_text("version: 2\n")
    usage_error(pds("dev", "build", world["bytecode"], "--config", broken), "pv.yaml")
