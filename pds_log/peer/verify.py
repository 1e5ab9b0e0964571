"""Peer-side verification of a plugin against a set of trusted PVs (library API).

    from pds_log.peer.trust import load_trust
    from pds_log.peer.verify import verify_plugin

    verdict = verify_plugin("be.example.rtt", load_trust("trust.yaml"), bytecode_dir="be.example.rtt/")
    verdict.accepted            # the requirement formula over the PVs' verified answers
    verdict.ok                  # what to act on: accepted, and the bytecode checked (or metadata_only=True)
    verdict.pvs["pv1"].status   # included | absent | invalid | unreachable, with .reason etc.

For each PV the mirrors are tried in order, and every file of one answer comes from the same
mirror. From a mirror the peer

1. GETs ``latest.note`` and verifies its signature with the PV's key (``open_str``);
2. checks it against the last STR this peer verified for that PV (the state file): a lower
   epoch is a rollback (refused), the same epoch must be the same STR (else equivocation:
   the PV is rejected outright, whatever other mirrors say, and self-contained evidence is
   written), a higher epoch must chain link by link through ``epochs/<E//1000>/<E>.note``
   (when the first link does not continue the STR we hold and the mirror's STR for our epoch
   differs from ours, that is equivocation too);
3. checks freshness: ``now - max_age <= time <= now + FUTURE_SKEW``;
4. proves inclusion or absence against the STR's root and epoch: by default walking the
   tiles (``tiles/<level>/<h0>/<hash>``, each checked against the hash its parent gave) and
   fetching ``bindings/<v0>/<value>.json`` (it must hash to the leaf value and name the
   plugin); with via="proof" the one-file ``proofs/<E>/<name>.json`` (published only for
   names changed at epoch E: for any other name the peer falls back to the tiles);
5. with the bytecode the peer holds, checks that every file the binding lists is there and
   hashes to the binding's SHA-256.

A mirror that fails a check is skipped with its reason, and the next one is tried: whatever
is wrong with its answer -- a network error, an HTTP status, a file over its size limit or
past the fetch deadline (pds_log.infra.http), JSON that breaks the bounded loader
(pds_log.core.jsondoc: depth, integer size, UTF-8), a bad signature, chain or proof. A PV is
approved only when one mirror passes every check; one none of whose mirrors answers is
"unreachable" and counts as false, never as an error that accepts: the formula is monotone;
the report lists each mirror's problem. For an absent plugin the PV's explanation is read from
``status/<name>.json`` and shown as such: it is not covered by any signature (a missing one is
no explanation; an unreadable or malformed one fails that mirror like any other bad file).
The state file advances for a PV only when every check for it passed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping

from pds_log.core import equivocation, jsondoc
from pds_log.core import static_layout as site
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.names import name_key, validate_name
from pds_log.core.proof import INCLUSION, Proof, describe, make_proof_from_leaf, verify_proof
from pds_log.core.signed_root import SignedTreeRoot, check_chain, open_str
from pds_log.core.tiles import prove_from_tiles
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.http import FetchError, Fetcher

from .trust import PeerState, Trust, TrustedPv

FUTURE_SKEW = 300  # seconds an STR may be dated ahead of the peer's clock
MAX_CHAIN_FETCH = 100_000  # intermediate STRs a peer will fetch to catch up
# per-file size limits (the largest honest file is far below each)
MAX_STR_BYTES = 64 << 10
MAX_TILE_BYTES = 32 << 10  # 7 + 256 * 66 bytes at most
MAX_PROOF_BYTES = 256 << 10
MAX_BINDING_BYTES = 1 << 20
MAX_STATUS_BYTES = 64 << 10

INCLUDED, ABSENT, UNREACHABLE, INVALID = "included", "absent", "unreachable", "invalid"
VIAS = ("tiles", "proof")


class MirrorProblem(Exception):
    """What was wrong with one mirror's answer (one line). `fatal`: the PV itself misbehaved
    (equivocation) or cannot be checked; no other mirror is tried."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass
