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

For a PV that signs STR v2 (a C2SP checkpoint of its epoch log) step 1 GETs ``checkpoint``
(``latest.note`` first when the STR held is a v1 one; either falls back to the other on a
404), and step 2 proves, from the epoch log's C2SP tlog-tiles at the checkpoint's size
(``tile/<L>/<N>[.p/<W>]``; a partial tile that is gone is cut from the full one), the inclusion
of the checkpoint's own record and its consistency with the checkpoint held (or, for a v1 STR
held, the inclusion of its record): a handful of tiles however many epochs passed
(`pds_log.peer.logchain`). Freshness then also needs the witness quorum trust.yaml names.

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

This module only fetches: every check above is `pds_log.peer.trusted` (the same pipeline an
offline bundle goes through), and each refusal is typed (`pds_log.peer.errors`; a report's
`problem`). With a state file, files come through `pds_log.peer.cache` (a conditional GET of
latest.note, verified copies of the immutable files).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pds_log.core import jsondoc, tlog
from pds_log.core import static_layout as site
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.names import name_key, validate_name
from pds_log.core.proof import Proof, make_proof_from_leaf
from pds_log.core.signed_root import TreeHead
from pds_log.core.strs import TreeHeadV2
from pds_log.core.tiles import prove_from_tiles
from pds_log.infra.http import Fetcher, FetchError

from .bytecode import BytecodeDir, binding_files, bytecode_problem, held_bytecode_check, manifest_check
from .cache import MirrorCache
from .errors import BadExplanation, BadProof, BrokenChain, Check, Equivocation, TrustProblem, Unavailable
from .logchain import CHECKPOINT, LogProofs, LogRequest, proofs_from_reader
from .trust import PeerState, Trust, TrustedPv
from .trusted import FUTURE_SKEW, MAX_CHAIN_FETCH, Answer, PvReport, PvTrustedState, Status, freshness_problem

# per-file size limits (the largest honest file is far below each)
MAX_STR_BYTES = 64 << 10
MAX_TILE_BYTES = 32 << 10  # 7 + 256 * 66 bytes at most
MAX_LOG_TILE_BYTES = 8 << 10  # an epoch-log tile: 256 hashes of 32 bytes
MAX_PROOF_BYTES = 256 << 10
MAX_BINDING_BYTES = 1 << 20
MAX_STATUS_BYTES = 64 << 10

INCLUDED, ABSENT, UNREACHABLE, INVALID = Status.INCLUDED, Status.ABSENT, Status.UNREACHABLE, Status.INVALID
VIAS = ("tiles", "proof")
# a mirror's bytes reach several parsers: should one of them fail in a way it does not report
# as a FormatError, that is still this mirror's bad answer, and the peer tries the next mirror
PARSER_FAILURES = (ValueError, LookupError, TypeError, RecursionError, AssertionError)


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


# ---------------------------------------------------------------------- shared with bundles
def trusted_states(trust: Trust, state: PeerState | None, now: int) -> dict[str, PvTrustedState]:
    """One trusted state per PV origin (two PV entries may share a key, and then its history)."""
    states: dict[str, PvTrustedState] = {}
    for pv in trust.pvs.values():
        if pv.origin not in states:
            remembered = state.last(pv.origin) if state is not None else None
            states[pv.origin] = PvTrustedState(pv, remembered, now=now, max_age=trust.max_age,
                                               stateful=state is not None,
                                               where=str(state.path) if state is not None else "the state file")
    return states


def refused(answer: Answer, pv: str, problem: TrustProblem, evidence_dir: Path | None) -> PvReport:
    """The report of a refused answer; equivocation evidence is written when there is a directory."""
    if not isinstance(problem, Equivocation):
        return answer.failed(pv, problem)
    evidence_json = problem.evidence.to_json()
    if evidence_dir is None:
        return answer.failed(pv, problem, f"{problem} (evidence in the JSON report)",
                             evidence_json=evidence_json.decode())
    from pds_log.infra.files import atomic_write_bytes

    path = Path(evidence_dir) / problem.file_name
    atomic_write_bytes(path, evidence_json)
    return answer.failed(pv, problem, f"{problem} (evidence: {path})", evidence=str(path),
                         evidence_json=evidence_json.decode())


