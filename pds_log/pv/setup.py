"""`pds pv init`: create a PV directory (config, keys, empty log repo, state)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError
from pds_log.core.note import NoteSigner, validate_key_name
from pds_log.infra.files import atomic_write_bytes, atomic_write_text
from pds_log.infra.sshkeys import read_ssh_private_key, scan_host_keys, ssh_endpoint, write_ssh_keypair

from .config import dump_config, load_config
from .logrepo import LogRepo
from .prsource import PrMirror

# The verifier set a new PV starts with (edit pv.yaml to change it).
DEFAULT_VERIFIERS = {
    "reproducible": {"runner": "reproducible"},
    "safety": {"runner": "bytecode_safety"},
    "termination": {"runner": "termination"},
    "side_effects": {"runner": "side_effects"},
    "static": {"runner": "static_analysis"},
}
DEFAULT_ACCEPTANCE = "reproducible & safety & termination"


INCOMPLETE = ".pds-init-incomplete"  # present while init runs: a re-run may clear what it finds


def init_pv(directory: str | os.PathLike, origin: str, pr_url: str, *, branch: str = "main",
            verifiers: dict | None = None, acceptance: str | None = None, mirrors: list[str] | None = None,
            pin_root: bool = True, epoch_interval: int = 600, ssh_key: str | os.PathLike | None = None,
            known_hosts: str | os.PathLike | None = None, trust_host_key: bool = False) -> Path:
    """Create the PV; returns the path of its pv.yaml.

    `ssh_key`: an existing SSH key (no passphrase) to copy in as the PV's, one the PR admin
    already knows: over ssh the PR authenticates the PV by it, and init fetches the PR to pin
    its root. Without it a new Ed25519 key is made. `known_hosts`: a file of pinned host keys for
    the ssh URLs (copied in as keys/known_hosts); `trust_host_key`: record the keys the servers
    show now instead (trust on first use, on the operator's explicit request: the caller prints
    their fingerprints to check). With neither, ssh URLs use the running user's known_hosts.

    All or nothing: whatever fails (the PR refusing the key, a host key, a bad URL), init
    removes what it made, so the same command can simply be run again; a directory left by an
    init that was killed (it holds INCOMPLETE) is cleared by the next one."""
    validate_key_name(origin)
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        if not (root / INCOMPLETE).exists():
            raise PdsError(f"{root} exists and is not empty; refusing to overwrite a PV")
        _clear(root)  # an init that never finished: nothing in it was published or used
    if "://" not in pr_url and not pr_url.startswith("/") and "@" not in pr_url:
        pr_url = str(Path(pr_url).resolve())
    mirrors = list(mirrors or [])
    ssh_urls = [u for u in (pr_url, *mirrors) if ssh_endpoint(u) is not None]
    # Everything that can fail without touching the disk comes first.
    key_pair = read_ssh_private_key(ssh_key) if ssh_key else None
    if ssh_endpoint(pr_url) is not None and pin_root and key_pair is None:
        raise PdsError(f"{pr_url} is an SSH URL: the PR knows the PV by its SSH key, which its admin must add "
                       f"before init can fetch the PR (gitolite keydir and `pds pr add-pv --key`). Make the key "
                       f"first (ssh-keygen -t ed25519 -N '' -f KEY), give KEY.pub to the PR admin, then pass "
                       f"--ssh-key KEY (or --no-pin, leaving the PR's root unpinned)")
    pinned_hosts = _pinned_hosts(ssh_urls, known_hosts, trust_host_key)
    created = None if root.exists() else root  # the topmost directory init makes, removed on failure
    while created is not None and not created.parent.exists():
        created = created.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / INCOMPLETE).write_text("pds pv init did not finish: run it again\n")
        config_path = _make_pv(root, origin, pr_url, branch, verifiers, acceptance, mirrors, pin_root,
                               epoch_interval, key_pair, pinned_hosts)
        (root / INCOMPLETE).unlink()
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            _clear(root)
        raise
    return config_path


def _clear(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _pinned_hosts(ssh_urls: list[str], known_hosts: str | os.PathLike | None, trust: bool) -> list[str] | None:
    """The known_hosts lines the PV pins (None: the running user's known_hosts)."""
    if not ssh_urls:
        if known_hosts or trust:
            raise PdsError("--known-hosts and --trust-host-key are for ssh URLs; the PR and mirrors given are not")
        return None
    lines: list[str] = []
    if known_hosts:
        try:
            text = Path(known_hosts).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PdsError(f"--known-hosts {known_hosts}: cannot read it ({exc})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                if len(line.split()) < 3:
                    raise PdsError(f"--known-hosts {known_hosts}:{number}: not a known_hosts line")
                lines.append(line.strip())
        if not lines:
            raise PdsError(f"--known-hosts {known_hosts}: no host key in it")
    if trust:
        endpoints = {(e.host, e.port): e for e in (ssh_endpoint(u) for u in ssh_urls) if e is not None}
        for endpoint in endpoints.values():
            lines.extend(scan_host_keys(endpoint))
    return lines if (known_hosts or trust) else None


def _make_pv(root: Path, origin: str, pr_url: str, branch: str, verifiers: dict | None, acceptance: str | None,
             mirrors: list[str], pin_root: bool, epoch_interval: int, key_pair: tuple[bytes, str] | None,
             pinned_hosts: list[str] | None) -> Path:
    (root / "keys").mkdir(parents=True, exist_ok=True)
    os.chmod(root / "keys", 0o700)
    signer = NoteSigner.generate(origin)
    atomic_write_text(root / "keys" / "note.key", signer.to_string() + "\n", mode=0o600)
    atomic_write_text(root / "keys" / "note.key.pub", str(signer.verifier()) + "\n")
    ssh_path = root / "keys" / "ssh_ed25519"
    if key_pair is None:
        write_ssh_keypair(ssh_path, f"pv:{origin}")
    else:
        private, public = key_pair
        if not public.startswith("ssh-ed25519 "):
            ssh_path = root / "keys" / "ssh_key"
        atomic_write_bytes(ssh_path, private, mode=0o600)
        atomic_write_text(Path(str(ssh_path) + ".pub"), public + "\n")
    known_hosts = None
    if pinned_hosts is not None:
        known_hosts = root / "keys" / "known_hosts"
        atomic_write_text(known_hosts, "".join(line + "\n" for line in pinned_hosts))
    LogRepo.init(root / "log.git")
    (root / "state").mkdir()
    pinned = None
    if pin_root:
        mirror = PrMirror(root / "state" / "pr.git", pr_url, branch, ssh_path, known_hosts,
                          key_setting="the SSH key given (--ssh-key)")
        head = mirror.fetch()
        roots = [c for c in mirror.new_commits(head, None) if not c.parents]
        if len(roots) != 1:
            raise PdsError(f"the PR at {pr_url} has {len(roots)} root commits; expected exactly one")
        pinned = str(roots[0].id)
    keys = {"note": "keys/note.key", "ssh": f"keys/{ssh_path.name}"}
    if known_hosts is not None:
        keys["known_hosts"] = "keys/known_hosts"
    doc = {
        "version": 1,
        "origin": origin,
        "pr": {"url": pr_url, "branch": branch, "root": pinned},
        "keys": keys,
        "log_repo": "log.git",
        "state_dir": "state",
        "verifiers": verifiers or DEFAULT_VERIFIERS,
        "acceptance": acceptance or DEFAULT_ACCEPTANCE,
        "epoch_interval": epoch_interval,
        "jobs": 0,
        "mirrors": mirrors,
        "report_to_pr": True,
    }
    path = root / "pv.yaml"
    atomic_write_text(path, dump_config(doc))
    load_config(path)  # validate what we wrote
    return path


def is_bare_repo(path: Path) -> bool:
    try:
        return pygit2.Repository(str(path)).is_bare
    except pygit2.GitError:
        return False
