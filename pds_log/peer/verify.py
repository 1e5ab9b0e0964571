"""Peer-side verification of a plugin against a set of trusted PVs.

For each PV, mirrors are tried in order; from a mirror the peer takes the latest STR and
checks its signature, its freshness, and that it continues the last STR this peer verified
(an older epoch is a rollback; a different STR for the same epoch is equivocation, for which
self-contained evidence is written; a newer one must chain link by link). Then it proves the
plugin's inclusion or absence against the STR's root -- by walking the tiles (each checked
against the hash its parent gave) or with a one-file proof -- and, when the peer holds the
bytecode, checks every file the binding names. A mirror that fails a check is skipped with
its reason; a PV none of whose mirrors gives a verified answer counts as false, never as an
error that accepts. The requirement formula is monotone, so that is safe.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core import equivocation
from pds_log.core import log_layout as logl
from pds_log.core import static_layout as site
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.names import name_key, validate_name
from pds_log.core.proof import INCLUSION, Proof, make_proof_from_leaf, verify_proof
from pds_log.core.signed_root import SignedTreeRoot, check_chain, open_str
from pds_log.core.tiles import prove_from_tiles
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.http import FetchError, Fetcher

from .trust import PeerState, Trust, TrustedPv

FUTURE_SKEW = 300
MAX_CHAIN_FETCH = 100_000

INCLUDED, ABSENT, UNREACHABLE, INVALID = "included", "absent", "unreachable", "invalid"


class MirrorProblem(Exception):
    """What was wrong with one mirror's answer (one line)."""


@dataclass
class PvReport:
    pv: str
    origin: str
    status: str = UNREACHABLE
    reason: str = ""
    mirror: str | None = None
    epoch: int | None = None
    str_time: int | None = None
    proof_kind: str | None = None
    properties: list[str] = field(default_factory=list)
    bytecode: str | None = None  # "match", "mismatch: ...", or None when not checked
    explanation: str | None = None  # the PV's (unauthenticated) reason for an absence
    evidence: str | None = None
    attempts: list[str] = field(default_factory=list)
    binding: Binding | None = None
    proof: Proof | None = None
    signed: SignedTreeRoot | None = None

    @property
    def approved(self) -> bool:
        return self.status == INCLUDED and (self.bytecode is None or self.bytecode == "match")

    def to_obj(self) -> dict:
        return {"pv": self.pv, "origin": self.origin, "status": self.status, "approved": self.approved,
                "reason": self.reason, "mirror": self.mirror, "epoch": self.epoch, "str_time": self.str_time,
                "proof": self.proof_kind, "properties": self.properties, "bytecode": self.bytecode,
                "explanation": self.explanation, "evidence": self.evidence, "attempts": self.attempts}


@dataclass
class Verdict:
    name: str
    accepted: bool
    formula: str
    pvs: dict[str, PvReport]

    def to_obj(self) -> dict:
        return {"name": self.name, "accepted": self.accepted, "require": self.formula,
                "pvs": {k: v.to_obj() for k, v in self.pvs.items()}}


def evaluate(trust: Trust, reports: dict[str, PvReport]) -> bool:
    approved = {pv: r.approved for pv, r in reports.items()}
    props = {pv: r.properties for pv, r in reports.items() if r.approved}
    return trust.formula.evaluate_with(approved, props)


def bytecode_problem(binding: Binding, files: dict[str, bytes]) -> str | None:
    """Why the bytecode a peer holds is not the binding's, or None when every file matches."""
    expected = {binding.manifest_path: binding.manifest_sha256, **binding.pluglets}
    for path, digest in sorted(expected.items()):
        if path not in files:
            return f"{path} is missing from the bytecode directory"
        actual = hashlib.sha256(files[path]).hexdigest()
        if actual != digest:
            return f"{path} hashes to {actual[:16]}..., the binding says {digest[:16]}..."
    return None


def read_bytecode_dir(directory: str | Path) -> dict[str, bytes]:
    directory = Path(directory)
    if not directory.is_dir():
        raise PdsError(f"{directory}: not a directory")
    files = {}
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(directory).as_posix()] = path.read_bytes()
    return files


