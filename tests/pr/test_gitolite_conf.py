"""`pds pr gitolite-conf` (the PDS rules merged into gitolite-admin's conf, its admin rule kept)
and `pds pr gitolite-hooks`' refusals, on files; the real gitolite runs in test_gitolite.py."""

from __future__ import annotations

import os
import pwd
import sys

import pytest

from pds_log.infra.resources import template
from tests.support import PDS, run

SETUP_CONF = "repo gitolite-admin\n    RW+     =   gladmin\n\nrepo testing\n    RW+     =   @all\n"


def test_merge_keeps_what_gitolite_setup_wrote_and_adds_the_pds_rules(tmp_path):
    conf = tmp_path / "gitolite.conf"
    conf.write_text(SETUP_CONF)
    result = run(*PDS, "pr", "gitolite-conf", conf)
    assert "merged" in result.stdout
    merged = conf.read_text()
    assert merged.startswith(SETUP_CONF)
    rules = template("gitolite", "gitolite.conf").read_text()
    assert merged.endswith(rules) and "repo pr\n" in merged


def test_merge_refuses_rules_twice_and_a_conf_that_locks_the_admin_out(tmp_path):
    conf = tmp_path / "gitolite.conf"
    conf.write_text(SETUP_CONF)
    run(*PDS, "pr", "gitolite-conf", conf)
    once = conf.read_text()
    again = run(*PDS, "pr", "gitolite-conf", conf, check=False)
    assert again.returncode != 0 and "already has rules for repo pr" in again.stderr
    assert conf.read_text() == once
    for text in ("repo testing\n    RW+ = @all\n",                           # the template replaced the file
                 "repo gitolite-admin\n    RW      =   gladmin\n",         # no RW+ left on gitolite-admin
                 "repo gitolite-admin\n    # RW+ = gladmin\n"):            # a commented-out rule is no rule
        conf.write_text(text)
        refused = run(*PDS, "pr", "gitolite-conf", conf, check=False)
        assert refused.returncode != 0 and "lock the gitolite admin out" in refused.stderr, text
        assert "Traceback" not in refused.stderr and conf.read_text() == text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root (CI runs as root)")
def test_gitolite_hooks_refuse_a_python_the_owner_cannot_run(tmp_path):
    """A Python in a directory closed to the gitolite user (a venv under /root, say): refused,
    and no hook written that would fail every push."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python").symlink_to(os.path.realpath(sys.executable))
    nobody = pwd.getpwnam("nobody").pw_name
    hooks = tmp_path / "hooks"
    result = run(*PDS, "pr", "gitolite-hooks", hooks, "--owner", nobody, "--python", closed / "python", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"user {nobody} cannot run the hooks with {closed / 'python'}" in result.stderr, result.stderr
    assert not hooks.exists()
    unknown = run(*PDS, "pr", "gitolite-hooks", hooks, "--owner", "no-such-user-pds", check=False)
    assert unknown.returncode != 0 and "no such user" in unknown.stderr
