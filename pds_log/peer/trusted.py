"""The peer's one trust pipeline: what it trusts about a PV, and the ordered checks of an answer.

In the style of python-tuf's ``TrustedMetadataSet``: a `PvTrustedState` holds what this peer
trusts about one PV origin during a run -- its key, the newest STR it verified before (its
state file entry, verified again with the key), the freshness bounds, and every STR seen this
run from any source. An `Answer` is one source's claim about one plugin (a mirror, a bundle
entry), checked against that state by methods that must be called in this order:

    answer = state.answer(name, source)
    epochs = answer.accept_str(note)        # signature; rollback, equivocation; what to chain
    for e in epochs:
        answer.accept_next(note_of(e), e)   # each STR between the one held and the new one
    answer.accept_log(proofs)               # STR v2 only, when answer.log_request says so
    answer.accept_chain()                   # the last link, then witnesses and freshness
    answer.accept_proof(proof)              # inclusion or absence against the STR's root
    answer.accept_bytecode(held)            # the bytes the peer holds, if it holds some
    report = answer.report()                # an immutable PvReport
    state.commit(answer)                    # the STR is now trusted (and goes to the state file)

Each check that fails raises its `pds_log.peer.errors` type; `answer.failed(exc)` makes the
report of a refused answer. Nothing here does I/O: the caller fetches (the mirror walk in
verify.py, the bundle in bundle.py), writes evidence and saves the state file. A different
chain (a checkpoint with a consistency proof) is one more method between accept_str and
accept_chain, in place of the accept_next loop.

STR v2 (a C2SP checkpoint of the PV's epoch log, `pds_log.peer.logchain`): `accept_str`
returns no epochs; `answer.log_request` names the epoch-log proofs it needs (the inclusion of
its own record; the consistency from the size held, or the inclusion of the v1 record held),
which `accept_log` checks against the signed roots. A same-size checkpoint with another root,
or a consistency proof that yields the new root but another old one, is equivocation, with a
`pds-checkpoint-equivocation` document as evidence. When trust.yaml names witnesses for the
PV, `accept_chain` also requires their quorum's valid cosignatures (`Unwitnessed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from pds_log.core import checkpoint as cp
from pds_log.core import static_layout as site
from pds_log.core import tlog
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.proof import Proof, describe, verify_proof
from pds_log.core.signed_root import SignedTreeRoot, TreeHead, check_chain
from pds_log.core.strs import TreeHeadV2

from .bytecode import BytecodeDir, held_bytecode_check
from .errors import (
    BadProof,
    BadSignature,
    BadState,
    BrokenChain,
    Check,
    Equivocation,
    FutureDated,
    Rollback,
    Stale,
    TooFarBehind,
    TrustProblem,
    Unwitnessed,
)
from .logchain import (
    AnySigned,
    LogProofs,
    LogRequest,
    SignedCheckpoint,
    check_cosigned,
    open_any,
    record_of,
)
from .trust import TrustedPv

FUTURE_SKEW = 300  # seconds an STR may be dated ahead of the peer's clock
MAX_CHAIN_FETCH = 100_000  # intermediate STRs a peer will fetch to catch up


class Status(StrEnum):
    """A PV's answer about a plugin."""

    INCLUDED = "included"  # a verified inclusion proof
    ABSENT = "absent"  # a verified absence proof
    UNREACHABLE = "unreachable"  # no source answered
    INVALID = "invalid"  # an answer came, and failed a check


class OutOfOrder(RuntimeError):
    """An Answer method called before the checks it depends on (a bug of the caller)."""