class PvReport:
    """One PV's answer about one plugin, with each check's outcome (None = not reached)."""

    pv: str
    origin: str
    status: str = UNREACHABLE
    reason: str = ""
    mirror: str | None = None
    reachable: bool = False
    epoch: int | None = None
    str_time: int | None = None
    signature_ok: bool | None = None
    chain_ok: bool | None = None
    chain: str | None = None  # how the STR relates to the last one seen
    fresh: bool | None = None
    age: int | None = None  # seconds between the STR's time and the peer's clock
    proof_kind: str | None = None  # inclusion | absence
    proof_source: str | None = None  # tiles | one-file proof | bundle
    properties: list[str] = field(default_factory=list)
    bytecode: str | None = None  # "match", "mismatch: ...", or None when not checked
    bytecode_warnings: list[str] = field(default_factory=list)
    explanation: str | None = None  # the PV's (unauthenticated) reason for an absence
    evidence: str | None = None  # path of the equivocation evidence written
    evidence_json: str | None = None
    attempts: list[str] = field(default_factory=list)
    binding: Binding | None = None
    proof: Proof | None = None
    signed: SignedTreeRoot | None = None
    stage: int = 0  # how far this answer got (to pick the most telling failure)

    @property
    def approved(self) -> bool:
        """The PV vouches for the plugin: verified inclusion and, if checked, the same bytecode."""
        return self.status == INCLUDED and (self.bytecode is None or self.bytecode == "match")

    @property
    def passed(self) -> bool:
        """Every check passed (a verified inclusion with matching bytecode, or a verified absence)."""
        return self.approved or self.status == ABSENT

    def to_obj(self) -> dict:
        return {"pv": self.pv, "origin": self.origin, "status": self.status, "approved": self.approved,
                "reason": self.reason, "mirror": self.mirror, "reachable": self.reachable, "epoch": self.epoch,
                "str_time": self.str_time, "age": self.age, "signature_ok": self.signature_ok,
                "chain_ok": self.chain_ok, "chain": self.chain, "fresh": self.fresh, "proof": self.proof_kind,
                "proof_source": self.proof_source, "properties": self.properties, "bytecode": self.bytecode,
                "bytecode_warnings": self.bytecode_warnings, "explanation": self.explanation,
                "explanation_authenticated": False if self.explanation is not None else None,
                "evidence": self.evidence, "attempts": self.attempts}


@dataclass
class Verdict:
    name: str
    accepted: bool
    formula: str
    pvs: dict[str, PvReport]
    now: int = 0
    problems: list[str] = field(default_factory=list)  # verdict-wide problems (bundles)
    bytecode_checked: bool = True  # the peer's own bytes were compared with every binding
    metadata_only: bool = False  # the caller asked to accept on the PVs' metadata alone

    @property
    def outcome(self) -> str:
        """accept | accept-metadata-only | incomplete | reject. Without the peer's bytecode a
        satisfied formula only says the PVs vouch for *some* bytes under this name, not for the
        bytes the peer is about to load: that is incomplete unless the caller said otherwise."""
        if not self.accepted:
            return "reject"
        if self.bytecode_checked:
            return "accept"
        return "accept-metadata-only" if self.metadata_only else "incomplete"

    @property
    def ok(self) -> bool:
        """The answer a caller may act on: accepted, and on the bytes it holds unless it chose not to."""
        return self.outcome in ("accept", "accept-metadata-only")

    @property
    def headline(self) -> str:
        return {"accept": "ACCEPT", "accept-metadata-only": "ACCEPT (metadata only: bytecode not checked)",
                "incomplete": "INCOMPLETE (bytecode not checked)", "reject": "REJECT"}[self.outcome]

    def to_obj(self) -> dict:
        return {"name": self.name, "accepted": self.ok, "outcome": self.outcome, "verdict": self.headline,
                "formula_satisfied": self.accepted, "bytecode_checked": self.bytecode_checked,
                "metadata_only": self.metadata_only, "require": self.formula, "now": self.now,
                "problems": self.problems, "pvs": {k: v.to_obj() for k, v in self.pvs.items()}}


