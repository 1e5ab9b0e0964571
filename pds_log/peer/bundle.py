"""Offline proof bundles: what one peer sends another with a plugin before injecting it.

Format (JSON, v1; keys exactly these, unknown keys are refused):

    {"v": 1,
     "type": "pds-proof-bundle",
     "name": "<plugin name>",
     "created": <unix seconds>,                        # informational
     "bytecode": {"<path>": "<sha256 hex>", ...},      # the manifest and every pluglet the bindings
                                                       # name, as the sender holds them
     "pvs": {"<PV origin>": {"str": "<the PV's signed STR note, as published>",
                             "proof": {<v1 one-file proof: DESIGN.md "Proof">},
                             "log": {...}}}}                # STR v2 only, see below

An STR v2 entry (its `str` is the cosigned checkpoint, as the mirror served it) also carries
the epoch-log proofs the receiver's pipeline needs, base64 hashes:

    "log": {"inclusion": [<inclusion of entry E-1, the STR's own record, in the log of size E>],
            "from": {"<m>": {"consistency": [<consistency proof from size m to E>],
                             "record": [<inclusion of entry m-1 in the log of size E>]}, ...}}

for each size m in `from`: the sender's own last verified size, and those asked for with
`--from-size` (the receiver's, when the sender knows it). A receiver holding the checkpoint of
size m (or the v1 STR of epoch m) checks that one; without it, the entry is checked except for
its link to the STR held, and the receiver's state is not advanced (the next online check
proves it). v1 entries are unchanged (`str` and `proof` only).

`pvs` is keyed by origin (the verifier key's name), not by the sender's local PV names, so
the receiver finds each entry with its own trusted keys. A proof is an inclusion proof (it
carries the binding) or an absence proof; when a PV published no one-file proof for the
plugin at its latest epoch, `make_bundle` assembles one from the tiles it verified.

`check_bundle` needs no network. For every PV the receiver trusts, it takes the entry for
that PV's origin (a missing entry counts as false) and checks: the STR's signature with the
receiver's key; against the receiver's state file, if any, that the STR is not older than
one already verified (rollback) nor a different STR for the same epoch (equivocation: the
PV is rejected and evidence written); freshness against the receiver's clock and max_age;
the proof against the STR's root and epoch, for this plugin; and that every file the
binding names is in the receiver's bytecode directory with the binding's SHA-256. The
bundle's own `bytecode` list is unauthenticated: the directory must match it too, else the
bundle is rejected as inconsistent. Then the receiver's formula is evaluated. A newer STR
cannot be chained offline (the intermediate STRs are not in the bundle); it is remembered in
the state once verified, so that the next online check chains from it.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

from pds_log.core import jsondoc, tlog
from pds_log.core.checkpoint import parse_b64_hash
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.manifest import validate_relative_path
from pds_log.core.names import validate_name
from pds_log.core.proof import Proof
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.http import Fetcher

from .bytecode import BytecodeDir, binding_files
from .errors import BadProof, Check, Malformed, TrustProblem
from .logchain import LogProofs, LogRequest, SignedCheckpoint
from .trust import PeerState, Trust, TrustedPv
from .trusted import Answer, PvReport, Status
from .verify import Verdict, evaluate, fetch_log_tile, refused, trusted_states, verify_plugin

BUNDLE_VERSION = 1
BUNDLE_TYPE = "pds-proof-bundle"
MAX_BUNDLE_BYTES = 16 << 20
_KEYS = {"v", "type", "name", "created", "bytecode", "pvs"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def make_bundle(name: str, trust: Trust, out: str | Path | None = None, *, bytecode_dir: str | Path | None = None,
                now: int | None = None, state: PeerState | None = None, via: str = "tiles",
                fetcher: Fetcher | None = None, use_state: bool = True,
                from_sizes: tuple[int, ...] = ()) -> tuple[dict, Verdict]:
    """Verify `name` online (as `verify_plugin`) and gather every PV's STR and proof that passed.

    The bytecode hashes come from `bytecode_dir` when given (then checked against every
    binding), else from the bindings, which must then agree. Writes the bundle to `out` if
    given; raises PdsError when no trusted PV vouches for the plugin."""
    if state is None and use_state:
        state = PeerState.load(trust.state_path)
    last = {pv.origin: state.last(pv.origin) for pv in trust.pvs.values()} if state is not None else {}
    held_sizes = {origin: entry[0] for origin, entry in last.items() if entry is not None}
    # without bytecode the bundle carries the bindings' hashes: the receiver checks its bytes
    verdict = verify_plugin(name, trust, bytecode_dir=bytecode_dir, now=now, state=state, via=via, fetcher=fetcher,
                            use_state=use_state, metadata_only=True)
    pvs = _entries(verdict, held_sizes, from_sizes, fetcher)
    included = [r for r in verdict.pvs.values() if r.approved]
    if not included:
        why = "; ".join(f"{r.pv}: {r.status}: {r.reason}" for r in verdict.pvs.values())
        raise PdsError(f"no trusted PV vouches for {name}; nothing to bundle ({why})")
    bytecode = _bytecode_hashes(name, included, bytecode_dir)
    bundle = {"v": BUNDLE_VERSION, "type": BUNDLE_TYPE, "name": name, "created": verdict.now,
              "bytecode": dict(sorted(bytecode.items())), "pvs": pvs}
    if out is not None:
        atomic_write_bytes(Path(out), encode_bundle(bundle))
    return bundle, verdict


def _entries(verdict: Verdict, held_sizes: dict[str, int], from_sizes: tuple[int, ...],
             fetcher: Fetcher | None) -> dict[str, dict]:
    """The bundle entry of every PV origin whose answer passed (STR v2: with its log proofs)."""
    pvs: dict[str, dict] = {}
    for report in verdict.pvs.values():
        if report.passed and report.origin not in pvs:
            if report.signed is None or report.proof is None:
                raise PdsError(f"{report.pv}: a passed answer without its STR and proof")
            pvs[report.origin] = {"str": report.signed.note.decode(), "proof": report.proof.to_obj()}
            if isinstance(report.signed, SignedCheckpoint):
                sizes = (*from_sizes, *((held_sizes[report.origin],) if report.origin in held_sizes else ()))
                pvs[report.origin].update(str=report.signed.served.decode(), log=_log_entry(report, sizes, fetcher))
    return pvs


def _bytecode_hashes(name: str, included: list[PvReport], bytecode_dir: str | Path | None) -> dict[str, str]:
    bytecode: dict[str, str] = {}
    held = BytecodeDir(bytecode_dir) if bytecode_dir is not None else None
    for report in included:
        if report.binding is None:
            raise PdsError(f"{report.pv}: an inclusion without its binding")
        for path, digest in binding_files(report.binding).items():
            if held is not None:
                held_digest = held.sha256(path)
                if held_digest is None:
                    raise PdsError(f"{path} is missing from {bytecode_dir}")
                bytecode[path] = held_digest
            elif bytecode.setdefault(path, digest) != digest:
                raise PdsError(f"the PVs bind different bytecode for {name} ({path}); give --bytecode to bundle "
                               f"the version you will send")
    return bytecode


def _log_entry(report: PvReport, sizes: tuple[int, ...], fetcher: Fetcher | None) -> dict:
    """The epoch-log proofs of a verified STR v2, from the tiles of the mirror that served it."""
    assert isinstance(report.signed, SignedCheckpoint) and report.mirror is not None
    n, mirror = report.signed.head.epoch, report.mirror
    own = fetcher is None
    fetcher = fetcher or Fetcher()
    try:
        reader = tlog.TileHashReader(n, lambda tile: fetch_log_tile(
            lambda path, limit: fetcher.get(mirror, path, max_bytes=limit), tile))
        entry: dict = {"inclusion": _b64s(tlog.prove_inclusion(n, n - 1, reader)), "from": {}}
        for m in sorted({m for m in sizes if 0 < m < n}):
            entry["from"][str(m)] = {"consistency": _b64s(tlog.prove_consistency(n, m, reader)),
                                     "record": _b64s(tlog.prove_inclusion(n, m - 1, reader))}
    except (PdsError, ValueError) as exc:
        raise PdsError(f"{report.pv}: cannot gather the epoch-log proofs for the bundle from {mirror}: {exc}") from None
    finally:
        if own:
            fetcher.close()
    return entry


def _b64s(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _hashes(value: object, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > tlog.MAX_PROOF_HASHES or not all(isinstance(h, str) for h in value):
        raise FormatError(f"{where}: must be a list of at most {tlog.MAX_PROOF_HASHES} base64 hashes")
    return tuple(parse_b64_hash(h, where) for h in value)


def bundle_log_proofs(log: object, request: LogRequest) -> LogProofs:
    """The epoch-log proofs a bundle entry carries for `request` (FormatError if malformed)."""
    if not isinstance(log, dict) or set(log) != {"inclusion", "from"} or not isinstance(log["from"], dict):
        raise FormatError("log: expected {\"inclusion\": [...], \"from\": {\"<size>\": {...}}}")
    if len(log["from"]) > 64:
        raise FormatError("log.from: more than 64 sizes")
    inclusion = _hashes(log["inclusion"], "log.inclusion")
    m = request.consistency_from or request.record_from
    linked = log["from"].get(str(m)) if m is not None else None
    if linked is None:
        return LogProofs(inclusion)
    if not isinstance(linked, dict) or set(linked) != {"consistency", "record"}:
        raise FormatError(f"log.from.{m}: expected {{\"consistency\": [...], \"record\": [...]}}")
    return LogProofs(inclusion, _hashes(linked["consistency"], f"log.from.{m}.consistency"),
                     _hashes(linked["record"], f"log.from.{m}.record"))


def encode_bundle(bundle: dict) -> bytes:
    return json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def parse_bundle(data: bytes) -> dict:
    """Decode a bundle and check its shape (not its proofs); FormatError says what is wrong."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise FormatError(f"bundle: larger than {MAX_BUNDLE_BYTES} bytes")
    doc = jsondoc.loads(data, "bundle")
    if not isinstance(doc, dict) or doc.get("type") != BUNDLE_TYPE:
        raise FormatError(f"bundle: not a {BUNDLE_TYPE} document")
    if doc.get("v") != BUNDLE_VERSION or isinstance(doc.get("v"), bool):
        raise FormatError(f"bundle: unsupported version {doc.get('v')!r} (this peer reads v{BUNDLE_VERSION})")
    if set(doc) != _KEYS:
        raise FormatError(f"bundle: wrong keys (missing: {sorted(_KEYS - set(doc))}, "
                          f"unexpected: {sorted(set(doc) - _KEYS, key=repr)})")
    try:
        validate_name(doc["name"])
    except FormatError as exc:
        raise FormatError(f"bundle: name: {exc}") from None
    if isinstance(doc["created"], bool) or not isinstance(doc["created"], int):
        raise FormatError("bundle: created must be an integer (unix seconds)")
    code = doc["bytecode"]
    if not isinstance(code, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in code.items()):
        raise FormatError("bundle: bytecode must map paths to SHA-256 hex strings")
    for path, digest in code.items():  # the paths are opened in the receiver's bytecode directory
        validate_relative_path(path, "bundle: bytecode")
        if not _HEX64.fullmatch(digest):
            raise FormatError(f"bundle: bytecode[{path!r}]: not a SHA-256 hex digest")
    if not isinstance(doc["pvs"], dict):
        raise FormatError("bundle: pvs must be an object keyed by PV origin")
    return doc


