"""Why a peer refused one answer about one plugin: one type per failed check.

Callers and tests branch on these types, never on message text. Each is a VerificationError
(so a PdsError: the CLI prints its one-line message) and names the `check` that failed
(`pds_log.peer.trusted.Check`). A `TrustProblem` is about one answer (one mirror, one bundle
entry): the peer tries the PV's next mirror. A `Fatal` one is about the PV itself (it signed
two different STRs for one epoch) or about what this peer remembers of it: no other mirror
is tried, since none can make up for it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

from pds_log.core.errors import VerificationError

if TYPE_CHECKING:
    from pds_log.core import checkpoint, equivocation


class Check(IntEnum):
    """The checks of one answer, in the order they run (a later one needs every earlier one)."""

    ANSWER = 1  # the source answered: the mirror's latest STR arrived, the bundle entry is well-formed
    SIGNATURE = 2  # the STR verifies with the trusted key
    CHAIN = 3  # it is consistent with every STR this peer holds or saw (no rollback, no fork)
    FRESHNESS = 4  # it is recent enough, and not dated in the future
    PROOF = 5  # inclusion or absence of the plugin, proven against the STR's root
    BYTECODE = 6  # the bytes the peer holds are the ones the binding names


class TrustProblem(VerificationError):
    """One answer failed `check`; another mirror may still answer."""

    check: Check | None = None
    fatal: ClassVar[bool] = False

    def __init__(self, message: str, *, check: Check | None = None) -> None:
        super().__init__(message)
        if check is not None:
            self.check = check


class Malformed(TrustProblem):
    """The answer is not of the expected shape (a bundle entry)."""

    check = Check.ANSWER


class BadSignature(TrustProblem):
    """An STR that does not verify with the trusted key (the latest one, or a link of the chain)."""

    check = Check.SIGNATURE


class Rollback(TrustProblem):
    """An STR older than one this peer already verified."""

    check = Check.CHAIN


class BrokenChain(TrustProblem):
    """The STRs between the one this peer holds and the new one do not link up. `fork`: the
    first link does not continue our STR (so the source's STR for our epoch is worth a look:
    a different one is equivocation)."""

    check = Check.CHAIN

    def __init__(self, message: str, *, fork: bool = False, check: Check | None = None) -> None:
        super().__init__(message, check=check)
        self.fork = fork


class TooFarBehind(BrokenChain):
    """More epochs since the last verified one than a peer will fetch to catch up."""


class Stale(TrustProblem):
    """An STR signed longer ago than max_age (expired, or the PV stopped signing)."""

    check = Check.FRESHNESS


class Unwitnessed(TrustProblem):
    """An STR without the valid cosignatures of the witness quorum trust.yaml requires for
    its PV (or with an invalid one by a required witness): not fresh evidence."""

    check = Check.FRESHNESS


class FutureDated(TrustProblem):
    """An STR dated further ahead of the peer's clock than the allowed skew."""

    check = Check.FRESHNESS


class BadProof(TrustProblem):
    """The proof (one-file, from tiles or in a bundle) does not prove anything about this
    plugin against the STR's root and epoch, or its material is malformed or tampered."""

    check = Check.PROOF


class Unavailable(TrustProblem):
    """A file the answer needs (a chain link, proof material, the PV's explanation) could not
    be fetched from the mirror that served the STR."""


class BadExplanation(TrustProblem):
    """The PV's (unauthenticated) explanation of an absence is served but unreadable."""


class Fatal(TrustProblem):
    """The PV cannot be trusted on this run whatever another mirror says."""

    fatal = True


class Equivocation(Fatal):
    """Two validly signed STRs that cannot both be true: `evidence` proves it to anyone --
    two different v1 STRs for one epoch (`pds-equivocation`), or two STR v2 checkpoints of
    one PV that are not one append-only log (`pds-checkpoint-equivocation`)."""

    check = Check.CHAIN

    def __init__(self, message: str,
                 evidence: "equivocation.Equivocation | checkpoint.CheckpointEquivocation") -> None:
        super().__init__(message)
        self.evidence = evidence

    @property
    def file_name(self) -> str:
        """Where a peer writes the evidence: equivocation-<origin>-epoch<E>.json."""
        from pds_log.core import checkpoint

        ev = self.evidence
        if isinstance(ev, checkpoint.CheckpointEquivocation):
            return f"equivocation-{ev.log.name}-epoch{ev.b.size}.json"
        return f"equivocation-{ev.verifier.name}-epoch{ev.epoch}.json"


class BadState(Fatal):
    """What this peer remembers of the PV (its state file entry) does not verify."""

    check = Check.CHAIN


__all__ = ["BadExplanation", "BadProof", "BadSignature", "BadState", "BrokenChain", "Check", "Equivocation", "Fatal",
           "FutureDated", "Malformed", "Rollback", "Stale", "TooFarBehind", "TrustProblem", "Unavailable",
           "Unwitnessed"]
