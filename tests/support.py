"""Helpers shared by the tests and benchmarks: example plugins, built for real with clang."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from pds_log.core.manifest import parse_plugin_manifest
from pds_log.developer.build import build_plugin, read_plugin_dir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "pds_log" / "examples"
HEADER = ROOT / "pds_log" / "data" / "pquic" / "pquic.h"


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "expect.yaml").exists())


def expectations(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name / "expect.yaml").read_text())


def build_example(name: str, dest: Path, rename: str | None = None) -> Path:
    """Copy example `name` to dest/<rename or name>, build it the way its expect.yaml says
    (the pinned recipe unless it overrides the flags) and return the directory."""
    target = dest / (rename or name)
    shutil.copytree(EXAMPLES / name, target)
    if rename:
        for manifest in target.glob("*.plugin"):
            text = manifest.read_text()
            if text.split("\n", 1)[0].split()[:1] == [name]:
                manifest.write_text(re.sub(rf"^{re.escape(name)}", rename, text, count=1))
    flags = (expectations(name).get("build") or {}).get("flags")
    build_plugin(target, flags=flags, name=rename or name)
    return target


def plugin_input(directory: Path, name: str | None = None):
    import verifier_runners as vr

    name = name or directory.name
    files = read_plugin_dir(directory)
    return vr.PluginInput(name, "0" * 40, files, parse_plugin_manifest(files, name))


# ---------------------------------------------------------------------------- PR helpers
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from pds_log.infra.sshkeys import write_ssh_keypair  # noqa: E402

# The CLI as the interpreter running the tests has it installed: no `pds` on PATH needed, and
# never another installation's pds (tests/ci/test_wheel.py runs an installed wheel on purpose).
PDS = (sys.executable, "-m", "pds_log")


def run(*args, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_key(directory: Path, name: str) -> Path:
    path = directory / name
    write_ssh_keypair(path, name)
    return path


class Workspace:
    """A git clone of the PR where tests make (signed or unsigned) commits and push them."""

    def __init__(self, pr_url: str | Path, path: Path, name: str = "tester", layout: int = 1) -> None:
        self.url = str(pr_url)
        self.path = path
        self.layout = layout  # where add_plugin puts a plugin (pds_log.core.pr_layout)
        run("git", "clone", "-q", self.url, path)
        if run("git", "-C", path, "rev-parse", "--verify", "-q", "origin/main", check=False).returncode == 0:
            run("git", "-C", path, "checkout", "-q", "-B", "main", "origin/main")  # whatever the remote HEAD
        run("git", "-C", path, "config", "user.name", name)
        run("git", "-C", path, "config", "user.email", f"{name}@example.org")

    def write(self, rel: str, data: bytes | str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target

    def plugin_path(self, name: str) -> str:
        from pds_log.core.pr_layout import plugin_dir

        return plugin_dir(name, self.layout)

    def add_plugin(self, plugin_dir: Path, name: str | None = None) -> None:
        dest = self.path / self.plugin_path(name or plugin_dir.name)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(plugin_dir, dest, ignore=shutil.ignore_patterns("expect.yaml"))

    def remove(self, rel: str) -> None:
        target = self.path / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    def commit(self, message: str, key: Path | None, env: dict | None = None) -> str:
        run("git", "-C", self.path, "add", "-A")
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
        args = ["git", "-C", self.path, *signing, "commit", "-q", "--allow-empty", "-m", message]
        if key:
            args.append("-S")
        run(*args, env={**os.environ, **(env or {})})
        return run("git", "-C", self.path, "rev-parse", "HEAD").stdout.strip()

    def push(self, ref: str = "main", *extra: str, ssh_key: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        if ssh_key:
            env["GIT_SSH_COMMAND"] = f"ssh -i {ssh_key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no " \
                                     f"-o UserKnownHostsFile=/dev/null -o BatchMode=yes"
        return run("git", "-C", self.path, "push", *extra, "origin", f"HEAD:{ref}" if ":" not in ref else ref,
                   env=env, check=False)

    def reset_to_remote(self) -> None:
        run("git", "-C", self.path, "fetch", "-q", "origin")
        run("git", "-C", self.path, "reset", "-q", "--hard", "origin/main")
        run("git", "-C", self.path, "clean", "-qfdx")


# ---------------------------------------------------------------------------- whole-system scenarios
class World:
    """A real PR (admin + developers), PVs created with `pds pv init`, and example plugins
    built by clang and pushed with signed commits. Used by the PV, audit, peer and demo tests."""

    def __init__(self, root: Path, developers: dict[str, list[str]] | None = None, layout: int | None = None) -> None:
        self.root = root
        self.keys: dict[str, Path] = {}
        self.pr = root / "pr.git"
        self.admin = self.key("admin")
        run(*PDS, "pr", "init", self.pr, "--admin-key", self.admin, *(["--layout", str(layout)] if layout else []))
        for name, spaces in (developers or {"alice": ["org.pds.*"]}).items():
            args = ["--namespace"] * len(spaces)
            ns_args = [x for pair in zip(args, spaces, strict=True) for x in pair]
            run(*PDS, "pr", "add-developer", "--repo", self.pr, "--admin-key", self.admin, "--name", name,
                "--key", f"{self.key(name)}.pub", *ns_args)
        self.built = root / "built"
        self.built.mkdir()
        self.ws = Workspace(self.pr, root / "ws", layout=layout or 1)

    def key(self, name: str) -> Path:
        if name not in self.keys:
            self.keys[name] = make_key(self.root, name)
        return self.keys[name]

    def example(self, example: str, name: str | None = None) -> Path:
        """Build example `example` as plugin `name` (once) and return its directory."""
        name = name or example
        target = self.built / example / name
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            build_example(example, target.parent, rename=name if name != example else None)
        return target

    def push_plugins(self, plugins: dict[str, str], dev: str = "alice", message: str = "plugins",
                     delete: tuple[str, ...] = ()) -> str:
        """plugins: plugin name -> example it is built from. One signed commit, pushed."""
        self.ws.reset_to_remote()
        for name, example in plugins.items():
            self.ws.add_plugin(self.example(example, name), name)
        for name in delete:
            self.ws.remove(self.ws.plugin_path(name))
        commit = self.ws.commit(message, self.key(dev))
        result = self.ws.push()
        assert result.returncode == 0, result.stderr
        return commit

    def add_pv(self, origin: str, verifiers: dict | None = None, acceptance: str | None = None,
               mirrors: list[str] | None = None) -> Path:
        """`pds pv init` a PV and give it its PR area; returns its pv.yaml."""
        from pds_log.pv.setup import init_pv

        config = init_pv(self.root / origin, origin, str(self.pr), verifiers=verifiers, acceptance=acceptance,
                         mirrors=mirrors)
        run(*PDS, "pr", "add-pv", "--repo", self.pr, "--admin-key", self.admin, "--origin", origin,
            "--key", self.root / origin / "keys" / "ssh_ed25519.pub")
        return config


def forger_clone(log_repo: Path, path: Path) -> Path:
    """A clone of a PV's log repository that a forger (mallory) commits to."""
    run("git", "clone", "-q", log_repo, path)
    run("git", "-C", path, "config", "user.name", "mallory")
    run("git", "-C", path, "config", "user.email", "m@example.org")
    return path


