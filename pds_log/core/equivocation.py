"""Proofs of equivocation: two validly signed, different STRs for one epoch of one PV.

A PV must sign exactly one STR per epoch; two different ones, both verifying under its key,
prove it showed different trees to different parties. The evidence is self-contained:

    {"v": 1, "type": "pds-equivocation", "vkey": "<verifier key>", "origin": ..., "epoch": E,
     "notes": ["<signed note A>", "<signed note B>"]}

Anyone verifies it with `pds note verify EVIDENCE.json VKEY` (or this module's `check`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import jsondoc
from .errors import FormatError, VerificationError
from .note import NoteVerifier
from .signed_root import SignedTreeRoot, open_str

EVIDENCE_TYPE = "pds-equivocation"
MAX_EVIDENCE_BYTES = 4 << 20  # two notes of at most 1 MiB each, JSON-escaped


@dataclass(frozen=True)
class Equivocation:
    verifier: NoteVerifier
    a: SignedTreeRoot
    b: SignedTreeRoot

    @property
    def epoch(self) -> int:
        return self.a.head.epoch

    def to_json(self) -> bytes:
        notes = sorted([self.a.note.decode(), self.b.note.decode()])
        return json.dumps({"v": 1, "type": EVIDENCE_TYPE, "vkey": str(self.verifier), "origin": self.verifier.name,
                           "epoch": self.epoch, "notes": notes}, indent=1).encode() + b"\n"

    def describe(self) -> str:
        a, b = self.a.head, self.b.head
        return (f"{self.verifier.name} signed two different STRs for epoch {self.epoch}: "
                f"root {a.root.hex()[:16]}... (PR {a.pr[:12]}, time {a.time}) and "
                f"root {b.root.hex()[:16]}... (PR {b.pr[:12]}, time {b.time})")


def detect(note_a: bytes, note_b: bytes, verifier: NoteVerifier) -> Equivocation | None:
    """An Equivocation if both notes are valid STRs of the same epoch with different texts."""
    a, b = open_str(note_a, verifier), open_str(note_b, verifier)
    if a.head.epoch != b.head.epoch or a.head.text() == b.head.text():
        return None
    return Equivocation(verifier, a, b)


def is_evidence(data: bytes) -> bool:
    return data.lstrip().startswith(b"{") and EVIDENCE_TYPE.encode() in data[:4096]


def check(data: bytes, verifier: NoteVerifier) -> Equivocation:
    """Verify an evidence file against the PV key; raises unless it proves equivocation."""
    doc = jsondoc.loads(data, "evidence", max_bytes=MAX_EVIDENCE_BYTES)
    if not isinstance(doc, dict) or doc.get("type") != EVIDENCE_TYPE or doc.get("v") != 1:
        raise FormatError("evidence: not a v1 pds-equivocation document")
    notes = doc.get("notes")
    if not isinstance(notes, list) or len(notes) != 2 or not all(isinstance(n, str) for n in notes):
        raise FormatError("evidence: 'notes' must hold exactly two signed notes")
    found = detect(notes[0].encode(), notes[1].encode(), verifier)
    if found is None:
        raise VerificationError("evidence: the two notes are not different STRs of one epoch")
    return found