class PvChecker:
    def __init__(self, trust: Trust, fetcher: Fetcher, state: PeerState | None, now: int, via: str,
                 bytecode: dict[str, bytes] | None) -> None:
        self.trust, self.fetcher, self.state, self.now, self.via, self.bytecode = trust, fetcher, state, now, via, bytecode

    def check(self, name: str, pv: TrustedPv) -> PvReport:
        report = PvReport(pv.name, pv.verifier.name)
        fetch_failures = 0
        for mirror in pv.mirrors:
            try:
                self._check_mirror(name, pv, mirror, report)
                report.mirror = mirror
                return report
            except FetchError as exc:
                fetch_failures += 1
                report.attempts.append(f"{mirror}: unreachable: {exc.cause} ({exc.url})")
            except MirrorProblem as exc:
                report.attempts.append(f"{mirror}: {exc}")
        if fetch_failures == len(pv.mirrors):
            report.status = UNREACHABLE
            report.reason = "no mirror answered (" + "; ".join(a.split(": ", 1)[1] for a in report.attempts) + ")"
        else:
            report.status = INVALID
            report.reason = next(a.split(": ", 1)[1] for a in report.attempts if ": unreachable: " not in a)
        return report

    def _get(self, mirror: str, path: str) -> bytes:
        return self.fetcher.get(mirror, path)

    def _check_mirror(self, name: str, pv: TrustedPv, mirror: str, report: PvReport) -> None:
        try:
            signed = open_str(self._get(mirror, site.LATEST), pv.verifier)
        except (FormatError, VerificationError) as exc:
            raise MirrorProblem(f"latest STR rejected: {exc}") from None
        head = signed.head
        age = self.now - head.time
        if age > self.trust.max_age:
            raise MirrorProblem(f"stale STR: epoch {head.epoch} was signed {age} s ago, over max_age "
                                f"{self.trust.max_age} s (expired, or the PV stopped signing)")
        if head.time > self.now + FUTURE_SKEW:
            raise MirrorProblem(f"STR of epoch {head.epoch} is dated {head.time - self.now} s in the future")
        self._check_history(pv, mirror, signed, report)
        report.epoch, report.str_time, report.signed = head.epoch, head.time, signed
        proof = self._prove(name, mirror, signed)
        report.proof = proof
        report.proof_kind = proof.kind
        if proof.kind == INCLUSION:
            report.status = INCLUDED
            report.binding = proof.binding
            report.properties = list(proof.binding.properties)
            report.reason = f"included at epoch {head.epoch} ({', '.join(proof.binding.properties) or 'no properties'})"
            if self.bytecode is not None:
                problem = bytecode_problem(proof.binding, self.bytecode)
                report.bytecode = "match" if problem is None else f"mismatch: {problem}"
                if problem:
                    report.reason = f"bytecode does not match the binding: {problem}"
        else:
            report.status = ABSENT
            report.reason = f"absent at epoch {head.epoch} (absence proof verified)"
            report.explanation = self._explanation(mirror, name)
        if self.state is not None:
            self.state.remember(pv.verifier.name, head.epoch, signed.note)

    def _check_history(self, pv: TrustedPv, mirror: str, signed: SignedTreeRoot, report: PvReport) -> None:
        if self.state is None:
            return
        last = self.state.last(pv.verifier.name)
        if last is None:
            return
        last_epoch, last_note = last
        epoch = signed.head.epoch
        if epoch < last_epoch:
            raise MirrorProblem(f"rollback: the mirror serves epoch {epoch}, this peer already verified epoch "
                                f"{last_epoch}")
        previous = open_str(last_note, pv.verifier)
        if epoch == last_epoch:
            if previous.head.text() != signed.head.text():
                found = equivocation.detect(previous.note, signed.note, pv.verifier)
                path = self.state.path.parent / "evidence" / f"{pv.verifier.name}-epoch{epoch}.json"
                atomic_write_bytes(path, found.to_json())
                report.evidence = str(path)
                raise MirrorProblem(f"equivocation: a second, different STR for epoch {epoch} (evidence: {path})")
            return
        if epoch - last_epoch > MAX_CHAIN_FETCH:
            raise MirrorProblem(f"{epoch - last_epoch} epochs since the last verified one; too many to chain")
        prev = previous
        for e in range(last_epoch + 1, epoch):
            try:
                step = open_str(self._get(mirror, logl.str_path(e)), pv.verifier)
                check_chain(prev, step)
            except (FormatError, VerificationError) as exc:
                raise MirrorProblem(f"STR chain broken at epoch {e}: {exc}") from None
            prev = step
        try:
            check_chain(prev, signed)
        except VerificationError as exc:
            raise MirrorProblem(f"latest STR does not chain to epoch {epoch - 1}: {exc}") from None

    def _prove(self, name: str, mirror: str, signed: SignedTreeRoot) -> Proof:
        head = signed.head
        try:
            if self.via == "proof":
                data = self._get(mirror, site.proof_path(head.epoch, name))
                proof = Proof.from_json(data)
                if proof.name != name:
                    raise MirrorProblem(f"proof rejected: it is for {proof.name}, not {name}")
            else:
                siblings, leaf = prove_from_tiles(name_key(name), head.root,
                                                  lambda level, h: self._get(mirror, site.tile_path(level, h)))

                def binding_of(n: str) -> Binding:
                    data = self._get(mirror, site.binding_by_value_path(leaf[1]))
                    return Binding.decode(data, f"binding {leaf[1].hex()[:16]}...")

                proof = make_proof_from_leaf(name, head.epoch, siblings, leaf, binding_of)
            verify_proof(proof, head.root, head.epoch)
        except FetchError as exc:
            if exc.status == 404 and self.via == "proof":
                raise MirrorProblem(f"no one-file proof for {name} at epoch {head.epoch} "
                                    f"(published only for changed plugins; use the tile path)") from None
            raise MirrorProblem(f"proof material unavailable: {exc}") from None
        except (FormatError, VerificationError) as exc:
            raise MirrorProblem(f"proof rejected: {exc}") from None
        return proof

    def _explanation(self, mirror: str, name: str) -> str | None:
        try:
            import json

            doc = json.loads(self._get(mirror, site.status_path(name)))
            return f"{doc.get('status')} at epoch {doc.get('epoch')}: {doc.get('reason')}"
        except (FetchError, ValueError, AttributeError):
            return None


def verify_plugin(name: str, trust: Trust, *, bytecode_dir: str | Path | None = None, now: int | None = None,
                  state: PeerState | None = None, via: str = "tiles", fetcher: Fetcher | None = None,
                  use_state: bool = True) -> Verdict:
    """Check `name` at every trusted PV and evaluate the requirement formula."""
    validate_name(name)
    if via not in ("tiles", "proof"):
        raise PdsError(f"unknown proof path {via!r} (tiles or proof)")
    if state is None and use_state:
        state = PeerState.load(trust.state_path)
    files = read_bytecode_dir(bytecode_dir) if bytecode_dir is not None else None
    checker = PvChecker(trust, fetcher or Fetcher(), state, int(time.time()) if now is None else now, via, files)
    reports = {pv_name: checker.check(name, pv) for pv_name, pv in trust.pvs.items()}
    if state is not None:
        state.save()
    return Verdict(name, evaluate(trust, reports), trust.formula.text, reports)