def epoch(config: Path, *extra: str, check: bool = True) -> dict:
    """Run `pds pv epoch --json` as a subprocess; returns the summary."""
    import json

    result = run(*PDS, "pv", "epoch", "--config", config, "--json", *extra, check=check)
    return json.loads(result.stdout) if result.returncode == 0 else {"error": result.stderr,
                                                                     "code": result.returncode}


# ---------------------------------------------------------------------------- HTTP mirrors
import functools  # noqa: E402
import threading  # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StaticServer:
    """A real HTTP server on 127.0.0.1 serving a directory (a PV mirror)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_trust(path: Path, pvs: dict[str, tuple[str, list[str]]], require: str, max_age: int = 3600,
                state: Path | None = None) -> Path:
    """pvs: name -> (vkey, mirror URLs)."""
    doc = {"version": 1, "pvs": {n: {"vkey": v, "mirrors": m} for n, (v, m) in pvs.items()},
           "require": require, "max_age": max_age, "state": str(state or path.parent / "peer-state.json")}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------------------- a lying PV
def forge_epoch(log_clone: Path, signer, mutate) -> None:
    """Rewrite the last epoch of a (non-bare) log clone as a malicious PV would: apply
    `mutate(bindings: dict[name, Binding])`, then recompute the tree, tiles and a validly
    signed STR for the same epoch, and amend the commit. Plain git for the commit."""
    import pygit2

    from pds_log.core import log_layout as layout
    from pds_log.core.binding import Binding
    from pds_log.core.names import name_key
    from pds_log.core.signed_root import TreeHead, open_str, sign_str
    from pds_log.core.tiles import positioned_tiles
    from pds_log.core.tree import PrefixTree

    repo = pygit2.Repository(str(log_clone))
    head = repo.revparse_single("HEAD")
    signed = open_str((log_clone / layout.LATEST_STR).read_bytes(), signer.verifier())
    bindings = {}
    for path in (log_clone / "bindings").rglob("*.json"):
        b = Binding.decode(path.read_bytes())
        bindings[b.name] = b
    mutate(bindings)
    shutil.rmtree(log_clone / "bindings")
    for b in bindings.values():
        target = log_clone / layout.binding_path(b.name, layout.LATEST_LAYOUT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b.encode())
    tree = PrefixTree.from_items({name_key(n): b.value() for n, b in bindings.items()})
    shutil.rmtree(log_clone / "tiles", ignore_errors=True)
    for (level, prefix), h, tile in positioned_tiles(tree):
        target = log_clone / layout.tile_path(level, h, layout.LATEST_LAYOUT, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tile.encode())
    h = signed.head
    forged = sign_str(TreeHead(h.origin, h.epoch, tree.root(), h.prev, h.time + 1, h.pr, len(tree), h.policy), signer)
    (log_clone / layout.LATEST_STR).write_bytes(forged.note)
    (log_clone / layout.str_path(h.epoch)).write_bytes(forged.note)
    run("git", "-C", log_clone, "add", "-A")
    run("git", "-C", log_clone, "commit", "-q", "--amend", "--no-edit")
    assert str(repo.revparse_single("HEAD").id) != str(head.id)