@dataclass(frozen=True)
class PvReport:
    """One PV's answer about one plugin (immutable): the status, and each check that ran with
    its outcome (`checks`; a check not in it was not reached, or not possible offline)."""

    pv: str
    origin: str
    status: Status = Status.UNREACHABLE
    reason: str = ""
    mirror: str | None = None
    checks: Mapping[Check, bool] = field(default_factory=lambda: MappingProxyType({}))
    signed: AnySigned | None = None
    age: int | None = None  # seconds between the STR's time and the peer's clock
    chain: str | None = None  # how the STR relates to the last one seen
    proof: Proof | None = None
    proof_source: str | None = None  # tiles | one-file proof | bundle
    bytecode: str | None = None  # "match", "mismatch: ...", or None when not checked
    bytecode_warnings: tuple[str, ...] = ()
    explanation: str | None = None  # the PV's (unauthenticated) reason for an absence
    problem: TrustProblem | None = None  # why the answer was refused (branch on its type)
    evidence: str | None = None  # path of the equivocation evidence written
    evidence_json: str | None = None
    attempts: tuple[str, ...] = ()
    witnessed: tuple[str, ...] = ()  # the required witnesses whose valid cosignatures the STR carries

    def _check(self, check: Check) -> bool | None:
        return self.checks.get(check)

    reachable = property(lambda self: bool(self._check(Check.ANSWER)))
    signature_ok = property(lambda self: self._check(Check.SIGNATURE))
    chain_ok = property(lambda self: self._check(Check.CHAIN))
    fresh = property(lambda self: self._check(Check.FRESHNESS))

    @property
    def progress(self) -> int:
        """The last check passed (to pick the most telling of several failed answers)."""
        return max((c for c, ok in self.checks.items() if ok), default=0)

    @property
    def epoch(self) -> int | None:
        return self.signed.head.epoch if self.signed is not None else None

    @property
    def str_time(self) -> int | None:
        return self.signed.head.time if self.signed is not None else None

    @property
    def proof_kind(self) -> str | None:
        return self.proof.kind if self.proof is not None else None

    @property
    def binding(self) -> Binding | None:
        return self.proof.binding if self.proof is not None and self.status == Status.INCLUDED else None

    @property
    def properties(self) -> list[str]:
        return list(self.proof.binding.properties) if self.proof is not None and self.proof.binding else []

    @property
    def approved(self) -> bool:
        """The PV vouches for the plugin: verified inclusion and, if checked, the same bytecode."""
        return self.status == Status.INCLUDED and (self.bytecode is None or self.bytecode == "match")

    @property
    def passed(self) -> bool:
        """Every check passed (a verified inclusion with matching bytecode, or a verified absence)."""
        return self.approved or self.status == Status.ABSENT

    def replace(self, **changes) -> "PvReport":
        return dataclasses.replace(self, **changes)

    def to_obj(self) -> dict:
        return {"pv": self.pv, "origin": self.origin, "status": self.status, "approved": self.approved,
                "reason": self.reason, "mirror": self.mirror, "reachable": self.reachable, "epoch": self.epoch,
                "str_time": self.str_time, "age": self.age, "signature_ok": self.signature_ok,
                "chain_ok": self.chain_ok, "chain": self.chain, "fresh": self.fresh, "proof": self.proof_kind,
                "proof_source": self.proof_source, "properties": self.properties, "bytecode": self.bytecode,
                "bytecode_warnings": list(self.bytecode_warnings), "explanation": self.explanation,
                "explanation_authenticated": False if self.explanation is not None else None,
                "evidence": self.evidence, "attempts": list(self.attempts), "str_version": self.str_version,
                "witnessed": list(self.witnessed)}

    @property
    def str_version(self) -> int | None:
        return None if self.signed is None else (2 if isinstance(self.signed, SignedCheckpoint) else 1)


def freshness_problem(head: TreeHead | TreeHeadV2, now: int, max_age: int) -> Stale | FutureDated | None:
    age = now - head.time
    if age > max_age:
        return Stale(f"stale STR: epoch {head.epoch} was signed {age} s ago, over max_age {max_age} s "
                     f"(expired, or the PV stopped signing)")
    if head.time > now + FUTURE_SKEW:
        return FutureDated(f"STR of epoch {head.epoch} is dated {head.time - now} s in the future "
                           f"(over {FUTURE_SKEW} s of skew)")
    return None