def check_bundle(data: bytes, trust: Trust, bytecode_dir: str | Path, *, now: int | None = None,
                 state: PeerState | None = None, evidence_dir: str | Path | None = None,
                 update_state: bool = True) -> Verdict:
    """Verify a bundle fully offline (see the module docstring). Raises FormatError when the
    bundle is malformed as a whole; a bad PV entry only makes that PV count as false."""
    now = int(time.time()) if now is None else int(now)
    doc = parse_bundle(data)
    name = doc["name"]
    held = BytecodeDir(bytecode_dir)
    if evidence_dir is None and state is not None:
        evidence_dir = state.path.parent / "evidence"
    problems = _bytecode_list_problems(doc["bytecode"], held)
    states = trusted_states(trust, state, now)
    reports: dict[str, PvReport] = {}
    for pv_name, pv in trust.pvs.items():
        entry = doc["pvs"].get(pv.origin)
        if entry is None:
            reports[pv_name] = PvReport(pv_name, pv.origin, Status.UNREACHABLE, f"the bundle has no entry for "
                                        f"{pv.origin}", mirror="bundle", proof_source="bundle")
            continue
        answer = states[pv.origin].answer(name, "bundle", offline=True)
        reports[pv_name] = _check_entry(answer, entry, pv, held, Path(evidence_dir) if evidence_dir else None)
        if update_state and state is not None and reports[pv_name].passed:
            signed = states[pv.origin].commit(answer)
            if signed is not None:
                state.remember(pv.origin, signed.head.epoch, signed.note, source="bundle", now=now)
    if update_state and state is not None:
        state.save()
    accepted = evaluate(trust, reports) and not problems
    return Verdict(name, accepted, trust.formula.text, reports, now, problems)


