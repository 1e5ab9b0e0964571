"""The peer's trust pipeline on its own (pds_log.peer.trusted): STRs signed by a real PV key
(`SimPV`), proofs from its tree; every refusal is branched on by its type, not its message."""

from __future__ import annotations

import time

import pytest

from pds_log.core.note import NoteVerifier
from pds_log.core.proof import make_proof
from pds_log.peer.errors import (
    BadProof,
    BadSignature,
    BadState,
    BrokenChain,
    Check,
    Equivocation,
    Fatal,
    FutureDated,
    Rollback,
    Stale,
    TooFarBehind,
    TrustProblem,
)
from pds_log.peer.trust import TrustedPv
from pds_log.peer.trusted import MAX_CHAIN_FETCH, OutOfOrder, PvTrustedState, Status

from .simpv import SimPV, binding_for, plugin_files

NAME = "org.sim.rtt"
FILES = plugin_files(NAME)


@pytest.fixture
def pv(tmp_path):
    sim = SimPV(tmp_path / "pv", "pv.sim")
    sim.next_epoch({NAME: binding_for(NAME, FILES)})
    return sim


def state_of(sim: SimPV, remembered: int | None = None, stateful: bool = True, now: int | None = None,
             max_age: int = 3600) -> PvTrustedState:
    trusted = TrustedPv("pv", NoteVerifier.from_string(sim.vkey), ["http://unused.invalid/"])
    held = (remembered, sim.strs[remembered].note) if remembered is not None else None
    return PvTrustedState(trusted, held, now=int(time.time()) if now is None else now, max_age=max_age,
                          stateful=stateful)


def proof_of(sim: SimPV, name: str = NAME):
    return make_proof(sim.tree, name, sim.epoch, sim.bindings.__getitem__)


def test_a_whole_answer_in_order_then_commit(pv):
    state = state_of(pv)
    answer = state.answer(NAME, "m1")
    assert answer.accept_str(pv.strs[1].note) == []
    answer.accept_chain()
    answer.accept_proof(proof_of(pv), "one-file proof")
    answer.accept_bytecode(FILES)
    report = answer.report("pv")
    assert (report.status, report.approved, report.bytecode, report.epoch) == (Status.INCLUDED, True, "match", 1)
    assert dict(report.checks) == {c: True for c in Check}
    assert report.chain == "first STR seen (nothing to chain to)" and report.problem is None
    assert state.commit(answer).note == pv.strs[1].note == state.trusted().note
    with pytest.raises(AttributeError):
        report.reason = "changed"  # reports are immutable


def test_checks_must_run_in_order(pv):
    answer = state_of(pv).answer(NAME, "m1")
    with pytest.raises(OutOfOrder):
        answer.accept_chain()
    answer.accept_str(pv.strs[1].note)
    with pytest.raises(OutOfOrder):
        answer.accept_proof(proof_of(pv))
    answer.accept_chain()
    with pytest.raises(OutOfOrder):
        answer.accept_bytecode(FILES)
    with pytest.raises(OutOfOrder):
        state_of(pv).commit(answer)  # not every check passed


def test_chain_link_by_link(pv):
    pv.next_epoch({})
    pv.next_epoch({})
    state = state_of(pv, remembered=1)
    answer = state.answer(NAME, "m1")
    assert answer.accept_str(pv.strs[3].note) == [2]
    with pytest.raises(OutOfOrder):
        answer.accept_next(pv.strs[2].note, 3)
    answer.accept_next(pv.strs[2].note, 2)
    answer.accept_chain()
    report = answer.report("pv")
    assert report.chain == "chained link by link from epoch 1 (2 new)" and report.chain_ok is True


def test_broken_chain_and_a_fork_are_told_apart(pv):
    pv.next_epoch({})
    forged = pv.sign_head(epoch=3, prev=b"\x11" * 32)
    answer = state_of(pv, remembered=2).answer(NAME, "m1")
    answer.accept_str(forged.note)
    with pytest.raises(BrokenChain) as caught:
        answer.accept_chain()
    assert caught.value.fork and answer.report("pv").chain_ok is False
    # a chain whose first link does continue ours, but whose next one does not: broken, no fork
    pv.next_epoch({})
    pv.next_epoch({})
    bad = pv.sign_head(epoch=5, prev=b"\x22" * 32)
    answer = state_of(pv, remembered=2).answer(NAME, "m1")
    assert answer.accept_str(bad.note) == [3, 4]
    answer.accept_next(pv.strs[3].note, 3)
    answer.accept_next(pv.strs[4].note, 4)
    with pytest.raises(BrokenChain) as caught:
        answer.accept_chain()
    assert not caught.value.fork


