"""The PR's commit rules (pds_log.core.changes) judged directly on in-memory changes: no git,
no signatures (the signer is the verified key the git side would pass)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pds_log.core.changes import (
    MODE_EXECUTABLE,
    MODE_FILE,
    MODE_SUBMODULE,
    MODE_SYMLINK,
    MODE_TREE,
    ChangeSet,
    CommitVerdict,
    FileChange,
    PluginContent,
    file_problem,
    judge_changes,
    judge_pv_area_changes,
)
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.policy import Policy, key_id, parse_time


def ed25519(seed: int) -> str:
    """An OpenSSH ed25519 public key line (any 32 bytes will do: nothing is verified here)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


ADMIN, ALICE, PV = ed25519(1), ed25519(2), ed25519(3)
T0 = 1_800_000_000


def policy(**extra) -> Policy:
    p = Policy.parse(f"version: 1\nmax_blob_bytes: 1000\nadmins:\n  - {{name: root, key: {ADMIN}}}\n")
    p.add_developer("alice", ALICE, ["org.pds.*"], extra.get("after"), extra.get("before"))
    p.add_pv("pv1.example", PV)
    return p


def ebpf_object() -> bytes:
    """The smallest file check_pluglets takes for an eBPF ELF object (64-bit LE, e_machine 247)."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5], header[6] = 2, 1, 1
    header[16:18] = (1).to_bytes(2, "little")  # ET_REL
    header[18:20] = (247).to_bytes(2, "little")
    return bytes(header)


def plugin(name: str, manifest: bytes | None = None) -> dict[str, bytes]:
    short = name.rsplit(".", 1)[-1]
    return {f"{short}.plugin": manifest if manifest is not None else f"{name}\nupdate_rtt post p.o\n".encode(),
            "p.o": ebpf_object()}


def change_set(plugins: dict[str, dict[str, bytes] | None], extra: list[FileChange] = (), **kw) -> ChangeSet:
    files = [FileChange(f"plugins/{n}/{p}", MODE_FILE, len(d)) for n, fs in plugins.items() if fs
             for p, d in fs.items()]
    files += [FileChange(f"plugins/{n}/gone.o", None) for n, fs in plugins.items() if fs is None]
    contents = {n: PluginContent(files=fs) if fs is not None else PluginContent(deleted=True)
                for n, fs in plugins.items()}
    return ChangeSet([*files, *extra], contents, **kw)


def judge(changes: ChangeSet, signer: str = ALICE, pol: Policy | None = None, when: int = T0) -> CommitVerdict:
    pol = pol or policy()
    verdict = CommitVerdict("c" * 40, signer=pol.name_of(signer), key=signer)
    return judge_changes(changes, signer, pol, when, verdict)


def test_a_good_plugin_passes_and_a_deleted_one_needs_no_manifest():
    verdict = judge(change_set({"org.pds.a": plugin("org.pds.a"), "org.pds.gone": None}))
    assert verdict.ok, verdict.reasons
    assert verdict.plugins == ["org.pds.a", "org.pds.gone"]


def test_a_bad_manifest_is_refused_and_attributed_to_its_plugin_alone():
    verdict = judge(change_set({"org.pds.a": plugin("org.pds.a"), "org.pds.b": plugin("org.pds.b", b"\x00bad"),
                                "org.pds.c": plugin("org.pds.c")}))
    assert not verdict.ok
    assert list(verdict.plugin_reasons) == ["org.pds.b"]
    assert verdict.plugin_reasons["org.pds.b"][0].startswith("plugins/org.pds.b: malformed manifest")
    assert verdict.refused_alone() == (["org.pds.b"], ["org.pds.a", "org.pds.c"])


def test_a_commit_level_reason_means_no_plugin_can_be_split_off():
    extra = [FileChange("pds/policy.yaml", MODE_FILE, 10)]
    verdict = judge(change_set({"org.pds.a": plugin("org.pds.a"), "org.pds.b": plugin("org.pds.b", b"\x00")},
                               extra, policy_text=b"version: 1\n"))
    assert "pds/policy.yaml: signer alice is not an admin and may not change the policy" in verdict.reasons
    assert verdict.refused_alone() is None


@pytest.mark.parametrize("change, reason", [
    (FileChange("plugins/org.pds.a/l", MODE_SYMLINK), "plugins/org.pds.a/l: symlinks are not allowed"),
    (FileChange("plugins/org.pds.a/s", MODE_SUBMODULE), "plugins/org.pds.a/s: submodules are not allowed"),
    (FileChange("plugins/org.pds.a/t", MODE_TREE), "plugins/org.pds.a/t: unsupported file mode 40000"),
    (FileChange("plugins/org.pds.a/big", MODE_EXECUTABLE, 1001), "plugins/org.pds.a/big: 1001 bytes, over the "
                                                                  "1000-byte limit"),
    (FileChange("plugins/org.pds.a/../x", MODE_FILE, 1), "plugins/org.pds.a/../x"),
    (FileChange("plugins/top", MODE_FILE, 1), "plugins/top: files directly under plugins/ are not allowed"),
    (FileChange("plugins/nodots/x", MODE_FILE, 1), "plugins/nodots/x: invalid plugin name 'nodots'"),
    (FileChange("pvs/pv1.example/x", MODE_FILE, 1), "PV areas live on refs/heads/pvs/<origin>"),
    (FileChange("README.md", MODE_FILE, 1), "README.md: signer alice is not an admin and may not change files "
                                            "outside plugins/"),
])
def test_file_and_path_rules(change, reason):
    verdict = judge(change_set({"org.pds.a": plugin("org.pds.a")}, [change]))
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_namespace_and_validity_window():
    outside = judge(change_set({"be.other.x": plugin("be.other.x")}))
    assert outside.reasons == ["plugins/be.other.x/ (2 files): signer alice may not write outside org.pds.*"]
    assert outside.plugin_reasons == {"be.other.x": outside.reasons}
    late = judge(change_set({"org.pds.a": plugin("org.pds.a")}), pol=policy(before=T0))
    assert "alice's key expired at" in late.reasons[0]
    assert judge(change_set({"org.pds.a": plugin("org.pds.a")}), pol=policy(before=T0 + 1)).ok


def test_root_commit_and_policy_changes_need_an_admin_and_a_parseable_policy():
    root = judge(change_set({"org.pds.a": plugin("org.pds.a")}, root=True))
    assert root.reasons == ["root commit must be signed by an admin of its own policy, not alice"]
    edit = [FileChange("pds/policy.yaml", MODE_FILE, 5)]
    assert judge(ChangeSet(edit, {}, policy_text=policy().to_yaml().encode()), signer=ADMIN).ok
    broken = judge(ChangeSet(edit, {}, policy_text=b"version: 2\n"), signer=ADMIN)
    assert broken.reasons == ["pds/policy.yaml@cccccccccccc: version must be 1"]
    gone = judge(ChangeSet([FileChange("pds/policy.yaml", None)], {}, policy_problem="commit x has no pds/policy.yaml"),
                 signer=ADMIN)
    assert gone.reasons == ["commit x has no pds/policy.yaml"]


def test_plugin_content_problems_are_the_plugins():
    changes = ChangeSet([FileChange("plugins/org.pds.a/x", MODE_FILE, 1)],
                        {"org.pds.a": PluginContent(problem="plugins/org.pds.a: more than 1000 files")})
    verdict = judge(changes)
    assert verdict.plugin_reasons == {"org.pds.a": ["plugins/org.pds.a: more than 1000 files"]}


def test_pv_area_rules_share_the_file_rule():
    pol = policy()
    ok = judge_pv_area_changes(ChangeSet([FileChange("pvs/pv1.example/latest.note", MODE_FILE, 10)], {}), PV,
                               "pv1.example", pol)
    assert ok.ok
    bad = judge_pv_area_changes(ChangeSet([FileChange("pvs/pv1.example/l", MODE_SYMLINK),
                                           FileChange("pvs/pv1.example/big", MODE_FILE, 5000),
                                           FileChange("pvs/other/x", MODE_FILE, 1)], {}), ALICE, "pv1.example", pol)
    assert bad.reasons[0].startswith("only the key of PV pv1.example may write its area")
    assert file_problem(FileChange("pvs/pv1.example/l", MODE_SYMLINK), 1000) in bad.reasons
    assert "pvs/pv1.example/big: 5000 bytes, over the 1000-byte limit" in bad.reasons
    assert "pvs/other/x: PV pv1.example may write only under pvs/pv1.example/" in bad.reasons


def test_policy_edits_are_policy_methods():
    pol = policy()
    assert pol.add_developer("bob", ALICE, ["be.bob.*"], parse_time("1800000000", "t"),
                             parse_time("2030-01-01T00:00:00Z", "t")) == "policy: developer bob may write be.bob.*"
    assert pol.may_write_plugin(ALICE, "be.bob.x", T0 + 1) is None
    with pytest.raises(FormatError, match="--valid-after: 'soon' is not an ISO 8601 time"):
        parse_time("soon", "--valid-after")
    with pytest.raises(FormatError, match="invalid namespace pattern"):
        pol.add_developer("bob", ALICE, ["be..*"])
    with pytest.raises(FormatError, match="valid_after must be before valid_before"):
        pol.add_developer("bob", ALICE, ["be.bob.*"], T0, T0)
    pol.add_pv("pv1.example", ALICE)
    assert pol.pv_origin(ALICE) == ["pv1.example"] and pol.pv_origin(PV) == []
    with pytest.raises(FormatError):
        pol.add_pv("a/b", PV)
    assert pol.revoke(ALICE, "lost") == "policy: revoke a key (lost)"
    assert "revoked (lost)" in pol.key_problem(ALICE, T0)
    with pytest.raises(PdsError, match="only admin"):
        pol.revoke(ADMIN, "oops")
    assert Policy.parse(pol.to_yaml()).revoked == {key_id(ALICE): "lost"}


def test_judging_touches_only_the_plugins_it_is_asked_about():
    class Watching(dict):
        asked: list[str] = []

        def __getitem__(self, name):
            self.asked.append(name)
            return super().__getitem__(name)

    contents = Watching({"org.pds.a": PluginContent(files=plugin("org.pds.a")),
                         "org.pds.untouched": PluginContent(problem="must not be read")})
    judge(ChangeSet([FileChange("plugins/org.pds.a/p.o", MODE_FILE, 64)], contents))
    assert Watching.asked == ["org.pds.a"]


def test_the_core_module_does_no_io():
    source = (Path(__file__).parents[2] / "pds_log" / "core" / "changes.py").read_text()
    for module in ("pygit2", "subprocess", "os", "pathlib", "socket"):
        assert f"import {module}" not in source
