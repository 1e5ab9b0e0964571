"""One signer per PV: before signing epoch E, prove that the local log extends the PV's
authoritative history, and reserve E there by a compare-and-swap.

The authority is, in this order: the primary log mirror (the first URL of ``mirrors:``), else
the PV's area on the PR (``report_to_pr``), else the log repo itself (then only jobs sharing
this log repo are held apart: a copy of the PV directory elsewhere is a second signer nothing
can see, so configure a mirror or the PR area). Where the PR area is not the authority it is
still compared with the log (it is fetched with the PR anyway).

Refused (`SigningRefused`, exit 1, nothing signed): the authority is ahead of the local log
(another place signs, or this is an old copy), the two diverged, the authority cannot be
reached, or epoch E is reserved for an STR this run cannot reproduce.

The reservation is the exact body of the STR about to be signed (reservation v1: canonical
JSON ``{"v":1,"origin":..,"epoch":E,"head":"<STR body text>"}``). Ed25519 is deterministic,
so a reservation can become one signed STR and no other, whoever holds the key: a run that
finds epoch E reserved but unpublished *replays* it (same PR head, same time) or refuses.
The reservation is written, by compare-and-swap, before anything is signed:

* a mirror (or the log repo itself): ref ``refs/pds/reservation``, a commit whose tree holds
  ``reservation.json`` (no STR in it), pushed with ``--force-with-lease``;
* the PR area: ``pvs/<origin>/reservation.json`` in a commit of ``refs/heads/pvs/<origin>``,
  signed with the PV's SSH key like every area commit, pushed with ``--force-with-lease``.

A race between two signers is lost *before* signing; what the loser leaves on the authority
is at most an unreachable reservation commit, never a signed STR.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pds_log.core import jsondoc
from pds_log.core import log_layout as layout
from pds_log.core import note as notes
from pds_log.core.binding import canonical_json
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.strs import AnyHead, parse_head
from pds_log.infra.gitremote import git_env, pinned_hosts_file
from pds_log.infra.gitsign import signed_commit
from pds_log.infra.gittree import read_path, update_tree

from .config import PvConfig
from .logrepo import LogRepo

RESERVATION_REF = "refs/pds/reservation"
RESERVATION_FILE = "reservation.json"
RESERVATION_VERSION = 1
MAX_RESERVATION_BYTES = 64 * 1024
PUSH_TIMEOUT = 120

HOW_TO_MOVE = ("One place signs for a PV (see deployment.md, 'One place signs'): stop the other signer, "
               "then bring this log up to date before signing here (with a primary mirror: "
               "`python3 ci/pds_ci.py restore-log --config pv.yaml`; otherwise copy the signer's log repo: "
               "`git --git-dir LOG fetch SIGNER_LOG +refs/heads/main:refs/heads/main`)")


class SigningRefused(PdsError):
    """This PV must not sign now: another place signs (or did), or its history cannot be checked."""


@dataclass(frozen=True)
class Reservation:
    """Epoch `epoch` is reserved for the STR whose body is `head` (STR v1 or v2 text)."""

    epoch: int
    head: str

    def tree_head(self) -> AnyHead:
        return parse_head(self.head)

    def encode(self, origin: str) -> bytes:
        return canonical_json({"v": RESERVATION_VERSION, "origin": origin, "epoch": self.epoch,
                               "head": self.head}) + b"\n"

    @classmethod
    def decode(cls, data: bytes, origin: str, where: str) -> "Reservation":
        doc = jsondoc.loads(data, where, max_bytes=MAX_RESERVATION_BYTES)
        if (not isinstance(doc, dict) or doc.get("v") != RESERVATION_VERSION or doc.get("origin") != origin
                or not isinstance(doc.get("epoch"), int) or not isinstance(doc.get("head"), str)):
            raise FormatError(f"{where}: not a v{RESERVATION_VERSION} epoch reservation of {origin}")
        reservation = cls(doc["epoch"], doc["head"])
        head = reservation.tree_head()
        if head.epoch != reservation.epoch or head.origin != origin:
            raise FormatError(f"{where}: reserves epoch {reservation.epoch} for an STR of epoch {head.epoch}")
        return reservation


@dataclass
class View:
    """What the authority holds: its newest published STR, and its reservation."""

    where: str
    epoch: int  # newest published epoch there (0: none)
    note: bytes | None  # its STR for `epoch`
    reservation: Reservation | None


def str_epoch(data: bytes, where: str) -> int:
    try:
        return parse_head(notes.parse(data).text).epoch
    except PdsError as exc:
        raise SigningRefused(f"{where}: not an STR ({exc})") from None


def str_body(note: bytes) -> str:
    return notes.parse(note).text


# ---------------------------------------------------------------------- the comparisons
def check_area(area_note: bytes | None, log: LogRepo, where: str = "the PR area") -> str:
    """The newest STR the PV published on its PR area must be in `log`, byte for byte.

    The same check for `pds pv epoch` and `ci/pds_ci.py restore-log`."""
    if area_note is None:
        return f"{where} holds no STR yet"
    epoch = str_epoch(area_note, f"{where}: latest.note")
    head = log.head()
    ours_latest = log.read(head, layout.LATEST_STR) if head else None
    ours_epoch = str_epoch(ours_latest, f"{log.path}:{layout.LATEST_STR}") if ours_latest else 0
    if epoch > ours_epoch:
        raise SigningRefused(
            f"{where} holds the PV's STR for epoch {epoch}, but the log only reaches epoch {ours_epoch}: this is "
            f"not the log the PV signed from (another place signs for this PV, or this is an old copy, a lost "
            f"cache, an old or wrong mirror). Signing now would make a second STR for epoch {ours_epoch + 1}; "
            f"nothing was signed. {HOW_TO_MOVE}")
    ours = log.read(head, layout.str_path(epoch)) if head else None
    if ours != area_note:
        raise SigningRefused(
            f"{where}'s STR for epoch {epoch} differs from the log's: two STRs for one epoch exist already. "
            f"Stop and investigate (`pds gossip`); nothing was signed")
    return f"{where} at epoch {epoch}, consistent with the log (epoch {ours_epoch})"


def check_commits(repo: pygit2.Repository, remote: str | None, local: str | None, where: str) -> str:
    """The local log branch must be at or ahead of the authority's (both in `repo`)."""
    if remote is None or remote == local:
        return f"{where} {'is empty' if remote is None else 'is at the same epoch'}"
    if local is not None and repo.descendant_of(local, remote):
        return f"this log is ahead of {where} (an epoch signed here was not pushed yet)"
    if local is None or repo.descendant_of(remote, local):
        raise SigningRefused(
            f"{where} is ahead of this log ({remote[:12]} after {(local or 'nothing')[:12]}): another place signs "
            f"for this PV, or this is an old copy. Nothing was signed. {HOW_TO_MOVE}")
    raise SigningRefused(
        f"this log ({local[:12]}) and {where} ({remote[:12]}) have diverged: two histories of one log. Stop, "
        f"find out how (equivocation may already be visible: `pds gossip`), and restore the right one by hand; "
        f"nothing was signed")