# ---------------------------------------------------------------------- one PV over HTTP
class MirrorWalk:
    """Fetches each PV's answer from its mirrors, in order, and feeds it to the PV's trusted
    state; every file of one answer comes from the same mirror."""

    def __init__(self, trust: Trust, fetcher: Fetcher, state: PeerState | None, now: int, via: str,
                 bytecode: BytecodeDir | Mapping[str, bytes] | None, evidence_dir: Path | None = None,
                 cache: MirrorCache | None = None) -> None:
        self.fetcher, self.state, self.now, self.via, self.cache = fetcher, state, now, via, cache
        self.bytecode = bytecode
        self.evidence_dir = evidence_dir
        self.states = trusted_states(trust, state, now)

    def check(self, name: str, pv: TrustedPv) -> PvReport:
        """The PV's answer from the first mirror that gives a whole one (else the most telling failure)."""
        best: PvReport | None = None
        attempts: list[str] = []
        for mirror in pv.mirrors:
            answer, report, attempt = self._ask(name, pv, mirror)
            if attempt is None:
                best = report
                if report.passed and self.state is not None:
                    self._commit(answer, report)
                break
            attempts.append(f"{mirror}: {attempt}")
            fatal = report.problem is not None and report.problem.fatal
            if best is None or report.progress > best.progress or fatal:
                best = report
            if fatal:
                break
        assert best is not None
        best = best.replace(attempts=tuple(attempts))
        if best.status == UNREACHABLE:
            causes = "; ".join(a.split(": ", 1)[1] for a in attempts)
            best = best.replace(mirror=None, reason=f"no mirror answered ({causes})")
        return best

    def _ask(self, name: str, pv: TrustedPv, mirror: str) -> tuple[Answer, PvReport, str | None]:
        """One mirror's answer (see check); through the cache, and once more without it when
        an answer that used cached bytes is refused (a poisoned cache never decides)."""
        answer = self.states[pv.origin].answer(name, mirror)
        if self.cache is None:
            return answer, *self._try_mirror(answer, pv)
        self.cache.begin(mirror)
        report, attempt = self._try_mirror(answer, pv)
        if attempt is not None and self.cache.forget(mirror):
            self.cache.begin(mirror)
            self.cache.bypass = True
            try:
                answer = self.states[pv.origin].answer(name, mirror)
                report, attempt = self._try_mirror(answer, pv)
            finally:
                self.cache.bypass = False
        if report.passed:
            self.cache.keep(mirror)
        else:
            self.cache.discard(mirror)
        return answer, report, attempt

    def _commit(self, answer: Answer, report: PvReport) -> None:
        assert self.state is not None
        signed = self.states[answer.state.origin].commit(answer)
        if signed is not None:
            self.state.remember(answer.state.origin, signed.head.epoch, signed.note, source=report.mirror or "",
                                now=self.now)

    def _try_mirror(self, answer: Answer, pv: TrustedPv) -> tuple[PvReport, str | None]:
        """(report, None) for a whole answer, else (report, what went wrong at this mirror)."""
        try:
            self._walk(answer)
        except FetchError as exc:  # the latest STR: every later fetch is part of a check
            return answer.report(pv.name, status=UNREACHABLE, reason=f"unreachable: {exc}"), \
                f"unreachable: {exc.cause}"
        except TrustProblem as exc:
            report = refused(answer, pv.name, exc, self.evidence_dir)
            return report, report.reason
        except PdsError as exc:  # FormatError, VerificationError from a check not wrapped above
            return answer.failed(pv.name, TrustProblem(str(exc))), str(exc)
        except PARSER_FAILURES as exc:
            problem = f"malformed answer ({type(exc).__name__}: {_one_line(str(exc), 200)})"
            return answer.failed(pv.name, TrustProblem(problem)), problem
        return answer.report(pv.name), None

    def _get(self, mirror: str, path: str, limit: int) -> bytes:
        if self.cache is not None:
            return self.cache.get(mirror, path, max_bytes=limit)
        return self.fetcher.get(mirror, path, max_bytes=limit)

    def _walk(self, answer: Answer) -> None:
        """Fetch one mirror's answer and feed it, check by check, to the PV's trusted state."""
        mirror = answer.source
        latest, what = self._latest(answer)
        try:
            for epoch in answer.accept_str(latest, what):
                answer.accept_next(self._chain_link(mirror, epoch), epoch)
            if answer.log_request is not None:
                answer.accept_log(self._log_proofs(mirror, answer.log_request))
            answer.accept_chain()
        except BrokenChain as exc:
            if exc.fork:
                self._fork_check(answer)
            raise
        proof, source = self._proof(answer)
        answer.accept_proof(proof, source)
        if self.bytecode is not None:
            answer.accept_bytecode(self.bytecode)
        if answer.status == ABSENT:
            answer.explain(self._explanation(mirror, answer.name))

    def _latest(self, answer: Answer) -> tuple[bytes, str]:
        """The mirror's newest STR: ``checkpoint`` (STR v2, with its cosignatures) or
        ``latest.note`` (v1), the one of the version last verified for this PV first, the other
        when the first is not there (a PV moving to v2, or a v1 PV seen for the first time)."""
        v1_first = answer.state.remembered_version() == 1 and answer.state.pv.witnesses is None
        order = (site.LATEST, CHECKPOINT) if v1_first else (CHECKPOINT, site.LATEST)
        what = {site.LATEST: "latest STR", CHECKPOINT: "checkpoint"}
        try:
            return self._get(answer.source, order[0], MAX_STR_BYTES), what[order[0]]
        except FetchError as exc:
            if not exc.not_found:
                raise
        return self._get(answer.source, order[1], MAX_STR_BYTES), what[order[1]]

    def _log_proofs(self, mirror: str, request: LogRequest) -> LogProofs:
        """The epoch-log proofs an STR v2 needs, computed from the mirror's C2SP tlog-tiles
        (a handful of tiles however many epochs passed); checked by the pipeline, not here."""
        reader = tlog.TileHashReader(request.size, lambda tile: self._tile(mirror, tile))
        try:
            return proofs_from_reader(request, reader)
        except FetchError as exc:
            raise Unavailable(f"epoch log: cannot fetch its tiles ({exc})", check=Check.CHAIN) from None
        except (FormatError, VerificationError) as exc:
            raise BrokenChain(f"epoch log: its tiles do not make proofs for size {request.size} ({exc})") from None

    def _tile(self, mirror: str, tile: tlog.TileId) -> bytes:
        return fetch_log_tile(lambda path, limit: self._get(mirror, path, limit), tile)

    def _chain_link(self, mirror: str, epoch: int) -> bytes:
        try:
            return self._get(mirror, site.str_path(epoch), MAX_STR_BYTES)
        except FetchError as exc:
            raise Unavailable(f"STR chain: cannot fetch the STR of epoch {epoch} ({exc.cause})",
                              check=Check.CHAIN) from None

    def _fork_check(self, answer: Answer) -> None:
        """The mirror's chain does not continue our STR: does it hold a different STR for our
        epoch? (That is proof of equivocation: witness_note raises.)"""
        ours = answer.state.trusted()
        assert ours is not None
        try:
            data = self._get(answer.source, site.str_path(ours.head.epoch), MAX_STR_BYTES)
        except FetchError:
            return
        answer.state.witness_note(data)

    def _proof(self, answer: Answer) -> tuple[Proof, str]:
        """The proof for the answer's STR, and where it came from: the one-file proof when asked
        for and published at that epoch, else the tiles."""
        assert answer.signed is not None
        head, mirror, source = answer.signed.head, answer.source, "tiles"
        try:
            if self.via == "proof":
                path = site.proof_path(head.epoch, answer.name)
                try:
                    data = self._get(mirror, path, MAX_PROOF_BYTES)
                except FetchError as exc:
                    if not exc.not_found:
                        raise
                    source = f"tiles (no one-file proof at epoch {head.epoch})"
                else:
                    return Proof.from_obj(jsondoc.loads(data, path, max_bytes=MAX_PROOF_BYTES)), "one-file proof"
            return self._prove_from_tiles(answer.name, mirror, head), source
        except FetchError as exc:
            raise Unavailable(f"proof material unavailable: {exc}", check=Check.PROOF) from None
        except (FormatError, VerificationError) as exc:
            raise BadProof(f"proof rejected: {exc}") from None

    def _prove_from_tiles(self, name: str, mirror: str, head: TreeHead | TreeHeadV2) -> Proof:
        siblings, leaf = prove_from_tiles(
            name_key(name), head.root, lambda level, h: self._get(mirror, site.tile_path(level, h), MAX_TILE_BYTES))

        def binding_of(n: str) -> Binding:
            assert leaf is not None
            path = site.binding_by_value_path(leaf[1])
            data = self._get(mirror, path, MAX_BINDING_BYTES)
            if hashlib.sha256(data).digest() != leaf[1]:
                raise VerificationError(f"{path} does not hash to the value at the leaf (tampered binding)")
            binding = Binding.from_obj(jsondoc.loads(data, path, max_bytes=MAX_BINDING_BYTES), path)
            if binding.encode() != data:
                raise FormatError(f"{path}: not in canonical form (sorted keys, no spaces)")
            return binding

        return make_proof_from_leaf(name, head.epoch, siblings, leaf, binding_of)

    def _explanation(self, mirror: str, name: str) -> str | None:
        """The PV's own words about an absent plugin (status/<name>.json): not authenticated.
        None when the mirror has none; a TrustProblem when it serves one that cannot be read."""
        path = site.status_path(name)
        try:
            doc = jsondoc.loads(self._get(mirror, path, MAX_STATUS_BYTES), path, max_bytes=MAX_STATUS_BYTES)
        except FetchError as exc:
            if exc.not_found:
                return None
            raise Unavailable(f"the PV's explanation is unavailable: {exc}") from None
        except FormatError as exc:
            raise BadExplanation(f"the PV's explanation is malformed: {exc}") from None
        if not isinstance(doc, dict):
            raise BadExplanation(f"the PV's explanation is malformed: {path}: not a JSON object")
        status, at, reason = doc.get("status"), doc.get("epoch"), doc.get("reason")
        text = f"{status} at epoch {at}: {reason}" if reason else f"{status} at epoch {at}"
        if status == "accepted":
            text += " (contradicts the verified absence)"
        return _one_line(text)


