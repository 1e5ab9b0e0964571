"""Pinned SSH host keys, for real: a PR and a log mirror served by a real sshd on 127.0.0.1;
`pds pv init --trust-host-key` records the server's key (and prints its fingerprint), the
PV's fetch and both of its pushes (PR area, mirror) and pds's own git calls refuse an empty
known_hosts and a changed host key; a failed `pds pv init` leaves nothing and can be re-run."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from pds_log.core.errors import PdsError
from pds_log.infra.gitremote import fetch_branch, push
from pds_log.pv.config import load_config
from pds_log.pv.pushes import push_mirrors, push_pr_area
from tests.sshd import Sshd, other_host_line
from tests.support import PDS, World, make_key, run

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (os.path.exists("/usr/sbin/sshd") and shutil.which("ssh-keyscan")),
                                 reason="needs openssh-server and openssh-client")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A PR (with one PV key authorised at sshd) and an empty mirror repo, both reachable over ssh."""
    root = tmp_path_factory.mktemp("sshpin")
    world = World(root)
    pv_key = make_key(root, "pv-ssh")
    stranger = make_key(root, "stranger")
    (root / "authorized_keys").write_text(Path(f"{pv_key}.pub").read_text())
    run(*PDS, "pr", "add-pv", "--repo", world.pr, "--admin-key", world.admin, "--origin", "pv1.example",
        "--key", f"{pv_key}.pub")
    run("git", "init", "-q", "--bare", "--initial-branch=main", root / "mirror.git")
    server = Sshd(root, [getpass.getuser()], str(root / "authorized_keys"))
    base = f"ssh://{getpass.getuser()}@127.0.0.1:{server.port}"
    try:
        yield {"world": world, "root": root, "sshd": server, "pv_key": pv_key, "stranger": stranger,
               "pr_url": f"{base}{world.pr}", "mirror_url": f"{base}{root / 'mirror.git'}",
               "mirror": root / "mirror.git"}
    finally:
        server.stop()


def init(site, directory: Path, *extra, key=None, check=True):
    return run(*PDS, "pv", "init", directory, "--origin", "pv1.example", "--pr", site["pr_url"],
               "--mirror", site["mirror_url"], "--ssh-key", key or site["pv_key"], *extra, "--json", check=check)


@pytest.fixture(scope="module")
def pv(site, tmp_path_factory):
    """A PV made with --trust-host-key, one epoch run over ssh."""
    directory = tmp_path_factory.mktemp("pv") / "pv1"
    made = json.loads(init(site, directory, "--trust-host-key").stdout)
    config = directory / "pv.yaml"
    first = json.loads(run(*PDS, "pv", "epoch", "--config", config, "--json").stdout)
    return {"dir": directory, "config": config, "init": made, "first": first}


def pr_area(site) -> str:
    return run("git", "--git-dir", site["world"].pr, "rev-parse", "-q", "--verify", "refs/heads/pvs/pv1.example",
               check=False).stdout.strip()


def mirror_head(site) -> str:
    return run("git", "--git-dir", site["mirror"], "rev-parse", "-q", "--verify", "refs/heads/main",
               check=False).stdout.strip()


def test_trust_host_key_records_the_servers_key_and_says_its_fingerprint(site, pv):
    assert pv["init"]["host_keys"] == [{"host": site["sshd"].known_hosts_name,
                                        "fingerprint": "ssh-ed25519 " + site["sshd"].fingerprint()}]
    assert (pv["dir"] / "keys" / "known_hosts").read_text() == site["sshd"].host_line() + "\n"
    doc = yaml.safe_load((pv["dir"] / "pv.yaml").read_text())
    assert doc["keys"]["known_hosts"] == "keys/known_hosts" and doc["pr"]["root"] == pv["init"]["pr_root"]
    # the PV's key is the one the PR admin was given, copied in
    assert (pv["dir"] / "keys" / "ssh_ed25519.pub").read_text().split()[:2] == \
        Path(f"{site['pv_key']}.pub").read_text().split()[:2]
    # the epoch fetched over ssh and both pushes went through with the pinned key
    assert pv["first"]["epoch"] == 1
    assert set(pv["first"]["pushes"].values()) == {"ok"}, pv["first"]["pushes"]
    assert pr_area(site) and mirror_head(site)


@pytest.mark.parametrize("pinned", ["empty", "changed"])
def test_fetch_refuses_an_unpinned_or_changed_host_key(site, pv, pinned):
    known = pv["dir"] / "keys" / "known_hosts"
    good = known.read_text()
    log_before = run("git", "--git-dir", pv["dir"] / "log.git", "rev-parse", "main").stdout
    known.write_text("" if pinned == "empty" else other_host_line(site["sshd"].known_hosts_name, site["root"]) + "\n")
    try:
        result = run(*PDS, "pv", "epoch", "--config", pv["config"], check=False)
    finally:
        known.write_text(good)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = ("unknown host key for 127.0.0.1" if pinned == "empty" else
                "host key of 127.0.0.1") + f":{site['sshd'].port}"
    assert expected in result.stderr and str(known) in result.stderr, result.stderr
    assert run("git", "--git-dir", pv["dir"] / "log.git", "rev-parse", "main").stdout == log_before  # signed nothing