def check_unpublished(view: View, log: LogRepo, local_epoch: int) -> None:
    """Epochs of the local log the authority lacks must be ours: reserved for our very STR."""
    res = view.reservation
    if local_epoch <= view.epoch or res is None or res.epoch < local_epoch:
        return  # nothing unpublished, or signed before reservations existed
    head = log.head()
    ours = log.read(head, layout.str_path(res.epoch)) if head and res.epoch == local_epoch else None
    if ours is None or str_body(ours) != res.head:
        raise SigningRefused(
            f"{view.where} reserves epoch {res.epoch} for an STR this log does not hold (this log reaches epoch "
            f"{local_epoch}): another signer is at work. Nothing was signed. {HOW_TO_MOVE}")


# ---------------------------------------------------------------------- the places
class Authority:
    where: str

    def view(self) -> View:
        raise NotImplementedError

    def check(self, log: LogRepo) -> str:
        raise NotImplementedError

    def reserve(self, reservation: Reservation) -> None:
        raise NotImplementedError


def _ssh_env(config: PvConfig, url: str) -> dict[str, str]:
    """git's environment for `url`: the PV's key and its pinned host keys (never accept-new)."""
    return git_env(config.ssh_key, pinned_hosts_file(url, config.known_hosts, "keys.known_hosts in pv.yaml"))