def evaluate(trust: Trust, reports: Mapping[str, PvReport]) -> bool:
    approved = {pv: r.approved for pv, r in reports.items()}
    props = {pv: r.properties for pv, r in reports.items() if r.approved}
    return trust.formula.evaluate_with(approved, props)


# ---------------------------------------------------------------------- bytecode held by the peer
class BytecodeDir:
    """The plugin's files as the peer holds them; only the files a binding or the manifest
    names are read, never through a symlink."""

    MAX_FILE_BYTES = 64 << 20

    def __init__(self, directory: str | Path) -> None:
        self.root = Path(directory)
        if not self.root.is_dir():
            raise PdsError(f"{directory}: not a directory")
        self._data: dict[str, bytes | None] = {}

    def read(self, rel: str) -> bytes | None:
        """The bytes of `rel` inside the directory, None if missing; PdsError if unsafe."""
        if rel not in self._data:
            self._data[rel] = self._read(rel)
        return self._data[rel]

    def sha256(self, rel: str) -> str | None:
        """SHA-256 hex of `rel`, None if missing."""
        data = self.read(rel)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def _read(self, rel: str) -> bytes | None:
        path = self.root
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
            raise PdsError(f"unsafe bytecode path {rel!r}")
        mode = 0
        for i, part in enumerate(parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(mode):
                raise PdsError(f"{path}: is a symlink; refusing to follow it")
            if i < len(parts) - 1 and not stat.S_ISDIR(mode):
                return None
        if not stat.S_ISREG(mode):
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PdsError(f"{path}: is a symlink; refusing to follow it") from None
            raise PdsError(f"{path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(self.MAX_FILE_BYTES + 1)
        if len(data) > self.MAX_FILE_BYTES:
            raise PdsError(f"{path}: larger than {self.MAX_FILE_BYTES} bytes")
        return data


class _HeldFiles(Mapping):
    """A read-only mapping view of a BytecodeDir for the manifest parsers, which only look
    files up by path (`in`, `[]`): it lists nothing, so only the files the manifest names are
    ever read from the peer's directory."""

    def __init__(self, held: BytecodeDir) -> None:
        self.held = held

    def __getitem__(self, rel: str) -> bytes:
        data = self.held.read(rel)
        if data is None:
            raise KeyError(rel)
        return data

    def __contains__(self, rel: object) -> bool:
        return isinstance(rel, str) and self.held.read(rel) is not None

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def binding_files(binding: Binding) -> dict[str, str]:
    """Every file a binding names (manifest and pluglets) with its SHA-256 hex."""
    return {binding.manifest_path: binding.manifest_sha256, **binding.pluglets}


def bytecode_problem(binding: Binding, held: BytecodeDir | Mapping[str, bytes]) -> str | None:
    """Why the bytecode a peer holds is not the binding's, or None when every file matches."""
    for path, digest in sorted(binding_files(binding).items()):
        if isinstance(held, BytecodeDir):
            actual = held.sha256(path)
        else:
            actual = hashlib.sha256(held[path]).hexdigest() if path in held else None
        if actual is None:
            return f"{path} is missing from the bytecode directory"
        if actual != digest:
            return f"{path} hashes to {actual[:16]}..., the binding says {digest[:16]}..."
    return None


def manifest_check(binding: Binding, held: BytecodeDir) -> tuple[str | None, list[str]]:
    """(problem, warnings) about the manifest as the peer would load it, once the binding's
    files match: every object it loads must be covered by the binding; an included PQUIC
    fragment the binding does not cover is a warning (its content is not attested)."""
    from pds_log.core.manifest import parse_manifest_at

    files = _HeldFiles(held)
    try:
        manifest = parse_manifest_at(files, binding.manifest_path, binding.name)
    except (FormatError, KeyError) as exc:
        return f"the manifest as held does not parse: {exc}", []
    except PdsError as exc:
        return str(exc), []
    unbound = [p for p in manifest.pluglets if p not in binding.pluglets]
    if unbound:
        return f"the manifest loads {', '.join(unbound)}, which the binding does not cover", []
    covered = set(binding_files(binding))
    return None, [f"{f} (included by the manifest) is not covered by the binding: its content is not attested"
                  for f in manifest.fragments if f not in covered]


def held_bytecode_check(binding: Binding, held: BytecodeDir | Mapping[str, bytes]) -> tuple[str | None, list[str]]:
    """bytecode_problem, then (for a directory) manifest_check; never raises PdsError."""
    try:
        problem = bytecode_problem(binding, held)
        if problem is None and isinstance(held, BytecodeDir):
            return manifest_check(binding, held)
    except PdsError as exc:  # a symlink or an oversized file in the peer's own directory
        problem = str(exc)
    return problem, []


# ---------------------------------------------------------------------- checks shared with bundles
def record_proof(r: PvReport, proof: Proof, epoch: int, held: BytecodeDir | Mapping[str, bytes] | None) -> None:
    """Fill `r` from a proof verified against the STR of `epoch`: included (with the check of
    the bytecode the peer holds, when it holds some) or absent."""
    r.proof, r.proof_kind = proof, proof.kind
    if proof.kind == INCLUSION:
        r.status, r.binding = INCLUDED, proof.binding
        r.properties = list(proof.binding.properties)
        r.reason = f"included at epoch {epoch} ({', '.join(r.properties) or 'no properties'})"
        if held is not None:
            problem, r.bytecode_warnings = held_bytecode_check(proof.binding, held)
            r.bytecode = "match" if problem is None else f"mismatch: {problem}"
            if problem:
                r.reason = f"bytecode does not match the binding: {problem}"
    else:
        r.status = ABSENT
        r.reason = f"absent at epoch {epoch} ({describe(proof).split(': ', 1)[-1]}; absence proof verified)"


def freshness_problem(head, now: int, max_age: int) -> str | None:
    age = now - head.time
    if age > max_age:
        return (f"stale STR: epoch {head.epoch} was signed {age} s ago, over max_age {max_age} s "
                f"(expired, or the PV stopped signing)")
    if head.time > now + FUTURE_SKEW:
        return f"STR of epoch {head.epoch} is dated {head.time - now} s in the future (over {FUTURE_SKEW} s of skew)"
    return None


def write_evidence(found: equivocation.Equivocation, evidence_dir: Path | None, report: PvReport) -> str:
    """Record equivocation evidence in the report (and a file when there is a directory)."""
    report.evidence_json = found.to_json().decode()
    if evidence_dir is None:
        return "evidence in the JSON report"
    path = Path(evidence_dir) / f"equivocation-{found.verifier.name}-epoch{found.epoch}.json"
    atomic_write_bytes(path, found.to_json())
    report.evidence = str(path)
    return f"evidence: {path}"


def remembered(state: PeerState | None, pv: TrustedPv) -> SignedTreeRoot | None:
    """The last STR the state holds for this PV, verified again with the trusted key."""
    last = state.last(pv.origin) if state is not None else None
    if last is None:
        return None
    try:
        previous = open_str(last[1], pv.verifier)
    except (FormatError, VerificationError) as exc:
        raise MirrorProblem(f"the state file's STR for {pv.origin} does not verify with the trusted key ({exc}); "
                            f"if the PV changed its key, remove its entry from {state.path}", fatal=True) from None
    if previous.head.epoch != last[0]:
        raise MirrorProblem(f"the state file's entry for {pv.origin} says epoch {last[0]} but holds the STR of "
                            f"epoch {previous.head.epoch}", fatal=True)
    return previous


# ---------------------------------------------------------------------- one PV over HTTP
class PvChecker:
    def __init__(self, trust: Trust, fetcher: Fetcher, state: PeerState | None, now: int, via: str,
                 bytecode: BytecodeDir | Mapping[str, bytes] | None, evidence_dir: Path | None = None) -> None:
        self.trust, self.fetcher, self.state, self.now, self.via = trust, fetcher, state, now, via
        self.bytecode = bytecode
        self.evidence_dir = evidence_dir
        self.seen: dict[str, dict[int, SignedTreeRoot]] = {}  # origin -> epoch -> STR seen in this run

    def check(self, name: str, pv: TrustedPv) -> PvReport:
        best: PvReport | None = None
        attempts: list[str] = []
        for mirror in pv.mirrors:
            r = PvReport(pv.name, pv.origin, mirror=mirror)
            try:
                self._check_mirror(name, pv, mirror, r)
            except FetchError as exc:
                attempts.append(f"{mirror}: unreachable: {exc.cause}")
                r.status, r.reason = (UNREACHABLE if r.stage == 0 else INVALID), _fetch_reason(exc, r)
            except MirrorProblem as exc:
                attempts.append(f"{mirror}: {exc}")
                r.status, r.reason = INVALID, str(exc)
                if exc.fatal:
                    best = r
                    break
            except PdsError as exc:  # FormatError, VerificationError from a check not wrapped above
                attempts.append(f"{mirror}: {exc}")
                r.status, r.reason = INVALID, str(exc)
            except (ValueError, LookupError, TypeError, RecursionError, AssertionError) as exc:
                # a mirror's bytes reach several parsers: should one of them fail in a way it
                # does not report as a FormatError, that is still this mirror's bad answer, and
                # the peer tries the next mirror instead of crashing
                problem = f"malformed answer ({type(exc).__name__}: {_one_line(str(exc), 200)})"
                attempts.append(f"{mirror}: {problem}")
                r.status, r.reason = INVALID, problem
            else:
                best = r
                break
            if best is None or r.stage > best.stage:
                best = r
        assert best is not None
        best.attempts = attempts
        if best.status == UNREACHABLE:
            best.mirror = None
            best.reason = "no mirror answered (" + "; ".join(a.split(": ", 1)[1] for a in attempts) + ")"
        if best.passed and self.state is not None:
            self.state.remember(pv.origin, best.epoch, best.signed.note, source=best.mirror or "", now=self.now)
        return best

    def _get(self, mirror: str, path: str, limit: int) -> bytes:
        return self.fetcher.get(mirror, path, max_bytes=limit)

    def _open(self, pv: TrustedPv, data: bytes, what: str, r: PvReport) -> SignedTreeRoot:
        try:
            signed = open_str(data, pv.verifier)
        except (FormatError, VerificationError) as exc:
            raise MirrorProblem(f"{what} rejected: {exc}") from None
        self._note_seen(pv, signed, r)
        return signed

    def _note_seen(self, pv: TrustedPv, signed: SignedTreeRoot, r: PvReport) -> None:
        """Two validly signed, different STRs for one epoch, from any sources: equivocation."""
        epochs = self.seen.setdefault(pv.origin, {})
        other = epochs.setdefault(signed.head.epoch, signed)
        if other.head.text() != signed.head.text():
            found = equivocation.Equivocation(pv.verifier, other, signed)
            where = write_evidence(found, self.evidence_dir, r)
            raise MirrorProblem(f"equivocation: two different signed STRs for epoch {signed.head.epoch} "
                                f"({where})", fatal=True)

    def _check_mirror(self, name: str, pv: TrustedPv, mirror: str, r: PvReport) -> None:
        data = self._get(mirror, site.LATEST, MAX_STR_BYTES)
        r.reachable, r.stage = True, 1
        r.signature_ok = False
        signed = self._open(pv, data, "latest STR", r)
        head = signed.head
        r.signature_ok, r.stage = True, 2
        r.epoch, r.str_time, r.signed, r.age = head.epoch, head.time, signed, self.now - head.time
        r.chain_ok = False
        r.chain = self._check_history(pv, mirror, signed, r)
        r.chain_ok, r.stage = True, 3
        problem = freshness_problem(head, self.now, self.trust.max_age)
        r.fresh = problem is None
        if problem:
            raise MirrorProblem(problem)
        r.stage = 4
        proof = self._prove(name, mirror, signed, r)
        r.stage = 5
        record_proof(r, proof, head.epoch, self.bytecode)
        if r.bytecode == "match":
            r.stage = 6
        if r.status == ABSENT:
            r.explanation = self._explanation(mirror, name, head.epoch)

    def _check_history(self, pv: TrustedPv, mirror: str, signed: SignedTreeRoot, r: PvReport) -> str:
        previous = remembered(self.state, pv)
        if previous is None:
            return "first STR seen (nothing to chain to)" if self.state is not None else "not checked (no state)"
        last_epoch, epoch = previous.head.epoch, signed.head.epoch
        self._note_seen(pv, previous, r)  # the one we hold against everything this run sees
        if epoch < last_epoch:
            raise MirrorProblem(f"rollback: the mirror serves epoch {epoch}, this peer already verified epoch "
                                f"{last_epoch}")
        if epoch == last_epoch:
            return f"same STR as last seen (epoch {epoch})"
        if epoch - last_epoch > MAX_CHAIN_FETCH:
            raise MirrorProblem(f"{epoch - last_epoch} epochs since the last verified one; too many to chain")
        prev = previous
        for e in range(last_epoch + 1, epoch + 1):
            if e == epoch:
                step = signed
            else:
                try:
                    data = self._get(mirror, site.str_path(e), MAX_STR_BYTES)
                except FetchError as exc:
                    raise MirrorProblem(f"STR chain: cannot fetch the STR of epoch {e} ({exc.cause})") from None
                step = self._open(pv, data, f"STR of epoch {e}", r)
                if step.head.epoch != e:
                    raise MirrorProblem(f"STR chain: {site.str_path(e)} holds the STR of epoch {step.head.epoch}")
            try:
                check_chain(prev, step)
            except VerificationError as exc:
                if e == last_epoch + 1 and step.head.prev != previous.hash:
                    self._fork_check(pv, mirror, previous, r)
                raise MirrorProblem(f"STR chain broken at epoch {e}: {exc}") from None
            prev = step
        return f"chained link by link from epoch {last_epoch} ({epoch - last_epoch} new)"

    def _fork_check(self, pv: TrustedPv, mirror: str, previous: SignedTreeRoot, r: PvReport) -> None:
        """The mirror's chain does not continue our STR: does it hold a different STR for our
        epoch? (That is proof of equivocation; _note_seen raises.)"""
        try:
            data = self._get(mirror, site.str_path(previous.head.epoch), MAX_STR_BYTES)
            theirs = open_str(data, pv.verifier)
        except (FetchError, FormatError, VerificationError):
            return
        self._note_seen(pv, theirs, r)

    def _prove(self, name: str, mirror: str, signed: SignedTreeRoot, r: PvReport) -> Proof:
        head = signed.head
        try:
            proof = None
            if self.via == "proof":
                try:
                    data = self._get(mirror, site.proof_path(head.epoch, name), MAX_PROOF_BYTES)
                except FetchError as exc:
                    if not exc.not_found:
                        raise
                    r.proof_source = f"tiles (no one-file proof at epoch {head.epoch})"
                else:
                    path = site.proof_path(head.epoch, name)
                    proof = Proof.from_obj(jsondoc.loads(data, path, max_bytes=MAX_PROOF_BYTES))
                    r.proof_source = "one-file proof"
                    if proof.name != name:
                        raise VerificationError(f"the one-file proof is for {proof.name}, not {name}")
            if proof is None:
                r.proof_source = r.proof_source or "tiles"
                proof = self._prove_from_tiles(name, mirror, head)
            verify_proof(proof, head.root, head.epoch)
        except FetchError as exc:
            raise MirrorProblem(f"proof material unavailable: {exc}") from None
        except (FormatError, VerificationError) as exc:
            raise MirrorProblem(f"proof rejected: {exc}") from None
        return proof

    def _prove_from_tiles(self, name: str, mirror: str, head) -> Proof:
        siblings, leaf = prove_from_tiles(
            name_key(name), head.root, lambda level, h: self._get(mirror, site.tile_path(level, h), MAX_TILE_BYTES))

        def binding_of(n: str) -> Binding:
            path = site.binding_by_value_path(leaf[1])
            data = self._get(mirror, path, MAX_BINDING_BYTES)
            if hashlib.sha256(data).digest() != leaf[1]:
                raise VerificationError(f"{path} does not hash to the value at the leaf (tampered binding)")
            binding = Binding.from_obj(jsondoc.loads(data, path, max_bytes=MAX_BINDING_BYTES), path)
            if binding.encode() != data:
                raise FormatError(f"{path}: not in canonical form (sorted keys, no spaces)")
            return binding

        return make_proof_from_leaf(name, head.epoch, siblings, leaf, binding_of)

    def _explanation(self, mirror: str, name: str, epoch: int) -> str | None:
        """The PV's own words about an absent plugin (status/<name>.json): not authenticated.
        None when the mirror has none; MirrorProblem when it serves one that cannot be read."""
        path = site.status_path(name)
        try:
            doc = jsondoc.loads(self._get(mirror, path, MAX_STATUS_BYTES), path, max_bytes=MAX_STATUS_BYTES)
        except FetchError as exc:
            if exc.not_found:
                return None
            raise MirrorProblem(f"the PV's explanation is unavailable: {exc}") from None
        except FormatError as exc:
            raise MirrorProblem(f"the PV's explanation is malformed: {exc}") from None
        if not isinstance(doc, dict):
            raise MirrorProblem(f"the PV's explanation is malformed: {path}: not a JSON object")
        status, at, reason = doc.get("status"), doc.get("epoch"), doc.get("reason")
        text = f"{status} at epoch {at}: {reason}" if reason else f"{status} at epoch {at}"
        if status == "accepted":
            text += " (contradicts the verified absence)"
        return _one_line(text)


def _fetch_reason(exc: FetchError, r: PvReport) -> str:
    return f"unreachable: {exc}" if r.stage == 0 else f"incomplete answer: {exc}"


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def verify_plugin(name: str, trust: Trust, *, bytecode_dir: str | Path | None = None, now: int | None = None,
                  state: PeerState | None = None, via: str = "tiles", fetcher: Fetcher | None = None,
                  use_state: bool = True, evidence_dir: str | Path | None = None,
                  metadata_only: bool = False) -> Verdict:
    """Check `name` at every trusted PV and evaluate the requirement formula.

    Without `bytecode_dir` the verdict is `incomplete` (not ok) unless `metadata_only`: the
    bindings are checked, the bytes the peer will load are not.

    state: the peer state (default: loaded from trust.state_path unless use_state=False);
    it is saved when a PV's STR advanced. evidence_dir: where equivocation evidence goes
    (default: evidence/ next to the state file)."""
    validate_name(name)
    if via not in VIAS:
        raise PdsError(f"unknown proof path {via!r} (tiles or proof)")
    if state is None and use_state:
        state = PeerState.load(trust.state_path)
    if evidence_dir is None and state is not None:
        evidence_dir = state.path.parent / "evidence"
    held = BytecodeDir(bytecode_dir) if bytecode_dir is not None else None
    now = int(time.time()) if now is None else int(now)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher()
    checker = PvChecker(trust, fetcher, state, now, via, held, Path(evidence_dir) if evidence_dir is not None else None)
    try:
        reports = {pv_name: checker.check(name, pv) for pv_name, pv in trust.pvs.items()}
    finally:
        if own_fetcher:
            fetcher.close()
    if state is not None:
        state.save()
    return Verdict(name, evaluate(trust, reports), trust.formula.text, reports, now,
                   bytecode_checked=held is not None, metadata_only=metadata_only)


__all__ = ["ABSENT", "INCLUDED", "INVALID", "UNREACHABLE", "BytecodeDir", "PvReport", "Verdict", "binding_files",
           "bytecode_problem", "held_bytecode_check", "manifest_check", "record_proof", "evaluate", "freshness_problem",
           "verify_plugin"]
