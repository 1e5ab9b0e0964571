"""deployment.md's gitolite and validator commands, run as written, against a real gitolite3
behind a real sshd on 127.0.0.1 (a free port, not 22) with a gitolite user that is not `git`:
the server setup, the admin's keys and rules, the PR's content, a PV created over ssh with its
host key recorded, and its first epoch fetching and pushing over ssh. Then the PR this built:
a developer allowed and denied by namespace, a force push denied, the PV writing its area and
denied elsewhere. Needs root (to create the users and run sshd), as in CI.

The blocks are the ```sh blocks that follow a `<!-- pds-test: NAME -->` line; the test replaces
only the `VARIABLE=value` lines at their top (every one of them: an unknown variable fails)."""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.sshd import Sshd
from tests.support import PDS, ROOT, Workspace, build_example, make_key, run

pytestmark = pytest.mark.slow

DEPLOYMENT = ROOT / "site" / "docs" / "deployment.md"
GITOLITE = shutil.which("gitolite")
VENV_BIN = Path(sys.executable).parent  # this checkout's venv: its `pds` is this checkout's


def doc_block(name: str) -> str:
    blocks = re.findall(rf"<!-- pds-test: {re.escape(name)} -->\n```sh\n(.*?)```", DEPLOYMENT.read_text(), re.S)
    assert len(blocks) == 1, f"deployment.md has {len(blocks)} blocks marked pds-test: {name}"
    return blocks[0]