def fetch_log_tile(get: Callable[[str, int], bytes], tile: tlog.TileId) -> bytes:
    """An epoch-log hash tile through `get(path, max_bytes)`; a partial one that is gone (the
    full tile replaced it, which C2SP tlog-tiles allows) is cut from the full tile."""
    try:
        return get(tile.path(), MAX_LOG_TILE_BYTES)
    except FetchError as exc:
        if not exc.not_found or tile.width == tlog.TILE_WIDTH:
            raise
    full = get(tlog.TileId(tile.level, tile.n).path(), MAX_LOG_TILE_BYTES)
    return full[:tile.width * tlog.HASH_SIZE] if len(full) == tlog.TILE_WIDTH * tlog.HASH_SIZE else full


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def verify_plugin(name: str, trust: Trust, *, bytecode_dir: str | Path | None = None, now: int | None = None,
                  state: PeerState | None = None, via: str = "tiles", fetcher: Fetcher | None = None,
                  use_state: bool = True, evidence_dir: str | Path | None = None,
                  metadata_only: bool = False, cache_dir: str | Path | Literal[False] | None = None) -> Verdict:
    """Check `name` at every trusted PV and evaluate the requirement formula.

    Without `bytecode_dir` the verdict is `incomplete` (not ok) unless `metadata_only`: the
    bindings are checked, the bytes the peer will load are not.

    state: the peer state (default: loaded from trust.state_path unless use_state=False);
    it is saved when a PV's STR advanced. evidence_dir: where equivocation evidence goes
    (default: evidence/ next to the state file). cache_dir: the local copy of what mirrors
    served (pds_log.peer.cache; default: mirror-cache/ next to the state file, none without
    a state; False: none)."""
    validate_name(name)
    if via not in VIAS:
        raise PdsError(f"unknown proof path {via!r} (tiles or proof)")
    if state is None and use_state:
        state = PeerState.load(trust.state_path)
    if evidence_dir is None and state is not None:
        evidence_dir = state.path.parent / "evidence"
    if cache_dir is None and state is not None:
        cache_dir = state.path.parent / "mirror-cache"
    held = BytecodeDir(bytecode_dir) if bytecode_dir is not None else None
    now = int(time.time()) if now is None else int(now)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher()
    cache = MirrorCache(cache_dir, fetcher) if cache_dir else None
    walk = MirrorWalk(trust, fetcher, state, now, via, held, Path(evidence_dir) if evidence_dir is not None else None,
                      cache)
    try:
        reports = {pv_name: walk.check(name, pv) for pv_name, pv in trust.pvs.items()}
    finally:
        if own_fetcher:
            fetcher.close()
    if state is not None:
        state.save()
    return Verdict(name, evaluate(trust, reports), trust.formula.text, reports, now,
                   bytecode_checked=held is not None, metadata_only=metadata_only)


__all__ = ["ABSENT", "FUTURE_SKEW", "INCLUDED", "INVALID", "MAX_CHAIN_FETCH", "UNREACHABLE", "BytecodeDir",
           "fetch_log_tile",
           "MirrorWalk", "PvReport", "Status", "Verdict", "binding_files", "bytecode_problem", "evaluate",
           "freshness_problem", "held_bytecode_check", "manifest_check", "refused", "trusted_states",
           "verify_plugin"]