def _push(git_dir: Path | str, url: str, source: str, ref: str, expect: str | None, config: PvConfig) -> str | None:
    """Compare-and-swap `ref` at `url` from `expect` (None: absent) to `source`; None or the reason."""
    lease = f"--force-with-lease={ref}:{expect or ''}"
    try:
        result = subprocess.run(["git", "--git-dir", str(git_dir), "push", "--quiet", "--porcelain", lease, url,
                                 f"{source}:{ref}"], capture_output=True, text=True, env=_ssh_env(config, url),
                                timeout=PUSH_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"no answer in {PUSH_TIMEOUT} s"
    if result.returncode == 0:
        return None
    lines = [ln for ln in (result.stderr + result.stdout).strip().splitlines() if ln.strip()]
    return "; ".join(lines[-3:]) or "git push failed"


class LogMirror(Authority):
    """The primary log mirror (or the log repo itself), read through a private scratch repo in
    the state dir that borrows the log's objects (never the other way round)."""

    def __init__(self, config: PvConfig, url: str) -> None:
        self.config = config
        self.url = url
        self.where = (f"the primary log mirror {url}" if Path(url) != Path(config.log_repo)
                      else f"the log repo {url}")
        self.scratch = config.state_dir / "authority.git"
        if not (self.scratch / "HEAD").exists():
            pygit2.init_repository(str(self.scratch), bare=True)
        alternates = self.scratch / "objects" / "info" / "alternates"
        alternates.write_text(str(Path(config.log_repo).resolve() / "objects") + "\n")
        self.repo = pygit2.Repository(str(self.scratch))
        self.tip: str | None = None
        self.reservation_tip: str | None = None

    def _ref(self, name: str) -> str | None:
        ref = self.repo.references.get(name)
        return str(ref.target) if ref is not None else None

    def view(self) -> View:
        try:
            result = subprocess.run(
                ["git", "--git-dir", str(self.scratch), "fetch", "--quiet", "--no-tags", "--prune",
                 "--no-write-fetch-head", self.url, "+refs/heads/*:refs/authority/heads/*",
                 "+refs/pds/*:refs/authority/pds/*"],
                capture_output=True, text=True, env=_ssh_env(self.config, self.url), timeout=PUSH_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SigningRefused(f"cannot reach {self.where}: no answer in {PUSH_TIMEOUT} s; "
                                 f"nothing was signed") from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise SigningRefused(f"cannot reach {self.where} ({lines[-1] if lines else 'git fetch failed'}): the "
                                 f"PV's authoritative history cannot be checked, so nothing was signed")
        self.repo = pygit2.Repository(str(self.scratch))
        self.tip = self._ref("refs/authority/heads/main")
        self.reservation_tip = self._ref("refs/authority/pds/reservation")
        epoch, note = 0, None
        if self.tip is not None:
            note = read_path(self.repo, self.repo[self.tip].tree, layout.LATEST_STR)
            if note is None:
                raise SigningRefused(f"{self.where}: commit {self.tip[:12]} has no {layout.LATEST_STR}")
            epoch = str_epoch(note, f"{self.where}: {layout.LATEST_STR}")
        reservation = None
        if self.reservation_tip is not None:
            data = read_path(self.repo, self.repo[self.reservation_tip].tree, RESERVATION_FILE)
            if data is not None:
                reservation = Reservation.decode(data, self.config.origin, f"{self.where} {RESERVATION_REF}")
        return View(self.where, epoch, note, reservation)

    def check(self, log: LogRepo) -> str:
        head = log.head()
        return check_commits(self.repo, self.tip, str(head.id) if head else None, self.where)

    def reserve(self, reservation: Reservation) -> None:
        tree = update_tree(self.repo, None, {RESERVATION_FILE: reservation.encode(self.config.origin)})
        sig = pygit2.Signature(self.config.origin, f"{self.config.origin}@pds.invalid", 0, 0)
        parents = [pygit2.Oid(hex=self.reservation_tip)] if self.reservation_tip else []
        commit = self.repo.create_commit(None, sig, sig, f"reserve epoch {reservation.epoch}\n", tree, parents)
        why = _push(self.scratch, self.url, str(commit), RESERVATION_REF, self.reservation_tip, self.config)
        if why is not None:
            raise SigningRefused(f"could not reserve epoch {reservation.epoch} on {self.where} ({why}): another "
                                 f"signer moved first, or the mirror refuses; nothing was signed")
        self.reservation_tip = str(commit)


class PrArea(Authority):
    """The PV's area on the PR, as fetched into the PV's PR mirror (state/pr.git)."""

    def __init__(self, config: PvConfig, mirror: pygit2.Repository) -> None:
        self.config = config
        self.repo = mirror
        self.where = f"the PR area ({config.pr_url} pvs/{config.origin})"
        self.remote_ref = f"refs/remotes/pr/pvs/{config.origin}"
        self.ref = f"refs/heads/pvs/{config.origin}"
        ref = mirror.references.get(self.remote_ref)
        self.tip: str | None = str(ref.target) if ref is not None else None
        self.base = f"pvs/{config.origin}"

    def _read(self, name: str) -> bytes | None:
        return read_path(self.repo, self.repo[self.tip].tree, f"{self.base}/{name}") if self.tip else None

    def latest(self) -> bytes | None:
        return self._read("latest.note")

    def view(self) -> View:
        note = self.latest()
        epoch = str_epoch(note, f"{self.where}: latest.note") if note else 0
        data = self._read(RESERVATION_FILE)
        reservation = (Reservation.decode(data, self.config.origin, f"{self.where}: {RESERVATION_FILE}")
                       if data is not None else None)
        return View(self.where, epoch, note, reservation)

    def check(self, log: LogRepo) -> str:
        return check_area(self.latest(), log, self.where)

    def reserve(self, reservation: Reservation) -> None:
        if not self.config.ssh_key:
            raise SigningRefused("the PV has no SSH key (keys.ssh in pv.yaml) to reserve epochs on its PR area")
        base = self.repo[self.tip] if self.tip else None
        tree = update_tree(self.repo, base.tree if base else None,
                           {f"{self.base}/{RESERVATION_FILE}": reservation.encode(self.config.origin)})
        commit = signed_commit(self.repo.path, tree, [self.tip] if self.tip else [],
                               f"{self.config.origin}: reserve epoch {reservation.epoch}", self.config.ssh_key,
                               self.config.origin)
        why = _push(self.repo.path, self.config.pr_url, str(commit), self.ref, self.tip, self.config)
        if why is not None:
            raise SigningRefused(f"could not reserve epoch {reservation.epoch} on {self.where} ({why}): another "
                                 f"signer moved first, or the PR refuses the PV's key; nothing was signed")
        for name in (self.remote_ref, self.ref):  # what the area push after the epoch builds on
            self.repo.references.create(name, commit, force=True)
        self.tip = str(commit)


def authority_for(config: PvConfig, pr_mirror: pygit2.Repository) -> Authority:
    if config.mirrors:
        return LogMirror(config, config.mirrors[0])
    if config.report_to_pr:
        return PrArea(config, pr_mirror)
    return LogMirror(config, str(config.log_repo))


@dataclass
class Standing:
    """The outcome of the check: where to reserve, and a reserved-but-unpublished epoch to replay."""

    authority: Authority
    view: View
    replay: Reservation | None
    notes: list[str]


def check_standing(config: PvConfig, log: LogRepo, local_epoch: int, pr_mirror: pygit2.Repository) -> Standing:
    """Prove that `log` (at `local_epoch`) extends the PV's authoritative history; raises SigningRefused."""
    authority = authority_for(config, pr_mirror)
    view = authority.view()
    said = [authority.check(log)]
    if config.report_to_pr and not isinstance(authority, PrArea):
        said.append(PrArea(config, pr_mirror).check(log))
    check_unpublished(view, log, local_epoch)
    res = view.reservation
    replay = None
    if res is not None and res.epoch > local_epoch:
        if res.epoch != local_epoch + 1 or view.epoch >= res.epoch:
            raise SigningRefused(f"{view.where} reserves epoch {res.epoch}, but this log reaches epoch "
                                 f"{local_epoch}: another place signs for this PV. Nothing was signed. {HOW_TO_MOVE}")
        replay = res  # reserved, never published: sign exactly that STR or nothing
    return Standing(authority, view, replay, said)


def reserve(standing: Standing, reservation: Reservation) -> None:
    """Reserve the epoch for this STR body (a no-op when it is reserved for exactly it)."""
    held = standing.view.reservation
    if held is not None and held.epoch == reservation.epoch:
        if held.head != reservation.head:
            raise SigningRefused(
                f"{standing.view.where} reserves epoch {reservation.epoch} for another STR than the one this run "
                f"computes; refusing to sign a second STR for that epoch. {HOW_TO_MOVE}")
        return
    standing.authority.reserve(reservation)