class PvTrustedState:
    """What this peer trusts about one PV origin during one run (see the module docstring).

    remembered: (epoch, note) of the newest STR verified before, from the state file; None
    when none. stateful: False when the peer keeps no state (nothing to chain to, nothing
    committed). where: the state file, named in the error when its entry does not verify."""

    def __init__(self, pv: TrustedPv, remembered: tuple[int, bytes] | None, *, now: int, max_age: int,
                 stateful: bool = True, where: str = "the state file") -> None:
        self.pv, self.now, self.max_age, self.stateful, self.where = pv, now, max_age, stateful, where
        self._remembered = remembered
        self._trusted: AnySigned | None = None
        self._seen: dict[int, SignedTreeRoot] = {}
        self._seen_v2: dict[int, SignedCheckpoint] = {}  # by tree size

    @property
    def origin(self) -> str:
        return self.pv.origin

    def trusted(self) -> AnySigned | None:
        """The newest STR verified for this PV (the state file's, or one committed this run)."""
        if self._trusted is None and self._remembered is not None:
            epoch, note = self._remembered
            try:
                previous = open_any(note, self.pv.verifier)
            except (FormatError, VerificationError) as exc:
                raise BadState(f"the state file's STR for {self.origin} does not verify with the trusted key ({exc}); "
                               f"if the PV changed its key, remove its entry from {self.where}") from None
            if previous.head.epoch != epoch:
                raise BadState(f"the state file's entry for {self.origin} says epoch {epoch} but holds the STR of "
                               f"epoch {previous.head.epoch}")
            self._trusted = previous
            self.witness(previous)
        return self._trusted

    def remembered_version(self) -> int | None:
        """1 or 2: the version of the STR held for this PV (None: none, or one that does not
        verify, which accept_str reports)."""
        try:
            held = self.trusted()
        except BadState:
            return None
        return None if held is None else (2 if isinstance(held, SignedCheckpoint) else 1)

    def witness(self, signed: AnySigned) -> None:
        """Remember an STR verified with the key, from any source: a different one already seen
        for the same epoch is equivocation (for STR v2: the same tree size, another root)."""
        if isinstance(signed, SignedCheckpoint):
            seen = self._seen_v2.setdefault(signed.head.epoch, signed)
            if seen.head.log_root != signed.head.log_root:
                evidence = cp.detect_equivocation(seen.note, signed.note, self.pv.verifier)
                raise Equivocation(f"equivocation: two signed checkpoints of size {signed.head.epoch} with "
                                   f"different log roots", evidence)
            return
        other = self._seen.setdefault(signed.head.epoch, signed)
        if other.head.text() != signed.head.text():
            from pds_log.core import equivocation

            raise Equivocation(f"equivocation: two different signed STRs for epoch {signed.head.epoch}",
                               equivocation.Equivocation(self.pv.verifier, other, signed))

    def witness_note(self, data: bytes) -> None:
        """witness() for a note that may not even verify (a fork check): only a verified one counts."""
        try:
            signed = open_any(data, self.pv.verifier)
        except (FormatError, VerificationError):
            return
        self.witness(signed)

    def answer(self, name: str, source: str, *, offline: bool = False) -> "Answer":
        return Answer(self, name, source, offline=offline)

    def commit(self, answer: "Answer") -> AnySigned | None:
        """The answer passed every check: its STR is trusted from now on (returned to be saved).
        An STR v2 whose consistency with the one held could not be checked (a bundle without
        that proof) is not: the next online check proves consistency from the one held."""
        if answer.signed is None or not answer.done:
            raise OutOfOrder("commit of an answer that did not pass every check")
        if not self.stateful or answer.unchained_v2:
            return None
        current = self.trusted()
        if current is None or current.head.epoch < answer.signed.head.epoch:
            self._trusted = answer.signed
        return answer.signed


