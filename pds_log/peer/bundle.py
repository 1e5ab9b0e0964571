"""Offline proof bundles: what one peer sends another with a plugin before injecting it.

    {"v": 1, "type": "pds-proof-bundle", "name": "<plugin>", "created": <unix seconds>,
     "pvs": {"<origin>": {"str": "<signed STR note>", "proof": {<v1 proof JSON>}}}}

`make_bundle` gathers, for every trusted PV it can reach, the latest verified STR and a
one-file proof (built from tiles when the PV did not publish one for that epoch).
`check_bundle` needs no network: it verifies each STR with the receiver's trusted keys,
freshness against the receiver's clock, each proof against its STR's root and epoch, that the
bytecode the receiver was given hashes to each binding, that no STR is older than one the
receiver already verified (rollback), and then the receiver's requirement formula.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.names import validate_name
from pds_log.core.proof import INCLUSION, Proof, verify_proof
from pds_log.core.signed_root import open_str
from pds_log.infra.files import atomic_write_bytes

from .trust import PeerState, Trust
from .verify import (ABSENT, FUTURE_SKEW, INCLUDED, INVALID, UNREACHABLE, PvReport, Verdict, bytecode_problem,
                     evaluate, read_bytecode_dir, verify_plugin)

BUNDLE_TYPE = "pds-proof-bundle"


def make_bundle(name: str, trust: Trust, out: str | Path, **kwargs) -> tuple[dict, Verdict]:
    verdict = verify_plugin(name, trust, **kwargs)
    pvs = {}
    for report in verdict.pvs.values():
        if report.signed is not None and report.proof is not None:
            pvs[report.origin] = {"str": report.signed.note.decode(), "proof": report.proof.to_obj()}
    if not pvs:
        raise PdsError(f"no PV could be verified for {name}; nothing to bundle")
    bundle = {"v": 1, "type": BUNDLE_TYPE, "name": name, "created": int(time.time()), "pvs": pvs}
    atomic_write_bytes(Path(out), json.dumps(bundle, indent=1, sort_keys=True).encode() + b"\n")
    return bundle, verdict


def check_bundle(data: bytes, trust: Trust, bytecode_dir: str | Path, *, now: int | None = None,
                 state: PeerState | None = None) -> Verdict:
    now = int(time.time()) if now is None else now
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"bundle: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != BUNDLE_TYPE or doc.get("v") != 1:
        raise FormatError("bundle: not a v1 pds-proof-bundle")
    name = validate_name(doc.get("name"))
    entries = doc.get("pvs")
    if not isinstance(entries, dict):
        raise FormatError("bundle: 'pvs' must be an object")
    files = read_bytecode_dir(bytecode_dir)
    reports: dict[str, PvReport] = {}
    for pv_name, pv in trust.pvs.items():
        report = PvReport(pv_name, pv.verifier.name)
        reports[pv_name] = report
        entry = entries.get(pv.verifier.name)
        if entry is None:
            report.status, report.reason = UNREACHABLE, "not in the bundle"
            continue
        try:
            signed = open_str(str(entry["str"]).encode(), pv.verifier)
            head = signed.head
            report.epoch, report.str_time = head.epoch, head.time
            if now - head.time > trust.max_age:
                raise VerificationError(f"stale STR: epoch {head.epoch} was signed {now - head.time} s ago, over "
                                        f"max_age {trust.max_age} s")
            if head.time > now + FUTURE_SKEW:
                raise VerificationError(f"STR of epoch {head.epoch} is dated in the future")
            last = state.last(pv.verifier.name) if state is not None else None
            if last is not None and head.epoch < last[0]:
                raise VerificationError(f"rollback: the bundle carries epoch {head.epoch}, this peer already "
                                        f"verified epoch {last[0]}")
            if last is not None and head.epoch == last[0] and open_str(last[1], pv.verifier).head != head:
                raise VerificationError(f"equivocation: a different STR for epoch {head.epoch} than the one seen")
            proof = Proof.from_obj(entry["proof"])
            if proof.name != name:
                raise VerificationError(f"proof is for {proof.name}, not {name}")
            verify_proof(proof, head.root, head.epoch)
        except KeyError as exc:
            report.status, report.reason = INVALID, f"bundle entry lacks the field {exc}"
            continue
        except (FormatError, VerificationError, TypeError) as exc:
            report.status, report.reason = INVALID, str(exc)
            continue
        report.proof_kind = proof.kind
        if proof.kind == INCLUSION:
            report.status, report.binding = INCLUDED, proof.binding
            report.properties = list(proof.binding.properties)
            problem = bytecode_problem(proof.binding, files)
            report.bytecode = "match" if problem is None else f"mismatch: {problem}"
            report.reason = (f"included at epoch {head.epoch}" if problem is None
                             else f"bytecode does not match the binding: {problem}")
        else:
            report.status, report.reason = ABSENT, f"absent at epoch {head.epoch} (absence proof verified)"
    return Verdict(name, evaluate(trust, reports), trust.formula.text, reports)
