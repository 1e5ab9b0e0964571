"""Auditing a PV log: an honest 30-epoch log is clean; each tampering, done with plain git on a
clone, is caught with the right message; monitors and gossip catch a lying PV."""

import json
import time

import pytest

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding
from pds_log.core.note import NoteSigner
from pds_log.core.signed_root import TreeHead, open_str, sign_str
from pds_log.pv.config import load_config
from pds_log.pv.epoch import EpochOptions, run_epoch
from pds_log.pv.publish import publish
from tests.support import PDS, StaticServer, World, forge_epoch, forger_clone, run, write_trust

pytestmark = pytest.mark.slow  # a 30-epoch PV log, audited

FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}
EXAMPLES = ["org.pds.examples.rtt_monitor", "org.pds.examples.cwin_total", "org.pds.examples.local_call",
            "org.pds.examples.state_logger"]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """30 epochs with plugins added, updated, rejected and deleted along the way."""
    world = World(tmp_path_factory.mktemp("audit"))
    config_path = world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects")
    config = load_config(config_path)
    for e in range(1, 31):
        if e % 3 == 1:
            batch = {f"org.pds.a{e}.p{i}": EXAMPLES[(e + i) % len(EXAMPLES)] for i in range(3)}
            if e > 4:
                batch[f"org.pds.a{e - 3}.p0"] = EXAMPLES[e % len(EXAMPLES)]  # an update
            delete = (f"org.pds.a{e - 6}.p1",) if e > 7 else ()
            world.push_plugins(batch, delete=delete, message=f"batch {e}")
        run_epoch(config, EpochOptions(push=e % 10 == 0))
    start = time.perf_counter()
    result = run(*PDS, "audit", config.log_repo, "--pr", world.pr, "--json")
    seconds = time.perf_counter() - start
    return {"world": world, "config": config, "report": json.loads(result.stdout), "seconds": seconds}


def test_honest_30_epochs_audit_clean(honest, capsys):
    report = honest["report"]
    assert report["ok"] and report["epochs"] == 30, report["findings"]
    with capsys.disabled():
        print(f"\n[audit] 30 epochs, {report['plugins']} plugins: {honest['seconds']:.2f} s wall "
              f"({report['seconds']:.2f} s in the auditor)")


@pytest.fixture
def clone(honest, tmp_path):
    return forger_clone(honest["config"].log_repo, tmp_path / "clone")


def audit(path, *extra):
    result = run(*PDS, "audit", path, *extra, check=False)
    return result.returncode, result.stdout


def some_binding_path(clone):
    return sorted((clone / "bindings").rglob("*.json"))[0]


def test_changed_binding(clone):
    path = some_binding_path(clone)
    binding = Binding.decode(path.read_bytes())
    forged = Binding.create(binding.name, binding.manifest_path, binding.manifest_sha256,
                            {p: "ee" * 32 for p in binding.pluglets}, binding.source, binding.properties)
    path.write_bytes(forged.encode())
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone)
    assert code == 1
    assert "epoch 30: tree: bindings rebuild to root" in out
    assert f"epoch 30: silent change: updated without a record: {binding.name}" in out


def test_removed_leaf(clone):
    path = some_binding_path(clone)
    name = path.name[:-5]
    path.unlink()
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone)
    assert code == 1 and "epoch 30: tree:" in out and f"removed without a record: {name}" in out


def test_str_resigned_with_another_key(clone):
    other = NoteSigner.generate("pv1.example")
    latest = (clone / layout.LATEST_STR).read_bytes()
    text = latest.split(b"\n\n")[0].decode() + "\n"
    head = TreeHead.parse_text(text)
    forged = sign_str(head, other).note
    (clone / layout.LATEST_STR).write_bytes(forged)
    (clone / layout.str_path(30)).write_bytes(forged)
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone)
    assert code == 1 and "epoch 30: signature: STR does not verify" in out


def test_dropped_epoch(clone):
    # rebuild the chain without epoch 20, with plain git plumbing
    commits = run("git", "-C", clone, "rev-list", "--reverse", "HEAD").stdout.split()
    parent = commits[18]  # epoch 19
    for commit in commits[20:]:
        tree = run("git", "-C", clone, "rev-parse", f"{commit}^{{tree}}").stdout.strip()
        message = run("git", "-C", clone, "log", "-1", "--format=%B", commit).stdout
        parent = run("git", "-C", clone, "commit-tree", tree, "-p", parent, "-m", message).stdout.strip()
    run("git", "-C", clone, "reset", "-q", "--hard", parent)
    code, out = audit(clone)
    assert code == 1 and "epoch 20: history: commit" in out and "an epoch was dropped" in out


