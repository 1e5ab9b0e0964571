"""Fixtures for the peer tests: PVs published to real HTTP mirrors on 127.0.0.1.

`net` (session): the real pipeline -- a PR, three PVs made with `pds pv init`, plugins built by
clang and pushed with signed commits, two `pds pv epoch` runs per PV, each log published with
`pds_log.pv.publish.publish` to two mirror directories, each served by its own HTTP server.

`serve` (per test): start an HTTP server on a directory; stopped after the test.
`sim_pvs`: three `SimPV`s (core-built, see simpv.py) for what needs the PV's own key.
"""

from __future__ import annotations

import pytest

from tests.support import StaticServer, World, epoch, write_trust

from .simpv import SimPV, binding_for, plugin_files, write_dir

PLUGIN = "org.pds.demo.rtt"
REJECTED = "org.pds.demo.loop"
FAST = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}


@pytest.fixture(scope="session")
def net(tmp_path_factory):
    """Three PVs (pv2 rejects everything: an always-failing verifier), two epochs (PLUGIN is
    updated at epoch 2), each PV published to two mirrors served by six HTTP servers."""
    from pds_log.pv.config import load_config
    from pds_log.pv.publish import publish

    root = tmp_path_factory.mktemp("peer-net")
    world = World(root)
    configs = {
        "pv1": world.add_pv("pv1.example", verifiers=FAST, acceptance="safety & side_effects"),
        "pv2": world.add_pv("pv2.example", verifiers={**FAST, "strict": {"runner": "always_fail",
                                                                         "reason": "pv2 accepts nothing yet"}},
                            acceptance="safety & strict"),
        "pv3": world.add_pv("pv3.example", verifiers=FAST, acceptance="safety"),
    }
    world.push_plugins({PLUGIN: "org.pds.examples.rtt_monitor", REJECTED: "org.pds.examples.spin_wait"})
    for config in configs.values():
        epoch(config)
    world.push_plugins({PLUGIN: "org.pds.examples.state_logger"}, message="new version")
    for config in configs.values():
        epoch(config)
    servers, mirrors, vkeys = [], {}, {}
    for name, config in configs.items():
        cfg = load_config(config)
        vkeys[name] = str(cfg.signer().verifier())
        mirrors[name] = []
        for m in ("a", "b"):
            out = root / "mirrors" / f"{name}-{m}"
            publish(cfg.log_repo, out, human_site=False)
            server = StaticServer(out)
            servers.append(server)
            mirrors[name].append((out, server.url))
    yield {"root": root, "world": world, "configs": configs, "mirrors": mirrors, "vkeys": vkeys,
           "signers": {n: load_config(c).signer() for n, c in configs.items()},
           "bytecode": world.built / "org.pds.examples.state_logger" / PLUGIN,
           "old_bytecode": world.built / "org.pds.examples.rtt_monitor" / PLUGIN}
    for server in servers:
        server.stop()


@pytest.fixture
def serve():
    started = []

    def start(directory):
        server = StaticServer(directory)
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


def net_trust(net, directory, require="pv1 & (pv2 | pv3)", urls=None, **kw):
    """trust.yaml for `net` in `directory` (its own state file); urls overrides mirrors per PV."""
    pvs = {n: (net["vkeys"][n], (urls or {}).get(n) or [u for _, u in net["mirrors"][n]]) for n in ("pv1", "pv2", "pv3")}
    return write_trust(directory / "trust.yaml", pvs, require, state=directory / "state.json", **kw)


SIM_PLUGIN = "org.sim.rtt"
SIM_OTHER = "org.sim.other"


@pytest.fixture
def sim_pvs(tmp_path, serve):
    """Three core-built PVs at epoch 1 (SIM_PLUGIN in pv1 and pv3, rejected by pv2; SIM_OTHER
    everywhere), each served by two HTTP servers; plus the plugin's bytecode directory."""
    files = plugin_files(SIM_PLUGIN)
    other = binding_for(SIM_OTHER, plugin_files(SIM_OTHER))
    pvs, urls = {}, {}
    for i in (1, 2, 3):
        pv = SimPV(tmp_path / f"pv{i}", f"pv{i}.sim")
        if i == 2:
            pv.next_epoch({SIM_OTHER: other}, reject={SIM_PLUGIN: "termination: unproven loop"})
        else:
            pv.next_epoch({SIM_PLUGIN: binding_for(SIM_PLUGIN, files), SIM_OTHER: other})
        pvs[f"pv{i}"] = pv
        urls[f"pv{i}"] = [serve(pv.out), serve(pv.out)]
    return {"pvs": pvs, "urls": urls, "files": files, "bytecode": write_dir(tmp_path / "bytecode", files),
            "dir": tmp_path}


def sim_trust(sim, directory=None, require="pv1 & (pv2 | pv3)", urls=None, **kw):
    directory = directory or sim["dir"]
    pvs = {n: (pv.vkey, (urls or {}).get(n) or sim["urls"][n]) for n, pv in sim["pvs"].items()}
    return write_trust(directory / "trust.yaml", pvs, require, state=directory / "state.json", **kw)
