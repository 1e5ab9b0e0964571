"""`pds gossip`: compare the STRs a PV published in different places.

Sources, per trusted PV: each mirror (``latest.note``, ``checkpoint`` for STR v2, and the
per-epoch STRs of the epochs seen anywhere), the PV's area on the PR (``pvs/<origin>/str/*.note``
on branch ``pvs/<origin>``), and the local peer state. Every validly signed STR, of either
version, is grouped by epoch (witness cosignatures are dropped: they do not make another STR);
two different ones for the same epoch prove equivocation and are written out as
self-contained evidence, verifiable by anyone with `pds note verify EVIDENCE VKEY`: two v1 STRs
as a `pds-equivocation` document (pds_log.core.equivocation), two STR v2 checkpoints of one size
with two log roots as a `pds-checkpoint-equivocation` document (pds_log.core.checkpoint).
Two different STRs for one epoch that no evidence format covers (a v1 and a v2 STR; two v2
STRs over one log root) are reported as problems.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pds_log.core import checkpoint, equivocation
from pds_log.core import static_layout as site
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.note import NoteVerifier
from pds_log.core.strs import SignedStr, open_any
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.gitremote import fetch_branch
from pds_log.infra.gittree import blob_at, entry_name, tree_at
from pds_log.infra.http import Fetcher, FetchError
from pds_log.peer.trust import PeerState, Trust, TrustedPv
from pds_log.peer.verify import MAX_STR_BYTES


@dataclass
class GossipReport:
    seen: dict[str, dict[int, dict[str, list[str]]]] = field(default_factory=dict)  # pv -> epoch -> text -> sources
    evidence: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_obj(self) -> dict:
        """Per PV and epoch: how many distinct STRs were seen and where (the notes themselves are in the evidence)."""
        return {"equivocation": bool(self.evidence), "evidence": [str(p) for p in self.evidence],
                "problems": self.problems,
                "pvs": {pv: {str(epoch): {"distinct_strs": len(texts), "equivocation": len(texts) > 1,
                                          "sources": sorted(s for sources in texts.values() for s in sources)}
                             for epoch, texts in sorted(epochs.items())}
                        for pv, epochs in sorted(self.seen.items())}}


def _collect(report: GossipReport, pv: TrustedPv, note: bytes, source: str, notes: dict) -> SignedStr | None:
    try:
        signed = open_any(note, pv.verifier)
    except (FormatError, VerificationError) as exc:
        report.problems.append(f"{pv.name}: {source}: invalid STR ignored ({exc})")
        return None
    text = signed.head.text()
    report.seen.setdefault(pv.verifier.name, {}).setdefault(signed.head.epoch, {}).setdefault(text, []).append(source)
    notes.setdefault((signed.head.epoch, text), signed.note)
    return signed


def _pr_area_notes(pr_url: str, origin: str) -> list[tuple[str, bytes]]:
    with tempfile.TemporaryDirectory(prefix="pds-gossip-") as tmp:
        try:
            repo, tip = fetch_branch(pr_url, Path(tmp) / "pr.git", f"pvs/{origin}")
        except Exception:  # noqa: BLE001 - a PV without an area yet
            return []
        try:
            tree = tree_at(repo, tip.tree[f"pvs/{origin}/str"].id)
        except KeyError:
            return []
        return [(f"PR {pr_url} pvs/{origin}/str/{e.name}", blob_at(repo, e.id)) for e in tree
                if entry_name(e).endswith(".note")]


def _latest_views(pv: TrustedPv, fetcher: Fetcher, pr_url: str | None, state: PeerState | None,
                  report: GossipReport, notes: dict[tuple[int, str], bytes]) -> tuple[set[int], set[str]]:
    """Every mirror's latest.note, the PV's area on the PR and the peer's remembered STR:
    (the epochs they name, the mirrors that did not answer)."""
    epochs: set[int] = set()
    failed: set[str] = set()  # mirrors that did not answer: not asked again (each try may cost a deadline)
    for mirror in pv.mirrors:
        # latest.note, and for STR v2 the cosigned `checkpoint` peers read: a mirror showing
        # witnessed peers another head than its latest.note is a split view too
        for path in (site.LATEST, site.CHECKPOINT):
            try:
                data = fetcher.get(mirror, path, max_bytes=MAX_STR_BYTES)
            except FetchError as exc:
                if path == site.LATEST or not exc.not_found:  # a v1 PV publishes no checkpoint
                    report.problems.append(f"{pv.name}: {exc}")
                if not exc.not_found:
                    failed.add(mirror)
                    break
                continue
            signed = _collect(report, pv, data, f"{mirror} {path}", notes)
            if signed:
                epochs.add(signed.head.epoch)
    pr = pv.pr or pr_url
    for source, note in _pr_area_notes(pr, pv.verifier.name) if pr else []:
        signed = _collect(report, pv, note, source, notes)
        if signed:
            epochs.add(signed.head.epoch)
    remembered = state.last(pv.verifier.name) if state is not None else None
    if remembered:
        epoch, note = remembered
        _collect(report, pv, note, f"peer state {state.path if state else ''}", notes)
        epochs.add(epoch)
    return epochs, failed


def _epochs_from_mirrors(pv: TrustedPv, fetcher: Fetcher, epochs: set[int], failed: set[str],
                         report: GossipReport, notes: dict[tuple[int, str], bytes]) -> None:
    """The same epochs, as each mirror that answered keeps them."""
    for mirror in pv.mirrors:
        if mirror in failed:
            continue
        for epoch in sorted(epochs):
            try:
                data = fetcher.get(mirror, site.str_path(epoch), max_bytes=MAX_STR_BYTES)
            except FetchError as exc:
                if exc.not_found:
                    continue
                report.problems.append(f"{pv.name}: {exc} (its other epochs were not fetched)")
                break
            _collect(report, pv, data, f"{mirror} epoch {epoch}", notes)


def gossip(trust: Trust, out_dir: str | Path, *, pr_url: str | None = None, state: PeerState | None = None,
           fetcher: Fetcher | None = None) -> GossipReport:
    fetcher = fetcher or Fetcher()
    report = GossipReport()
    out_dir = Path(out_dir)
    # one PV is one key: trust entries sharing a key (e.g. different mirror sets) are pooled
    notes_of: dict[str, dict[tuple[int, str], bytes]] = {}
    epochs_of: dict[str, set[int]] = {}
    for pv in trust.pvs.values():
        notes = notes_of.setdefault(str(pv.verifier), {})
        epochs = epochs_of.setdefault(str(pv.verifier), set())
        latest, failed = _latest_views(pv, fetcher, pr_url, state, report, notes)
        epochs |= latest
        _epochs_from_mirrors(pv, fetcher, epochs, failed, report, notes)
    for pv in {str(p.verifier): p for p in trust.pvs.values()}.values():
        _record_equivocations(pv, notes_of[str(pv.verifier)], report, out_dir)
    return report


def _record_equivocations(pv: TrustedPv, notes: dict[tuple[int, str], bytes], report: GossipReport,
                          out_dir: Path) -> None:
    for epoch, texts in sorted(report.seen.get(pv.verifier.name, {}).items()):
        if len(texts) < 2:
            continue
        first, second = list(texts)[:2]
        try:
            evidence = _evidence(notes[(epoch, first)], notes[(epoch, second)], pv.verifier)
        except (FormatError, VerificationError) as exc:
            report.problems.append(f"{pv.name}: epoch {epoch}: two different STRs, but no evidence: {exc}")
            continue
        path = out_dir / f"equivocation-{pv.verifier.name}-epoch{epoch}.json"
        atomic_write_bytes(path, evidence)
        report.evidence.append(path)


def _evidence(note_a: bytes, note_b: bytes, verifier: NoteVerifier) -> bytes:
    """The self-contained evidence that two different STRs of one epoch were both signed."""
    a, b = open_any(note_a, verifier), open_any(note_b, verifier)
    if a.version != b.version:
        raise VerificationError(f"an STR v{a.version} and an STR v{b.version}: no evidence format holds both")
    if a.version == 1:
        found = equivocation.detect(a.note, b.note, verifier)
        if found is None:
            raise VerificationError("the two STRs do not differ")
        return found.to_json()
    # one size, two log roots; one root and two texts is refused here (the records differ,
    # and only the log's tiles can say which one is not its entry)
    return checkpoint.detect_equivocation(a.note, b.note, verifier).to_json()