class Answer:
    """One source's answer about one plugin, checked in order (see the module docstring).

    offline: a bundle, which cannot fetch the STRs between the one held and its own (the
    chain is then left to the next online check, and reported as not checked)."""

    def __init__(self, state: PvTrustedState, name: str, source: str, *, offline: bool = False) -> None:
        self.state, self.name, self.source, self.offline = state, name, source, offline
        self.checks: dict[Check, bool] = {}
        self.signed: AnySigned | None = None
        self.log_request: LogRequest | None = None  # STR v2: the epoch-log proofs accept_log needs
        self.unchained_v2 = False  # STR v2 accepted offline without a consistency proof from the one held
        self._log_done = False
        self._data = b""
        self.proof_source: str | None = "bundle" if offline else None
        self.done = False
        self._fields: dict[str, object] = {}
        self._link: AnySigned | None = None  # the last STR of the chain verified so far
        self._pending: list[int] = []
        self._start = 0  # the epoch the chain starts from

    @property
    def status(self) -> Status | None:
        """INCLUDED or ABSENT once the proof is verified, else None."""
        status = self._fields.get("status")
        return status if isinstance(status, Status) else None

    # ------------------------------------------------------------------ ordered checks
    def accept_str(self, data: bytes, what: str = "latest STR") -> list[int]:
        """Verify the source's STR; returns the epochs whose STRs must be passed to accept_next."""
        self.checks[Check.ANSWER] = True
        self._run(Check.SIGNATURE, lambda: self._open(data, what))
        return self._run(Check.CHAIN, self._plan_chain, mark=False)

    def accept_next(self, data: bytes, epoch: int) -> None:
        """One STR of the chain, for `epoch` (in the order accept_str returned them)."""
        if not self._pending or self._pending[0] != epoch:
            raise OutOfOrder(f"accept_next({epoch}): expected {self._pending[:1] or 'no more links'}")
        self._run(Check.CHAIN, lambda: self._link_next(data, epoch), mark=False)

    def accept_chain(self) -> None:
        """The last link (the source's STR itself), then freshness."""
        if self.signed is None or Check.FRESHNESS in self.checks:
            raise OutOfOrder("accept_chain before accept_str, or twice")
        if self._pending and not self.offline:
            raise OutOfOrder(f"accept_chain with links missing from epoch {self._pending[0]}")
        if self.log_request is not None and not self._log_done:
            raise OutOfOrder("accept_chain of an STR v2 before accept_log")
        if self._pending:
            self._fields["chain"] = (f"newer than epoch {self._start} seen; not chainable offline "
                                     f"(chained at the next online check)")
        elif isinstance(self.signed, SignedTreeRoot):
            self._run(Check.CHAIN, self._close_chain)
        else:
            self.checks[Check.CHAIN] = True
        self._run(Check.FRESHNESS, self._check_witnesses, mark=False)
        problem = freshness_problem(self.signed.head, self.state.now, self.state.max_age)
        self.checks[Check.FRESHNESS] = problem is None
        if problem is not None:
            raise problem

    def accept_log(self, proofs: LogProofs) -> None:
        """STR v2: the epoch-log proofs that `log_request` asked for, checked against the signed
        log roots (the inclusion of the STR's own record, then its link to the STR held)."""
        request, signed = self.log_request, self.signed
        if request is None or not isinstance(signed, SignedCheckpoint) or self._log_done:
            raise OutOfOrder("accept_log without a log request (v1 STR, or before accept_str), or twice")
        self._run(Check.CHAIN, lambda: self._check_log(request, signed, proofs), mark=False)
        self._log_done = True

    def accept_proof(self, proof: Proof, source: str | None = None) -> None:
        """Inclusion or absence of the plugin, proven against the STR's root and epoch."""
        if not self.checks.get(Check.FRESHNESS):
            raise OutOfOrder("accept_proof before accept_chain")
        self.proof_source = source or self.proof_source
        self._run(Check.PROOF, lambda: self._verify_proof(proof))
        self.done = True

    def accept_bytecode(self, held: BytecodeDir | Mapping[str, bytes]) -> None:
        """The bytes the peer holds against the binding (an absence has nothing to compare)."""
        proof = self._fields.get("proof")
        if not isinstance(proof, Proof):
            raise OutOfOrder("accept_bytecode before accept_proof")
        if proof.binding is None:  # an absence
            return
        problem, warnings = held_bytecode_check(proof.binding, held)
        self.checks[Check.BYTECODE] = problem is None
        self._fields.update(bytecode="match" if problem is None else f"mismatch: {problem}",
                            bytecode_warnings=tuple(warnings))
        if problem:
            self._fields["reason"] = f"bytecode does not match the binding: {problem}"
            self.done = False

    def explain(self, text: str | None) -> None:
        """The PV's own (unauthenticated) words about an absence."""
        self._fields["explanation"] = text

    # ------------------------------------------------------------------ reports
    def report(self, pv: str, **extra) -> PvReport:
        """The report of this answer as far as it got."""
        fields = {"status": self._fields.get("status", Status.INVALID), **self._fields, **extra}
        return PvReport(pv, self.state.origin, mirror=self.source, checks=MappingProxyType(dict(self.checks)),
                        signed=self.signed, age=None if self.signed is None else self.state.now - self.signed.head.time,
                        proof_source=self.proof_source, **fields)

    def failed(self, pv: str, problem: TrustProblem, reason: str | None = None, **extra) -> PvReport:
        """The report of a refused answer: `problem`'s check failed."""
        if problem.check is not None:
            self.checks[problem.check] = False
        self.done = False
        return self.report(pv, status=Status.INVALID, reason=reason or str(problem), problem=problem, **extra)

    # ------------------------------------------------------------------ internals
    def _run(self, check: Check, step, mark: bool = True):
        """Run one step of `check` (the last one when `mark`: the check has passed); a
        TrustProblem marks its own check failed (else this one)."""
        try:
            result = step()
        except TrustProblem as exc:
            self.checks[exc.check or check] = False
            raise
        if mark:
            self.checks[check] = True
        return result

    def _open(self, data: bytes, what: str) -> None:
        try:
            self.signed = open_any(data, self.state.pv.verifier)
        except (FormatError, VerificationError) as exc:
            raise BadSignature(f"{what} rejected: {exc}") from None
        self._data = data

    def _plan_chain(self) -> list[int]:
        assert self.signed is not None
        self.state.witness(self.signed)
        previous = self.state.trusted()
        epoch = self.signed.head.epoch
        if isinstance(self.signed, SignedCheckpoint):
            self._plan_log(previous)
            return []
        if previous is None:
            self._fields["chain"] = ("first STR seen (nothing to chain to)" if self.state.stateful
                                     else "not checked (no state)")
            return []
        last = previous.head.epoch
        if isinstance(previous, SignedCheckpoint):
            if epoch < last:
                raise Rollback(f"rollback: {self._serves} epoch {epoch}, this peer already verified epoch {last}")
            raise BrokenChain(f"{self._serves} a v1 STR of epoch {epoch}, but this peer already verified the STR v2 "
                              f"(checkpoint) of epoch {last}: a PV does not go back to v1")
        if epoch < last:
            raise Rollback(f"rollback: {self._serves} epoch {epoch}, this peer already verified epoch {last}")
        if epoch == last:
            self._fields["chain"] = f"same STR as last seen (epoch {epoch})"
            return []
        if epoch - last > MAX_CHAIN_FETCH:
            raise TooFarBehind(f"{epoch - last} epochs since the last verified one; too many to chain")
        self._link, self._start = previous, last
        self._pending = list(range(last + 1, epoch))
        return [] if self.offline else list(self._pending)

    @property
    def _serves(self) -> str:
        return "the bundle carries" if self.offline else "the mirror serves"

    def _plan_log(self, previous: AnySigned | None) -> None:
        """STR v2: what the epoch log must prove (log_request), from the STR held."""
        assert isinstance(self.signed, SignedCheckpoint)
        n = self.signed.head.epoch
        self.log_request = LogRequest(n)
        if previous is None:
            self._fields["chain"] = ("first STR seen (nothing to chain to); its record is in the epoch log"
                                     if self.state.stateful else "not checked (no state)")
            return
        m = previous.head.epoch
        if n < m:
            raise Rollback(f"rollback: {self._serves} the checkpoint of size {n}, this peer already verified size {m}")
        self._link, self._start = previous, m
        if isinstance(previous, SignedCheckpoint):
            if n == m:  # a different root was caught by witness()
                self._fields["chain"] = f"same checkpoint as last seen (size {n})"
            else:
                self.log_request = LogRequest(n, consistency_from=m)
            return
        if n == m and record_of(previous) != record_of(self.signed):
            raise BrokenChain(f"the STR v2 of epoch {n} restates another record than the v1 STR of epoch {m} "
                              f"this peer verified")
        self.log_request = LogRequest(n, record_from=m)

    def _check_log(self, request: LogRequest, signed: SignedCheckpoint, proofs: LogProofs) -> None:
        head = signed.head
        try:
            cp.check_str_record(head.checkpoint(), proofs.inclusion)
        except (FormatError, VerificationError) as exc:
            raise BadProof(f"the epoch log does not include this STR's own record (entry {head.epoch - 1}): {exc}",
                           check=Check.CHAIN) from None
        if request.consistency_from is not None:
            self._check_consistency(signed, proofs)
        elif request.record_from is not None:
            self._check_v1_record(signed, proofs)

    def _check_consistency(self, signed: SignedCheckpoint, proofs: LogProofs) -> None:
        held = self._link
        assert isinstance(held, SignedCheckpoint)
        m, n = held.head.epoch, signed.head.epoch
        if proofs.consistency is None:
            if not self.offline:
                raise OutOfOrder("accept_log online without the consistency proof asked for")
            self.unchained_v2 = True
            self._fields["chain"] = (f"newer than size {m} seen; no consistency proof from size {m} in the bundle "
                                     f"(proven at the next online check)")
            return
        try:
            tlog.check_consistency(proofs.consistency, n, signed.head.log_root, m, held.head.log_root)
        except (FormatError, VerificationError) as exc:
            self._fork_evidence(held, signed, proofs)
            raise BrokenChain(f"no valid consistency proof from size {m} to size {n}: {exc}") from None
        if signed.head.time < held.head.time:
            raise BrokenChain(f"checkpoint of size {n} is dated {signed.head.time}, before size {m} ({held.head.time})")
        self._fields["chain"] = f"consistent with size {m} (consistency proof of {len(proofs.consistency)} hashes)"

    def _fork_evidence(self, held: SignedCheckpoint, signed: SignedCheckpoint, proofs: LogProofs) -> None:
        """A consistency proof that yields the new root and another old one proves a fork."""
        assert proofs.consistency is not None
        m = held.head.epoch
        try:
            path = cp.evidence_path(proofs.consistency, m, proofs.old_subtree)
            evidence = cp.detect_equivocation(held.note, signed.note, self.state.pv.verifier, path)
        except (FormatError, VerificationError):
            return  # the proof material is wrong, not the PV: another source may do better
        raise Equivocation(f"equivocation: {evidence.describe()}", evidence)

    def _check_v1_record(self, signed: SignedCheckpoint, proofs: LogProofs) -> None:
        held = self._link
        assert isinstance(held, SignedTreeRoot)
        m, n = held.head.epoch, signed.head.epoch
        leaf = tlog.leaf_hash(record_of(held).entry())
        if proofs.record_inclusion is None and self.offline:
            self.unchained_v2 = True
            self._fields["chain"] = (f"newer than the v1 STR of epoch {m} seen; no proof in the bundle that the log "
                                     f"holds it (proven at the next online check)")
            return
        try:
            if proofs.record_inclusion is None:
                raise VerificationError("no inclusion proof of it")
            tlog.check_inclusion(proofs.record_inclusion, n, signed.head.log_root, m - 1, leaf)
        except (FormatError, VerificationError) as exc:
            raise BrokenChain(f"the epoch log of size {n} does not hold the record of the v1 STR of epoch {m} this "
                              f"peer verified (entry {m - 1}): {exc}") from None
        self._fields["chain"] = f"the epoch log of size {n} holds the v1 STR of epoch {m} (migrated to STR v2)"

    def _check_witnesses(self) -> None:
        assert self.signed is not None
        policy = self.state.pv.witnesses
        if policy is None:
            return
        what = f"{self.state.pv.name} ({self.origin_line()})"
        if isinstance(self.signed, SignedTreeRoot):
            raise Unwitnessed(f"{what}: trust.yaml requires {policy.quorum} witness cosignature(s), and a v1 STR "
                              f"cannot be witnessed")
        try:
            got = check_cosigned(self._data, self.state.pv.verifier, policy, self.state.pv.witness_labels)
        except (FormatError, VerificationError) as exc:
            raise Unwitnessed(f"{what}: not fresh evidence: {exc}") from None
        labels = self.state.pv.witness_labels
        self._fields["witnessed"] = tuple(labels.get(n, n) for n in sorted(got))

    def origin_line(self) -> str:
        assert self.signed is not None
        return f"{self.state.origin} epoch {self.signed.head.epoch}"

    def _link_next(self, data: bytes, epoch: int) -> None:
        try:
            step = open_any(data, self.state.pv.verifier)
        except (FormatError, VerificationError) as exc:
            raise BadSignature(f"STR of epoch {epoch} rejected: {exc}", check=Check.CHAIN) from None
        if not isinstance(step, SignedTreeRoot):
            raise BrokenChain(f"STR chain: {site.str_path(epoch)} is an STR v2, in a v1 chain")
        self.state.witness(step)
        if step.head.epoch != epoch:
            raise BrokenChain(f"STR chain: {site.str_path(epoch)} holds the STR of epoch {step.head.epoch}")
        self._follow(step)
        self._pending.pop(0)

    def _follow(self, step: SignedTreeRoot) -> None:
        assert isinstance(self._link, SignedTreeRoot)
        try:
            check_chain(self._link, step)
        except VerificationError as exc:
            first = step.head.epoch == self._start + 1
            raise BrokenChain(f"STR chain broken at epoch {step.head.epoch}: {exc}",
                              fork=first and step.head.prev != self._link.hash) from None
        self._link = step

    def _close_chain(self) -> None:
        assert isinstance(self.signed, SignedTreeRoot)
        if self._link is None:
            return  # nothing to chain to, or the same STR
        self._follow(self.signed)
        n = self.signed.head.epoch - self._start
        self._fields["chain"] = f"chained link by link from epoch {self._start} ({n} new)"

    def _verify_proof(self, proof: Proof) -> None:
        assert self.signed is not None
        head = self.signed.head
        if proof.name != self.name:
            raise BadProof(f"proof rejected: the one-file proof is for {proof.name}, not {self.name}")
        try:
            verify_proof(proof, head.root, head.epoch)
        except (FormatError, VerificationError) as exc:
            raise BadProof(f"proof rejected: {exc}") from None
        self._fields["proof"] = proof
        if proof.binding is not None:  # an inclusion
            props = ", ".join(proof.binding.properties) or "no properties"
            self._fields.update(status=Status.INCLUDED, reason=f"included at epoch {head.epoch} ({props})")
        else:
            why = describe(proof).split(": ", 1)[-1]
            self._fields.update(status=Status.ABSENT, reason=f"absent at epoch {head.epoch} ({why}; absence proof "
                                                             f"verified)")


__all__ = ["FUTURE_SKEW", "MAX_CHAIN_FETCH", "Answer", "OutOfOrder", "PvReport", "PvTrustedState", "Status",
           "freshness_problem"]