def _bytecode_list_problems(listed: dict[str, str], held: BytecodeDir) -> list[str]:
    """Where the bundle's own (unauthenticated) list of hashes disagrees with the directory."""
    problems = []
    for path, digest in sorted(listed.items()):
        try:
            actual = held.sha256(path)
        except PdsError as exc:
            actual, digest = None, f"{digest} ({exc})"
        if actual != digest:
            problems.append(f"the bundle lists {path} as {digest[:16]}..., the bytecode directory "
                            + ("lacks it" if actual is None else f"has {actual[:16]}..."))
    return problems


def _check_entry(answer: Answer, entry: object, pv: TrustedPv, held: BytecodeDir,
                 evidence_dir: Path | None) -> PvReport:
    """One PV's entry through the same trust pipeline as a mirror's answer (offline: the chain
    to a newer STR is left to the next online check)."""
    try:
        if (not isinstance(entry, dict) or set(entry) - {"log"} != {"str", "proof"}
                or not isinstance(entry["str"], str)):
            raise Malformed("malformed bundle entry: expected {\"str\": <note>, \"proof\": {...}} "
                            "(and \"log\": {...} for an STR v2)")
        answer.accept_str(entry["str"].encode("utf-8"), "STR")
        if answer.log_request is not None:
            try:
                proofs = bundle_log_proofs(entry.get("log"), answer.log_request)
            except FormatError as exc:
                raise BadProof(f"the bundle's epoch-log proofs are malformed: {exc}", check=Check.CHAIN) from None
            answer.accept_log(proofs)
        answer.accept_chain()
        try:
            proof = Proof.from_obj(entry["proof"])
        except FormatError as exc:
            raise BadProof(f"proof rejected: {exc}") from None
        answer.accept_proof(proof)
        answer.accept_bytecode(held)
    except TrustProblem as exc:
        return refused(answer, pv.name, exc, evidence_dir)
    return answer.report(pv.name)
