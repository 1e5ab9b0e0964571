"""`pds demo`: the whole system on one machine, for real.

Creates a Plugin Repository, a developer and two PVs; builds our example plugins with clang
(some good, some that fail a verifier) and pushes them as signed commits; runs the PVs'
epochs (real verifiers), an update and a second epoch; publishes both PVs' static sites and
serves them over HTTP on 127.0.0.1; then verifies every plugin as a peer requiring
`pv1 & pv2`, and says where everything is. `--dir DIR` keeps it all in DIR and writes
DIR/demo.json so the peer, the auditor and the monitor can be re-run on the artifacts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from pds_log.core.errors import PdsError
from pds_log.infra.resources import resource

DEVELOPER_NAMESPACE = "org.pds.*"
PVS: dict[str, dict[str, Any]] = {
    "pv1": {"origin": "pv1.demo.pds", "acceptance": "reproducible & safety & termination",
            "verifiers": {"reproducible": {"runner": "reproducible"}, "safety": {"runner": "bytecode_safety"},
                          "termination": {"runner": "termination"}}},
    "pv2": {"origin": "pv2.demo.pds", "acceptance": "safety & side_effects & static",
            "verifiers": {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"},
                          "static": {"runner": "static_analysis", "severity": "warning"}}},
}
PLUGINS = ["org.pds.examples.rtt_monitor", "org.pds.examples.cwin_total", "org.pds.examples.state_logger",
           "org.pds.examples.xbgp_med", "org.pds.examples.spin_wait", "org.pds.examples.rtt_tamper",
           "org.pds.examples.local_call", "org.pds.examples.nonrepro"]
REQUIRE = "pv1 & pv2"
DEMO_MAX_AGE = 86400  # a demo's STRs stay fresh for a day, so the artifacts can be re-checked later


def expected_verdict(example: str) -> str:
    expect = yaml.safe_load(resource("examples", example, "expect.yaml").read_text())["expect"]
    needed = {v for pv in PVS.values() for v in pv["verifiers"]}
    return "accept" if all(expect.get(v, "pass") == "pass" for v in needed) else "reject"


def run_demo(directory: str | Path | None = None, say: Callable[[str], None] = print,
             keep_serving: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    root = Path(directory or tempfile.mkdtemp(prefix="pds-demo-")).resolve()
    if root.exists() and any(root.iterdir()):
        raise PdsError(f"{root} is not empty; give an empty or new directory")
    root.mkdir(parents=True, exist_ok=True)
    say(f"[1/7] keys and Plugin Repository in {root}")
    keys, pr = _make_pr(root)
    say("[2/7] two validators (pds pv init), each given its area on the PR")
    configs = _make_pvs(root, pr, keys)
    say(f"[3/7] developer alice builds {len(PLUGINS)} example plugins with clang and pushes signed commits")
    work = _push_examples(root, pr, keys, say)
    say("[4/7] epoch 1 at each validator (real verifiers)")
    _run_epochs(configs, pr, keys, work, say)
    say("[5/7] publish both validators' static sites")
    servers = _publish_and_serve(root, configs, say)
    trust_path = _write_trust(root, configs, servers, pr)
    say(f"[7/7] peer: verify each plugin, requiring {REQUIRE} (bytecode checked against the bindings)")
    verdicts, mismatches = _verify_all(trust_path, work, say)
    doc = {
        "pr": str(pr), "trust": str(trust_path),
        "pvs": {name: {"log_repo": str(config.log_repo), "site": str(root / name / "site"),
                       "str_latest": str(root / name / "site" / "latest.note"),
                       "vkey": str(config.signer().verifier())} for name, config in configs.items()},
        "plugins": verdicts, "bytecode": {example: str(work / example) for example in PLUGINS},
    }
    (root / "demo.json").write_text(json.dumps(doc, indent=1) + "\n")
    _say_where(root, configs, servers, pr, trust_path, work, keys, verdicts, time.perf_counter() - start, say)
    if mismatches:
        raise PdsError(f"unexpected verdicts for {', '.join(mismatches)}")
    if keep_serving:
        say("serving until Ctrl-C ...")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    for server, _ in servers.values():
        server.shutdown()
        server.server_close()
    doc["root"] = str(root)
    return doc


def _make_pr(root: Path) -> tuple[Path, Path]:
    """Admin and developer keys, a PR, and a policy that lets alice write the demo namespace."""
    from pds_log.core.policy import Policy, Principal, key_id
    from pds_log.infra.sshkeys import read_public_key, write_ssh_keypair
    from pds_log.pr.repo import edit_policy, init_pr

    keys = root / "keys"
    keys.mkdir()
    write_ssh_keypair(keys / "admin", "pds-admin")
    write_ssh_keypair(keys / "alice", "alice@developer")
    pr = root / "pr.git"
    init_pr(pr, keys / "admin", "admin")

    def add_alice(policy: Policy) -> str:
        policy.developers.append(Principal("alice", key_id(read_public_key(str(keys / "alice.pub"))), "developer",
                                           (DEVELOPER_NAMESPACE,)))
        return f"policy: developer alice may write {DEVELOPER_NAMESPACE}"

    edit_policy(str(pr), keys / "admin", add_alice)
    return keys, pr


def _make_pvs(root: Path, pr: Path, keys: Path) -> dict[str, Any]:
    from pds_log.core.policy import Policy, Principal, key_id
    from pds_log.infra.sshkeys import read_public_key
    from pds_log.pr.repo import edit_policy
    from pds_log.pv.config import load_config
    from pds_log.pv.setup import init_pv

    configs = {}
    for name, spec in PVS.items():
        path = init_pv(root / name, spec["origin"], str(pr), verifiers=spec["verifiers"],
                       acceptance=spec["acceptance"])
        configs[name] = load_config(path)

        def add_area(policy: Policy, origin: str = spec["origin"],
                     pub: str = str(root / name / "keys" / "ssh_ed25519.pub")) -> str:
            policy.pvs.append(Principal(origin, key_id(read_public_key(pub)), "pv", origin=origin))
            return f"policy: PV {origin} writes refs/heads/pvs/{origin}"

        edit_policy(str(pr), keys / "admin", add_area)
    return configs


def _push_examples(root: Path, pr: Path, keys: Path, say: Callable[[str], None]) -> Path:
    from pds_log.developer.build import build_plugin
    from pds_log.developer.submit import submit_plugin

    work = root / "developer"
    work.mkdir()
    for example in PLUGINS:
        target = work / example
        shutil.copytree(resource("examples", example), target, ignore=shutil.ignore_patterns("expect.yaml"))
        expect = yaml.safe_load(resource("examples", example, "expect.yaml").read_text())
        flags = (expect.get("build") or {}).get("flags")
        build_plugin(target, flags=flags)
        submit_plugin(target, str(pr), keys / "alice", author="alice", message=f"add {example}")
        say(f"      pushed {example}")
    return work


def _run_epochs(configs: dict[str, Any], pr: Path, keys: Path, work: Path, say: Callable[[str], None]) -> None:
    from pds_log.developer.build import build_plugin
    from pds_log.developer.submit import submit_plugin
    from pds_log.pv.epoch import EpochOptions, run_epoch

    for name, config in configs.items():
        summary = run_epoch(config, EpochOptions())
        say(f"      {name}: epoch {summary.epoch}, {summary.size} accepted, {len(summary.rejected)} rejected, "
            f"PR area push: {summary.pushes.get('pr')}")
    say("      alice updates rtt_monitor (a comment in its source), rebuilds and pushes; epoch 2")
    updated = work / "org.pds.examples.rtt_monitor"
    source = updated / "record_progress.c"
    source.write_text(source.read_text() + "/* demo update */\n")
    build_plugin(updated)
    submit_plugin(updated, str(pr), keys / "alice", author="alice", message="update rtt_monitor")
    for name, config in configs.items():
        summary = run_epoch(config, EpochOptions())
        say(f"      {name}: epoch {summary.epoch}, updated {', '.join(summary.updated) or '-'}")


def _publish_and_serve(root: Path, configs: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    from pds_log.pv.publish import publish

    for name, config in configs.items():
        result = publish(config.log_repo, root / name / "site")
        say(f"      {name}: {result.files_written} files -> {root / name / 'site'}")
    say("[6/7] serve them over HTTP on 127.0.0.1")
    servers = {}
    for name in configs:
        servers[name] = _serve(root / name / "site")
        say(f"      {name}: {servers[name][1]}")
    return servers


def _write_trust(root: Path, configs: dict[str, Any], servers: dict[str, Any], pr: Path) -> Path:
    trust_path = root / "trust.yaml"
    trust_doc = {
        "version": 1,
        "pvs": {name: {"vkey": str(config.signer().verifier()),
                       "mirrors": [servers[name][1], str(root / name / "site")], "pr": str(pr)}
                for name, config in configs.items()},
        "require": REQUIRE, "max_age": DEMO_MAX_AGE, "state": str(root / "peer-state.json"),
    }
    trust_path.write_text(yaml.safe_dump(trust_doc, sort_keys=False))
    return trust_path


def _verify_all(trust_path: Path, work: Path, say: Callable[[str], None]) -> tuple[dict[str, str], list[str]]:
    from pds_log.peer.trust import load_trust
    from pds_log.peer.verify import verify_plugin

    trust = load_trust(trust_path)
    verdicts = {}
    mismatches = []
    for example in PLUGINS:
        verdict = verify_plugin(example, trust, bytecode_dir=work / example)
        got = "accept" if verdict.ok else "reject"
        verdicts[example] = got
        detail = "; ".join(f"{pv}: {r.status}" + (f" ({r.explanation})" if r.explanation else "")
                           for pv, r in verdict.pvs.items())
        say(f"      {got.upper():6} {example}  [{detail}]")
        if got != expected_verdict(example):
            mismatches.append(example)
    return verdicts, mismatches


def _say_where(root: Path, configs: dict[str, Any], servers: dict[str, Any], pr: Path, trust_path: Path,
               work: Path, keys: Path, verdicts: dict[str, str], seconds: float, say: Callable[[str], None]) -> None:
    say("")
    say(f"done in {seconds:.1f} s. Where to look:")
    say(f"  demo.json (all paths):   {root / 'demo.json'}")
    for name in configs:
        say(f"  {name} site:               {servers[name][1]}site/index.html  ({root / name / 'site'})")
        say(f"  {name} log repo:           {configs[name].log_repo}   "
            f"audit: pds audit {configs[name].log_repo} --pr {pr}")
    say(f"  the PR:                  {pr}   (git --git-dir {pr} log --oneline --all)")
    say(f"  re-run the peer:         pds peer verify org.pds.examples.rtt_monitor --trust {trust_path} "
        f"--bytecode {work / 'org.pds.examples.rtt_monitor'}")
    say(f"  monitor as the developer: pds monitor --developer {keys / 'alice.pub'} --trust {trust_path}")
    accepted = sorted(n for n, v in verdicts.items() if v == "accept")
    say(f"peer verdict under {REQUIRE}: ACCEPT {', '.join(accepted)}; "
        f"REJECT {', '.join(sorted(set(verdicts) - set(accepted)))}")


def _serve(directory: Path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".note": "text/plain; charset=utf-8",
                          ".json": "application/json"}

        def end_headers(self):
            rel = self.path.lstrip("/").split("?")[0]
            from pds_log.core.static_layout import is_mutable

            self.send_header("Cache-Control", "public, max-age=60" if is_mutable(rel) or not rel
                             else "public, max-age=31536000, immutable")
            super().end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}/"
