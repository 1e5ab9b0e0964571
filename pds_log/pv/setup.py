"""`pds pv init`: create a PV directory (config, keys, empty log repo, state)."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2

from pds_log.core.errors import PdsError
from pds_log.core.note import NoteSigner, validate_key_name
from pds_log.infra.files import atomic_write_text
from pds_log.infra.sshkeys import write_ssh_keypair

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


def init_pv(directory: str | os.PathLike, origin: str, pr_url: str, *, branch: str = "main",
            verifiers: dict | None = None, acceptance: str | None = None, mirrors: list[str] | None = None,
            pin_root: bool = True, epoch_interval: int = 600) -> Path:
    """Create the PV; returns the path of its pv.yaml."""
    validate_key_name(origin)
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise PdsError(f"{root} exists and is not empty; refusing to overwrite a PV")
    (root / "keys").mkdir(parents=True, exist_ok=True)
    os.chmod(root / "keys", 0o700)
    signer = NoteSigner.generate(origin)
    atomic_write_text(root / "keys" / "note.key", signer.to_string() + "\n", mode=0o600)
    atomic_write_text(root / "keys" / "note.key.pub", str(signer.verifier()) + "\n")
    write_ssh_keypair(root / "keys" / "ssh_ed25519", f"pv:{origin}")
    LogRepo.init(root / "log.git")
    (root / "state").mkdir()
    if "://" not in pr_url and not pr_url.startswith("/") and "@" not in pr_url:
        pr_url = str(Path(pr_url).resolve())
    pinned = None
    if pin_root:
        mirror = PrMirror(root / "state" / "pr.git", pr_url, branch)
        head = mirror.fetch()
        roots = [c for c in mirror.new_commits(head, None) if not c.parents]
        if len(roots) != 1:
            raise PdsError(f"the PR at {pr_url} has {len(roots)} root commits; expected exactly one")
        pinned = str(roots[0].id)
    doc = {
        "version": 1,
        "origin": origin,
        "pr": {"url": pr_url, "branch": branch, "root": pinned},
        "keys": {"note": "keys/note.key", "ssh": "keys/ssh_ed25519"},
        "log_repo": "log.git",
        "state_dir": "state",
        "verifiers": verifiers or DEFAULT_VERIFIERS,
        "acceptance": acceptance or DEFAULT_ACCEPTANCE,
        "epoch_interval": epoch_interval,
        "jobs": 0,
        "mirrors": list(mirrors or []),
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
