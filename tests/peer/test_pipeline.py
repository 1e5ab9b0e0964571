"""One trust pipeline for mirrors and bundles: the same misbehaviour of a PV is refused with the
same type whichever way its STR arrives (real HTTP mirrors on 127.0.0.1, a real PV key)."""

from __future__ import annotations

import json

import pytest

from pds_log.core import static_layout as site
from pds_log.peer.bundle import BUNDLE_TYPE, check_bundle, encode_bundle
from pds_log.peer.errors import BrokenChain, Equivocation, Rollback
from pds_log.peer.trust import PeerState, load_trust
from pds_log.peer.verify import verify_plugin

from .conftest import SIM_PLUGIN, sim_trust
from .simpv import binding_for, plugin_files

pytestmark = pytest.mark.slow  # simulated PVs behind real HTTP servers


def bundle_of(pv, note: bytes) -> bytes:
    """A bundle carrying `note` and the PV's proof for SIM_PLUGIN at its current epoch."""
    proof = json.loads((pv.out / site.proof_path(pv.epoch, SIM_PLUGIN)).read_text())
    files = plugin_files(SIM_PLUGIN)
    binding = binding_for(SIM_PLUGIN, files)
    return encode_bundle({"v": 1, "type": BUNDLE_TYPE, "name": SIM_PLUGIN, "created": 0,
                          "bytecode": {"p.plugin": binding.manifest_sha256, **binding.pluglets},
                          "pvs": {pv.origin: {"str": note.decode(), "proof": proof}}})


def test_equivocation_is_one_type_from_a_mirror_or_a_bundle(sim_pvs, serve, tmp_path):
    pv1 = sim_pvs["pvs"]["pv1"]
    trust = load_trust(sim_trust(sim_pvs, require="pv1"))
    state = PeerState.load(trust.state_path)
    assert verify_plugin(SIM_PLUGIN, trust, state=state, metadata_only=True).ok  # epoch 1 remembered
    liar = pv1.copy(tmp_path / "liar")
    other = pv1.resign(1)
    (liar / site.LATEST).write_bytes(other.note)
    lying = load_trust(sim_trust(sim_pvs, require="pv1", urls={"pv1": [serve(liar), *sim_pvs["urls"]["pv1"]]}))
    report = verify_plugin(SIM_PLUGIN, lying, metadata_only=True).pvs["pv1"]
    assert isinstance(report.problem, Equivocation) and len(report.attempts) == 1  # fatal: no other mirror tried
    assert report.evidence and json.loads(open(report.evidence).read())["epoch"] == 1
    offline = check_bundle(bundle_of(pv1, other.note), trust, sim_pvs["bytecode"],
                           state=PeerState.load(trust.state_path))
    assert isinstance(offline.pvs["pv1"].problem, Equivocation) and not offline.ok
    honest = check_bundle(bundle_of(pv1, pv1.strs[1].note), trust, sim_pvs["bytecode"],
                          state=PeerState.load(trust.state_path))
    assert honest.ok and honest.pvs["pv1"].problem is None


def test_rollback_and_fork_from_a_mirror_or_a_bundle(sim_pvs, serve, tmp_path):
    pv1 = sim_pvs["pvs"]["pv1"]
    first = pv1.strs[1]
    pv1.next_epoch({SIM_PLUGIN: binding_for(SIM_PLUGIN, plugin_files(SIM_PLUGIN))})
    trust = load_trust(sim_trust(sim_pvs, require="pv1"))
    assert verify_plugin(SIM_PLUGIN, trust, metadata_only=True).pvs["pv1"].epoch == 2
    offline = check_bundle(bundle_of(pv1, first.note), trust, sim_pvs["bytecode"],
                           state=PeerState.load(trust.state_path))
    assert isinstance(offline.pvs["pv1"].problem, Rollback)
    # a fork: epoch 3 whose prev is not our epoch 2, from a mirror whose epoch 2 is ours (a
    # broken chain) or another, validly signed one (equivocation, found by the fork check)
    forked = pv1.sign_head(epoch=3, prev=b"\x44" * 32)
    broken = pv1.copy(tmp_path / "broken")
    (broken / site.LATEST).write_bytes(forked.note)
    report = verify_plugin(SIM_PLUGIN, load_trust(sim_trust(sim_pvs, require="pv1", urls={"pv1": [serve(broken)]})),
                           metadata_only=True).pvs["pv1"]
    assert type(report.problem) is BrokenChain and report.problem.fork and report.chain_ok is False
    lying = pv1.copy(tmp_path / "lying")
    (lying / site.LATEST).write_bytes(forked.note)
    (lying / site.str_path(2)).write_bytes(pv1.resign(2).note)
    report = verify_plugin(SIM_PLUGIN, load_trust(sim_trust(sim_pvs, require="pv1", urls={"pv1": [serve(lying)]})),
                           metadata_only=True).pvs["pv1"]
    assert isinstance(report.problem, Equivocation), report