def as_written(name: str, values: dict[str, str]) -> str:
    """Block `name` with its leading VARIABLE=value lines set to `values` (all of them, no other)."""
    lines, seen = [], set()
    for line in doc_block(name).splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=\S+(\s+#.*)?$", line)
        if m:
            assert m.group(1) in values, f"deployment.md block {name}: the test has no value for {m.group(1)}"
            lines.append(f"{m.group(1)}={shlex.quote(values[m.group(1)])}")
            seen.add(m.group(1))
        else:
            lines.append(line)
    assert seen == set(values), f"deployment.md block {name} no longer sets {set(values) - seen}"
    return "\n".join(lines) + "\n"


def run_block(name: str, values: dict[str, str], cwd: Path, env: dict[str, str]) -> str:
    script = as_written(name, values)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"deployment.md block {name} failed:\n{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def open_traversal(paths) -> dict[Path, int]:
    """Let the gitolite and PV users reach this Python and this checkout (here under /root and
    /work: on a real host pds is in /opt/pds): add o+x to every ancestor directory that lacks it;
    returns the original modes to restore."""
    changed = {}
    for path in paths:
        for parent in Path(path).resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                changed[parent] = mode
                parent.chmod(mode | 0o001)
    return changed


def as_user(user, home, *args, check=True):
    return run("runuser", "-u", user, "--", "env", f"HOME={home}", f"PATH={os.environ['PATH']}", *args,
               check=check)


def ssh_env(key: Path, known_hosts: Path) -> dict[str, str]:
    """What a person's ssh setup gives their git: their key, the server's checked host key."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.org",
            "GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
                               f"-o UserKnownHostsFile={known_hosts} -o LogLevel=ERROR"}


@pytest.fixture(scope="module")
def gitolite(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the gitolite integration test needs root (CI runs as root)")
    assert GITOLITE and os.path.exists("/usr/sbin/sshd"), "gitolite3 and openssh-server come from scripts/bootstrap"
    assert (VENV_BIN / "pds").exists(), f"no pds entry point next to {sys.executable}"
    tag = random.randrange(10**6)
    user, pv_user = f"gitolite3x{tag}", f"pdspv{tag}"  # Debian's default name is gitolite3; never `git`
    base = Path(f"/tmp/{user}")  # traversable by the gitolite and PV users, unlike pytest's 0700 tmp
    base.mkdir(mode=0o755)
    home, pv_home = base / "gitolite-home", base / "srv-pds"
    gladmin_dir, admin_dir = base / "gitolite-admin-desk", base / "pds-admin-desk"
    for d in (gladmin_dir, admin_dir):
        d.mkdir(mode=0o700)
    people = base / "developers"
    people.mkdir(mode=0o700)
    keys = {n: make_key(people, n) for n in ("alice", "bob")}
    keys["pdsadmin"] = make_key(admin_dir, "pdsadmin")
    keys["gladmin"] = make_key(gladmin_dir, "gladmin")
    restore = open_traversal([os.path.realpath(sys.executable), VENV_BIN / "pds", ROOT / "pds_log"])
    server = None
    try:
        pr_server = run_block("pr-server", {"GL_USER": user, "GL_HOME": str(home), "PDS": str(VENV_BIN / "pds"),
                                            "GL_ADMIN_PUB": f"{keys['gladmin']}.pub"}, base, dict(os.environ))
        (base / "sshd").mkdir()
        server = Sshd(base / "sshd", [user], ".ssh/authorized_keys")
        known_hosts = base / "checked_known_hosts"  # what each person checked out of band
        known_hosts.write_text(server.host_line() + "\n")
        pr_ssh = f"ssh://{user}@127.0.0.1:{server.port}"
        run_block("pv-key", {"PV_USER": pv_user, "PV_HOME": str(pv_home)}, base, dict(os.environ))
        keys["pv1"] = pv_home / "pv1-ssh"
        for desk in (gladmin_dir, admin_dir):
            for name in ("pdsadmin", "alice", "bob"):
                if not (desk / f"{name}.pub").exists():
                    shutil.copy(f"{keys[name]}.pub", desk / f"{name}.pub")
            shutil.copy(pv_home / "pv1-ssh.pub", desk / "pv1.pub")
        run_block("gitolite-admin", {"PR_SSH": pr_ssh}, gladmin_dir, ssh_env(keys["gladmin"], known_hosts))
        run_block("pr-content", {"PR_SSH": pr_ssh}, admin_dir, ssh_env(keys["pdsadmin"], known_hosts))
        pv_out = run_block("pv-init", {"PV_USER": pv_user, "PV_HOME": str(pv_home), "PDS": str(VENV_BIN / "pds"),
                                       "PR_URL": f"{pr_ssh}/pr"}, base, dict(os.environ))
        world = {"user": user, "home": home, "port": server.port, "keys": keys, "base": base,
                 "known_hosts": known_hosts, "pr_ssh": pr_ssh, "pv_home": pv_home, "pv_user": pv_user,
                 "pv_out": pv_out, "pr_server_out": pr_server, "admin_dir": admin_dir, "gladmin_dir": gladmin_dir,
                 "sshd": server}
        widen_alice(world)
        yield world
    finally:
        if server is not None:
            server.stop()
        for name in (user, pv_user):
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        for path, mode in restore.items():
            path.chmod(mode)


def widen_alice(world):
    """The PDS policy lets alice write org.shared.* too; the gitolite rules do not: both layers gate."""
    admin = world["admin_dir"]
    run(*PDS, "pr", "add-developer", "--repo", admin / "pr.git", "--admin-key", admin / "pdsadmin", "--name", "alice",
        "--key", admin / "alice.pub", "--namespace", "be.example.*", "--namespace", "org.shared.*")
    run("git", "--git-dir", admin / "pr.git", "push", "-q", f"{world['pr_ssh']}/pr", "main",
        env=ssh_env(world["keys"]["pdsadmin"], world["known_hosts"]))


def url(world, repo):
    return f"{world['pr_ssh']}/{repo}"


def workspace(world, key, tmp_path):
    env_before = os.environ.get("GIT_SSH_COMMAND")
    os.environ["GIT_SSH_COMMAND"] = ssh_env(world["keys"][key], world["known_hosts"])["GIT_SSH_COMMAND"]
    try:
        return Workspace(url(world, "pr"), tmp_path / f"ws-{key}", key)
    finally:
        if env_before is None:
            os.environ.pop("GIT_SSH_COMMAND")
        else:
            os.environ["GIT_SSH_COMMAND"] = env_before


def push(world, ws, key, ref="main", *extra):
    env = ssh_env(world["keys"][key], world["known_hosts"])
    return run("git", "-C", ws.path, "push", *extra, "origin", f"HEAD:{ref}" if ":" not in ref else ref,
               env=env, check=False)


def test_the_documented_setup_gives_a_pv_fetching_and_pushing_over_ssh(gitolite):
    pv = gitolite["pv_home"] / "pv1"
    doc = yaml.safe_load((pv / "pv.yaml").read_text())
    assert doc["pr"]["url"] == f"ssh://{gitolite['user']}@127.0.0.1:{gitolite['port']}/pr"  # not git@
    assert doc["pr"]["root"] and doc["keys"]["known_hosts"] == "keys/known_hosts"
    assert (pv / "keys" / "known_hosts").read_text() == gitolite["sshd"].host_line() + "\n"
    assert gitolite["sshd"].fingerprint() in gitolite["pv_out"]  # printed, for the operator to check
    assert "epoch 1 of pv1.example" in gitolite["pv_out"] and "push pr: ok" in gitolite["pv_out"]
    assert (pv / "log.git").stat().st_uid == (gitolite["pv_home"] / "pv1-ssh").stat().st_uid != 0  # the PV's user
    area = run("git", "ls-remote", url(gitolite, "pr"), "refs/heads/pvs/pv1.example",
               env=ssh_env(gitolite["keys"]["alice"], gitolite["known_hosts"])).stdout
    assert area.strip(), "the PV's STR never reached its PR area"


def test_hooks_belong_to_the_gitolite_user_and_run_its_python(gitolite):
    hooks = gitolite["home"] / "local" / "hooks" / "repo-specific"
    uid = (gitolite["home"]).stat().st_uid
    for path in (gitolite["home"] / "local", gitolite["home"] / "local" / "hooks", hooks,
                 hooks / "pds-pre-receive", hooks / "pds-post-receive"):
        assert path.stat().st_uid == uid, path
    assert (hooks / "pds-pre-receive").read_text().startswith(f"#!{VENV_BIN / 'python'}\n")


def test_a_clone_of_the_pr_checks_out_the_plugin_branch(gitolite, tmp_path):
    """gitolite made repo pr with HEAD on master; the post-receive hook moved it to main."""
    env = ssh_env(gitolite["keys"]["bob"], gitolite["known_hosts"])
    run("git", "clone", "-q", url(gitolite, "pr"), tmp_path / "clone", env=env)
    assert (tmp_path / "clone" / "pds" / "policy.yaml").is_file()
    head = run("git", "ls-remote", "--symref", url(gitolite, "pr"), "HEAD", env=env).stdout
    assert head.startswith("ref: refs/heads/main\tHEAD"), head


def test_the_merged_conf_kept_the_gitolite_admin_rule(gitolite, tmp_path):
    env = ssh_env(gitolite["keys"]["gladmin"], gitolite["known_hosts"])
    conf = (gitolite["gladmin_dir"] / "gitolite-admin" / "conf" / "gitolite.conf").read_text()
    assert "repo gitolite-admin" in conf and "repo pr" in conf
    clone = tmp_path / "gitolite-admin"
    run("git", "clone", "-q", url(gitolite, "gitolite-admin"), clone, env=env)  # the admin still gets in
    (clone / "note").write_text("the admin can still push\n")
    run("git", "-C", clone, "add", "note", env=env)
    run("git", "-C", clone, "commit", "-qm", "note", env=env)
    run("git", "-C", clone, "push", "-q", "origin", "HEAD", env=env)
    # and pds refuses to write a conf that would lock the admin out
    bare = tmp_path / "bare.conf"
    bare.write_text("repo testing\n    RW+ = @all\n")
    refused = run(*PDS, "pr", "gitolite-conf", bare, check=False)
    assert refused.returncode != 0 and "lock the gitolite admin out" in refused.stderr
    assert bare.read_text() == "repo testing\n    RW+ = @all\n"
    again = run(*PDS, "pr", "gitolite-conf", gitolite["gladmin_dir"] / "gitolite-admin" / "conf" / "gitolite.conf",
                check=False)
    assert again.returncode != 0 and "already has rules for repo pr" in again.stderr


def test_developer_allowed_in_namespace(gitolite, tmp_path):
    ws = workspace(gitolite, "alice", tmp_path)
    ws.add_plugin(build_example("org.pds.examples.rtt_monitor", tmp_path, rename="be.example.rtt"))
    ws.commit("alice adds a plugin", gitolite["keys"]["alice"])
    result = push(gitolite, ws, "alice")
    assert result.returncode == 0, result.stderr


def test_developer_denied_outside_namespace_by_the_pds_hook(gitolite, tmp_path):
    ws = workspace(gitolite, "alice", tmp_path)
    ws.add_plugin(build_example("org.pds.examples.rtt_monitor", tmp_path, rename="org.bob.rtt"))
    ws.commit("alice writes bob's namespace", gitolite["keys"]["alice"])
    result = push(gitolite, ws, "alice")
    assert result.returncode != 0
    assert "plugins/org.bob.rtt/ (4 files): signer alice may not write outside be.example.*" in result.stderr


def test_developer_denied_outside_namespace_by_gitolite_vref(gitolite, tmp_path):
    """The PDS policy would allow this path; gitolite's VREF/NAME rule does not."""
    ws = workspace(gitolite, "alice", tmp_path)
    ws.add_plugin(build_example("org.pds.examples.rtt_monitor", tmp_path, rename="org.shared.rtt"))
    ws.commit("alice writes org.shared", gitolite["keys"]["alice"])
    result = push(gitolite, ws, "alice")
    assert result.returncode != 0
    assert "DENIED" in result.stderr and "VREF/NAME/plugins/org.shared.rtt" in result.stderr


def test_pds_hook_runs_under_gitolite(gitolite, tmp_path):
    ws = workspace(gitolite, "bob", tmp_path)
    ws.add_plugin(build_example("org.pds.examples.rtt_monitor", tmp_path, rename="org.bob.rtt"))
    ws.commit("bob forgets to sign", None)
    result = push(gitolite, ws, "bob")
    assert result.returncode != 0 and "unsigned commit" in result.stderr


def test_force_push_denied(gitolite, tmp_path):
    ws = workspace(gitolite, "alice", tmp_path)
    run("git", "-C", ws.path, "reset", "-q", "--hard", "HEAD~1")
    ws.write("plugins/be.example.rtt/notes.txt", "rewrite")
    ws.commit("rewrite", gitolite["keys"]["alice"])
    result = push(gitolite, ws, "alice", "main", "--force")
    assert result.returncode != 0 and "non-fast-forward" in result.stderr  # the PDS hook runs first
    # and gitolite itself denies the rewind ("RW", not "RW+") for every user, admins included
    for user in ("alice", "pdsadmin"):
        check = as_user(gitolite["user"], gitolite["home"], "gitolite", "access", "pr", user, "+", "refs/heads/main",
                        check=False)
        assert check.returncode != 0 and "DENIED" in check.stdout, check.stdout
    allowed = as_user(gitolite["user"], gitolite["home"], "gitolite", "access", "pr", "alice", "W", "refs/heads/main",
                      check=False)
    assert allowed.returncode == 0


def test_pv_writes_its_area_and_nothing_else(gitolite, tmp_path):
    ws = workspace(gitolite, "pv1", tmp_path)
    run("git", "-C", ws.path, "checkout", "-q", "-b", "area", "origin/pvs/pv1.example")
    ws.write("pvs/pv1.example/notes.txt", "pv1 area\n")
    ws.commit("pv1 area", gitolite["keys"]["pv1"])
    ok = push(gitolite, ws, "pv1", "refs/heads/pvs/pv1.example")
    assert ok.returncode == 0, ok.stderr
    denied = push(gitolite, ws, "pv1", "refs/heads/pvs/pv2.example")
    assert denied.returncode != 0 and "refused refs/heads/pvs/pv2.example" in denied.stderr  # the PDS hook runs first
    check = as_user(gitolite["user"], gitolite["home"], "gitolite", "access", "pr", "pv1", "W",
                    "refs/heads/pvs/pv2.example", check=False)
    assert check.returncode != 0 and "DENIED" in check.stdout  # and gitolite would deny it too
    run("git", "-C", ws.path, "checkout", "-q", "main")
    ws.write("plugins/be.example.rtt/notes.txt", "a PV writing the plugin branch")
    ws.commit("pv1 on main", gitolite["keys"]["pv1"])
    main = push(gitolite, ws, "pv1", "refs/heads/main")
    assert main.returncode != 0 and "is not a developer key" in main.stderr  # the PDS hook runs first
    check = as_user(gitolite["user"], gitolite["home"], "gitolite", "access", "pr", "pv1", "W", "refs/heads/main",
                    check=False)
    assert check.returncode != 0 and "DENIED" in check.stdout  # and gitolite would deny it too