def test_two_strs_for_one_epoch(honest, clone):
    signer = honest["config"].signer()
    old = open_str((clone / layout.str_path(12)).read_bytes(), signer.verifier())
    h = old.head
    second = sign_str(TreeHead(h.origin, h.epoch, h.root, h.prev, h.time + 5, h.pr, h.size, h.policy), signer).note
    (clone / layout.str_path(12)).write_bytes(second)
    run("git", "-C", clone, "commit", "-q", "-a", "--amend", "--no-edit")
    code, out = audit(clone)
    assert code == 1 and "the STR of epoch 12 was changed or removed (two STRs for epoch 12)" in out


def test_history_rewrite_against_a_previous_audit(honest, clone, tmp_path):
    state = tmp_path / "audit-state.json"
    code, out = audit(clone, "--state", state)
    assert code == 0, out
    forge_epoch(clone, honest["config"].signer(), lambda bindings: bindings.pop(sorted(bindings)[0]))
    code, out = audit(clone, "--state", state)
    assert code == 1 and "history rewritten: epoch 30 differs from the one audited before" in out


def test_bytecode_that_differs_from_the_prs(honest, clone):
    def swap(bindings):
        name = sorted(bindings)[0]
        b = bindings[name]
        first = sorted(b.pluglets)[0]
        bindings[name] = Binding.create(b.name, b.manifest_path, b.manifest_sha256,
                                        {**b.pluglets, first: "ab" * 32}, b.source, b.properties)

    forge_epoch(clone, honest["config"].signer(), swap)
    code, out = audit(clone)  # consistent lie: the log alone cannot tell (except records/results)
    assert "epoch 30: tree:" not in out
    code, out = audit(clone, "--pr", honest["world"].pr)
    assert code == 1 and "bytecode:" in out and "differs from the PR's" in out


def test_monitor_catches_a_binding_the_developer_never_pushed(honest, clone, tmp_path):
    world, config = honest["world"], honest["config"]
    victim = {}

    def swap(bindings):
        name = sorted(n for n in bindings if n.startswith("org.pds.a"))[0]
        b = bindings[name]
        victim["name"] = name
        bindings[name] = Binding.create(b.name, b.manifest_path, b.manifest_sha256,
                                        {p: "cd" * 32 for p in b.pluglets}, b.source, b.properties)

    forge_epoch(clone, config.signer(), swap)
    honest_site, lying_site = tmp_path / "honest", tmp_path / "lying"
    publish(config.log_repo, honest_site, human_site=False)
    publish(clone, lying_site, human_site=False)
    servers = [StaticServer(honest_site), StaticServer(lying_site)]
    try:
        vkey = str(config.signer().verifier())
        for label, server in (("honest", servers[0]), ("liar", servers[1])):
            trust = write_trust(tmp_path / f"trust-{label}.yaml", {label: (vkey, [server.url])}, label,
                                state=tmp_path / f"state-{label}.json")
            result = run(*PDS, "monitor", "--developer", f"{world.keys['alice']}.pub", "--trust", trust,
                         "--pr", world.pr, check=False)
            alerts = [ln for ln in result.stdout.splitlines() if ln.startswith("ALERT")]
            if label == "honest":
                assert result.returncode == 0 and not alerts, result.stdout + result.stderr
                assert f"OK          {victim['name']} @ honest" in result.stdout
            else:
                assert result.returncode == 1 and len(alerts) == 1, result.stdout + result.stderr
                assert victim["name"] in alerts[0] and "bytes you never pushed" in alerts[0]
        # a peer that sees both now holds two different STRs for epoch 30: the monitor alerts
        both = write_trust(tmp_path / "trust.yaml", {"honest": (vkey, [servers[0].url]),
                                                     "liar": (vkey, [servers[1].url])}, "honest & liar")
        result = run(*PDS, "monitor", "--developer", f"{world.keys['alice']}.pub", "--trust", both,
                     "--pr", world.pr, check=False)
        assert result.returncode == 1 and "the PV equivocated" in result.stdout

        # the two mirrors now show two different STRs for epoch 30: gossip proves it
        evidence_dir = tmp_path / "evidence"
        gossip = run(*PDS, "gossip", "--trust", both, "--out", evidence_dir, "--state", tmp_path / "s.json",
                     check=False)
        assert gossip.returncode == 1 and "epoch 30: EQUIVOCATION" in gossip.stdout
        evidence = next(evidence_dir.glob("equivocation-pv1.example-epoch30.json"))
        check = run(*PDS, "note", "verify", evidence, vkey)
        assert "valid: proof of equivocation: pv1.example signed two different STRs for epoch 30" in check.stdout
    finally:
        for server in servers:
            server.stop()
