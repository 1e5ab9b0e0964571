"""Real gitolite3 behind a real sshd on 127.0.0.1, with the PDS hook as a repo-specific hook:
admin setup, a developer allowed and denied by namespace, a force push denied, a PV writing
its area and denied elsewhere. Needs root (to create the gitolite user and run sshd), as in CI."""

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import PDS, ROOT, Workspace, build_example, make_key, run

pytestmark = pytest.mark.slow

GITOLITE = shutil.which("gitolite")
SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_traversal(paths) -> dict[Path, int]:
    """Let the gitolite user reach this Python and this checkout (e.g. under /root): add o+x to
    every ancestor directory that lacks it; returns the original modes to restore."""
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


@pytest.fixture(scope="module")
def gitolite(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the gitolite integration test needs root (CI runs as root)")
    assert GITOLITE and os.path.exists(SSHD), "gitolite3 and openssh-server are installed by scripts/bootstrap"
    user = f"pdsgl{random.randrange(10**6)}"
    base = Path(f"/tmp/{user}")  # traversable by the gitolite user, unlike pytest's 0700 tmp
    base.mkdir(mode=0o755)
    home = base / "home"
    run("useradd", "--home-dir", home, "--create-home", "--shell", "/bin/sh", user)
    run("usermod", "-p", "*", user)  # no password, but not "locked": sshd refuses locked accounts
    keys_dir = tmp_path_factory.mktemp("glkeys")
    keys = {n: make_key(keys_dir, n) for n in ("gladmin", "pdsadmin", "alice", "bob", "pv1")}
    server = None
    import sys

    restore = open_traversal([os.path.realpath(sys.executable), ROOT / "pds_log"])
    try:
        shutil.copy(f"{keys['gladmin']}.pub", home / "gladmin.pub")
        shutil.chown(home / "gladmin.pub", user)
        as_user(user, home, "gitolite", "setup", "-pk", home / "gladmin.pub")
        rc = home / ".gitolite.rc"
        text = rc.read_text()
        text = text.replace('# LOCAL_CODE                =>  "$ENV{HOME}/local",', 'LOCAL_CODE => "$ENV{HOME}/local",')
        text = text.replace("# 'repo-specific-hooks',", "'repo-specific-hooks',")
        rc.write_text(text)
        hooks = home / "local" / "hooks" / "repo-specific"
        run(*PDS, "pr", "gitolite-hooks", hooks)
        run("chown", "-R", f"{user}:{user}", home / "local")
        as_user(user, home, "gitolite", "setup")
        # sshd on 127.0.0.1
        port = free_port()
        host_key = base / "ssh_host_ed25519_key"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
        config = base / "sshd_config"
        config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base}/sshd.pid\n"
                          f"AuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication no\n"
                          f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nAllowUsers {user}\n"
                          f"LogLevel ERROR\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        world = {"user": user, "home": home, "port": port, "keys": keys, "base": base, "tmp": keys_dir}
        configure(world)
        yield world
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["userdel", "-r", "-f", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        for path, mode in restore.items():
            path.chmod(mode)


def url(world, repo):
    return f"ssh://{world['user']}@127.0.0.1:{world['port']}/{repo}"


def ssh_env(key):
    return {**os.environ, "GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                                             f"-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"}


def git(world, key, *args, check=True):
    return run("git", *args, env=ssh_env(world["keys"][key]), check=check)


def configure(world):
    """The gitolite admin adds users and the PR rules; the PDS admin pushes the PR's first commits."""
    admin_clone = world["tmp"] / "gitolite-admin"
    git(world, "gladmin", "clone", "-q", url(world, "gitolite-admin"), admin_clone)
    for name in ("pdsadmin", "alice", "bob", "pv1"):
        shutil.copy(f"{world['keys'][name]}.pub", admin_clone / "keydir" / f"{name}.pub")
    conf = (ROOT / "pds_log" / "templates" / "gitolite" / "gitolite.conf").read_text()
    (admin_clone / "conf" / "gitolite.conf").write_text(
        "repo gitolite-admin\n    RW+     =   gladmin\n\n" + conf)
    run("git", "-C", admin_clone, "add", "-A")
    run("git", "-C", admin_clone, "-c", "user.name=gl", "-c", "user.email=gl@x", "commit", "-qm", "pds rules")
    git(world, "gladmin", "-C", admin_clone, "push", "-q", "origin", "HEAD:master")
    # the PR's content, made locally by the PDS admin, then pushed through gitolite + the hook
    local = world["tmp"] / "pr-local.git"
    run(*PDS, "pr", "init", local, "--admin-key", world["keys"]["pdsadmin"], "--admin-name", "pdsadmin")
    # the PDS policy lets alice write org.shared.* too; the gitolite rules do not: both layers gate
    for name, spaces in (("alice", ["be.example.*", "org.shared.*"]), ("bob", ["org.bob.*"])):
        ns_args = [x for ns in spaces for x in ("--namespace", ns)]
        run(*PDS, "pr", "add-developer", "--repo", local, "--admin-key", world["keys"]["pdsadmin"], "--name", name,
            "--key", f"{world['keys'][name]}.pub", *ns_args)
    run(*PDS, "pr", "add-pv", "--repo", local, "--admin-key", world["keys"]["pdsadmin"], "--origin", "pv1.example",
        "--key", f"{world['keys']['pv1']}.pub")
    git(world, "pdsadmin", "--git-dir", local, "push", "-q", url(world, "pr"), "main:main")


def workspace(world, key, tmp_path):
    env_before = os.environ.get("GIT_SSH_COMMAND")
    os.environ["GIT_SSH_COMMAND"] = ssh_env(world["keys"][key])["GIT_SSH_COMMAND"]
    try:
        return Workspace(url(world, "pr"), tmp_path / f"ws-{key}", key)
    finally:
        if env_before is None:
            os.environ.pop("GIT_SSH_COMMAND")
        else:
            os.environ["GIT_SSH_COMMAND"] = env_before


def push(world, ws, key, ref="main", *extra):
    return ws.push(ref, *extra, ssh_key=world["keys"][key])


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
    run("git", "-C", ws.path, "checkout", "-q", "--orphan", "area")
    run("git", "-C", ws.path, "rm", "-rq", "--cached", ".")
    run("git", "-C", ws.path, "clean", "-qfdx")
    ws.write("pvs/pv1.example/str/1.note", "pv1.example\n1\n")
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