def test_rollback_equivocation_and_bad_state(pv):
    pv.next_epoch({})
    with pytest.raises(Rollback) as caught:
        state_of(pv, remembered=2).answer(NAME, "m1").accept_str(pv.strs[1].note)
    assert caught.value.check is Check.CHAIN and not caught.value.fatal
    other = pv.resign(2)
    state = state_of(pv, remembered=2)
    with pytest.raises(Equivocation) as caught:
        state.answer(NAME, "m1").accept_str(other.note)
    assert isinstance(caught.value, Fatal) and caught.value.evidence.epoch == 2
    assert {caught.value.evidence.a.note, caught.value.evidence.b.note} == {pv.strs[2].note, other.note}
    # equivocation across sources of one run, with no state at all: the second answer is refused
    fresh = state_of(pv, stateful=False)
    fresh.answer(NAME, "m1").accept_str(pv.strs[2].note)
    with pytest.raises(Equivocation):
        fresh.answer(NAME, "m2").accept_str(other.note)
    broken = PvTrustedState(state.pv, (2, pv.strs[1].note), now=int(time.time()), max_age=3600)
    with pytest.raises(BadState):
        broken.answer(NAME, "m1").accept_str(pv.strs[2].note)


def test_too_far_behind(pv):
    far = pv.sign_head(epoch=MAX_CHAIN_FETCH + 2)
    with pytest.raises(TooFarBehind):
        state_of(pv, remembered=1).answer(NAME, "m1").accept_str(far.note)


def test_signature_freshness_and_proof_refusals(pv):
    note = pv.strs[1].note
    with pytest.raises(BadSignature):
        state_of(pv).answer(NAME, "m1").accept_str(note.replace(b"\ntime ", b"\ntime 1"))
    late = state_of(pv, now=pv.strs[1].head.time + 7200)
    answer = late.answer(NAME, "m1")
    answer.accept_str(note)
    with pytest.raises(Stale):
        answer.accept_chain()
    assert answer.report("pv").fresh is False
    early = state_of(pv, now=pv.strs[1].head.time - 3600)
    answer = early.answer(NAME, "m1")
    answer.accept_str(note)
    with pytest.raises(FutureDated):
        answer.accept_chain()
    answer = state_of(pv).answer(NAME, "m1")
    answer.accept_str(note)
    answer.accept_chain()
    other = "org.sim.other"
    pv.next_epoch({other: binding_for(other, plugin_files(other))})
    with pytest.raises(BadProof):
        answer.accept_proof(proof_of(pv, other))  # another plugin's proof
    with pytest.raises(BadProof):
        answer.accept_proof(proof_of(pv))  # epoch 2's proof against epoch 1's STR
    report = answer.failed("pv", BadProof("proof rejected"))
    assert report.status is Status.INVALID and report.checks[Check.PROOF] is False


def test_offline_answers_chain_only_what_they_carry(pv):
    pv.next_epoch({})
    pv.next_epoch({})
    newer = state_of(pv, remembered=1).answer(NAME, "bundle", offline=True)
    assert newer.accept_str(pv.strs[3].note) == []  # epoch 2 is not in a bundle
    newer.accept_chain()
    report = newer.report("pv")
    assert report.chain_ok is None and "not chainable offline" in report.chain and report.fresh
    # the very next epoch chains to the STR held, even offline
    forged = pv.sign_head(epoch=2, prev=b"\x33" * 32)
    nxt = state_of(pv, remembered=1).answer(NAME, "bundle", offline=True)
    nxt.accept_str(forged.note)
    with pytest.raises(BrokenChain) as caught:
        nxt.accept_chain()
    assert caught.value.fork


def test_every_refusal_is_a_trust_problem_naming_its_check():
    for kind in (BadSignature, Rollback, BrokenChain, Stale, FutureDated, BadProof, BadState):
        assert issubclass(kind, TrustProblem) and kind.check is not None