@pytest.mark.parametrize("pinned", ["empty", "changed"])
def test_pushes_refuse_an_unpinned_or_changed_host_key(site, pv, pinned):
    """The PR-area push and the mirror push of a PV with one more epoch than the servers hold."""
    made = run(*PDS, "pv", "epoch", "--config", pv["config"], "--no-push", "--json")
    assert json.loads(made.stdout)["pushes"] == {}
    area, mirror = pr_area(site), mirror_head(site)
    known = pv["dir"] / "keys" / "known_hosts"
    good = known.read_text()
    known.write_text("" if pinned == "empty" else other_host_line(site["sshd"].known_hosts_name, site["root"]) + "\n")
    try:
        config = load_config(pv["config"])
        results = {"pr": push_pr_area(config), **push_mirrors(config)}
    finally:
        known.write_text(good)
    expected = "unknown host key for 127.0.0.1" if pinned == "empty" else "is not the one pinned in"
    for target, status in results.items():
        assert status.startswith("failed: ") and expected in status, (target, status)
    assert pr_area(site) == area and mirror_head(site) == mirror  # nothing reached either server
    config = load_config(pv["config"])  # and with the right key the next pushes go through
    assert push_pr_area(config) == "ok" and push_mirrors(config) == {site["mirror_url"]: "ok"}
    assert pr_area(site) != area and mirror_head(site) != mirror


def test_pds_git_calls_refuse_changed_and_unknown_host_keys(site, tmp_path):
    """gitremote (developers, PR admins, auditors): strict whatever the caller's ssh config says."""
    wrong, empty = tmp_path / "wrong", tmp_path / "empty"
    wrong.write_text(other_host_line(site["sshd"].known_hosts_name, site["root"]) + "\n")
    empty.write_text("")
    good = tmp_path / "good"
    good.write_text(site["sshd"].host_line() + "\n")
    repo, tip = fetch_branch(site["pr_url"], tmp_path / "clone.git", "main", site["pv_key"], good)
    for known, expected in ((wrong, "is not the one pinned"), (empty, "unknown host key")):
        with pytest.raises(PdsError, match=expected):
            fetch_branch(site["pr_url"], tmp_path / "clone.git", "main", site["pv_key"], known)
        with pytest.raises(PdsError, match=expected):
            push(tmp_path / "clone.git", site["mirror_url"], str(tip.id), "refs/heads/pinning-test",
                 site["pv_key"], known)
    assert run("git", "--git-dir", site["mirror"], "rev-parse", "-q", "--verify", "refs/heads/pinning-test",
               check=False).returncode != 0


def test_init_over_ssh_needs_a_pinned_host_key(site, tmp_path):
    """No --known-hosts, no --trust-host-key and no ~/.ssh/known_hosts: refused, nothing made."""
    home = tmp_path / "home"
    home.mkdir()
    directory = tmp_path / "pv"
    result = run(*PDS, "pv", "init", directory, "--origin", "pv1.example", "--pr", site["pr_url"],
                 "--ssh-key", site["pv_key"], check=False, env={**os.environ, "HOME": str(home)})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "host key must be pinned" in result.stderr and str(home / ".ssh" / "known_hosts") in result.stderr
    assert not directory.exists()
    # and without the PV's SSH key an ssh PR cannot be pinned: says what to do
    result = run(*PDS, "pv", "init", directory, "--origin", "pv1.example", "--pr", site["pr_url"],
                 "--trust-host-key", check=False)
    assert result.returncode != 0 and "--ssh-key KEY" in result.stderr and not directory.exists()


def test_failed_init_leaves_nothing_and_the_same_command_then_works(site, tmp_path):
    """The PR does not know the key yet: init fails saying so and removes what it made; once the
    key is authorised, the same command succeeds. An operator-made empty directory is kept."""
    directory = tmp_path / "pv"
    directory.mkdir()
    pinned = tmp_path / "known_hosts"
    pinned.write_text(site["sshd"].host_line() + "\n")
    first = init(site, directory, "--known-hosts", pinned, key=site["stranger"], check=False)
    assert first.returncode != 0 and "Traceback" not in first.stderr
    assert "refused the SSH key: check the SSH key given (--ssh-key)" in first.stderr, first.stderr
    assert directory.is_dir() and list(directory.iterdir()) == []
    nested = tmp_path / "new" / "pv"  # directories init made itself go too
    assert init(site, nested, "--known-hosts", pinned, key=site["stranger"], check=False).returncode != 0
    assert not (tmp_path / "new").exists()
    authorized = site["root"] / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + Path(f"{site['stranger']}.pub").read_text())
    try:
        second = init(site, directory, "--known-hosts", pinned, key=site["stranger"])
    finally:
        authorized.write_text(before)
    made = json.loads(second.stdout)
    assert made["pr_root"] and (directory / "pv.yaml").is_file()
    assert not (directory / ".pds-init-incomplete").exists()
    assert (directory / "keys" / "known_hosts").read_text() == pinned.read_text()


def test_an_init_killed_halfway_is_completed_by_the_next(site, tmp_path):
    """A directory left by an init that never finished (its marker is there) is cleared and
    made anew; a directory without the marker is never touched."""
    directory = tmp_path / "pv"
    (directory / "keys").mkdir(parents=True)
    (directory / "keys" / "note.key").write_text("half-written")
    (directory / ".pds-init-incomplete").write_text("")
    pinned = tmp_path / "known_hosts"
    pinned.write_text(site["sshd"].host_line() + "\n")
    made = json.loads(init(site, directory, "--known-hosts", pinned).stdout)
    assert made["pr_root"] and (directory / "keys" / "note.key").read_text() != "half-written"
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "data").write_text("keep")
    refused = init(site, other, "--known-hosts", pinned, check=False)
    assert refused.returncode != 0 and "refusing to overwrite" in refused.stderr
    assert (other / "data").read_text() == "keep"
