"""Issue 13: the auditor how-to works verbatim, and a developer can run a PV's published
verifier set. A real PV (pv.yaml naming its public log URL under `published:`) runs an epoch
and publishes; its files, log repo and PR are served over HTTP by a real server on 127.0.0.1;
then the how-to's shell block is extracted from site/docs and run by bash, as it is written
(only $PV set to the server, and `pds` meaning this checkout's CLI)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import yaml

from pds_log.core.note import NoteSigner
from tests.support import PDS, ROOT, StaticServer, World, epoch, run

pytestmark = pytest.mark.slow  # real PRs, builds and epochs: tens of seconds

DOCS = ROOT / "site" / "docs" / "howto"
VERIFIERS = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"}}
PDS_CMD = " ".join(shlex.quote(str(a)) for a in PDS)


def shell(script: str, cwd) -> subprocess.CompletedProcess:
    """Run documented commands with bash, `pds` being this checkout's CLI."""
    prelude = f"set -euo pipefail\npds() {{ {PDS_CMD} \"$@\"; }}\n"
    return subprocess.run(["bash", "-c", prelude + script], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("howto")
    srv = root / "srv"
    srv.mkdir()
    server = StaticServer(srv)
    world = World(root)
    config = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    doc = yaml.safe_load(config.read_text())
    doc["published"] = {"log": [f"{server.url}log.git"], "mirrors": [f"{server.url}pv1/"]}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    world.push_plugins({"org.pds.rtt": "org.pds.examples.rtt_monitor", "org.pds.tamper": "org.pds.examples.rtt_tamper"})
    summary = epoch(config)
    assert summary["added"] == ["org.pds.rtt"], summary
    log = root / "pv1.example" / "log.git"
    run("git", "-C", log, "update-server-info")  # what serving a bare repo over dumb HTTP takes
    (srv / "log.git").symlink_to(log)
    run(*PDS, "pv", "publish", "--config", config, "--out", srv / "pv1", "--no-site")
    yield {"world": world, "server": server, "config": config, "root": root}
    server.stop()


def test_pv_json_names_the_log_urls_and_mirrors(served):
    desc = json.loads((served["root"] / "srv" / "pv1" / "pv.json").read_text())
    url = served["server"].url
    assert desc["log"] == {"urls": [f"{url}log.git"], "mirrors": [f"{url}pv1/"]}


def test_the_auditor_howto_runs_verbatim_against_a_served_pv(served, tmp_path):
    (block,) = re.findall(r"```sh\n(.*?)```", (DOCS / "auditor.md").read_text(), re.S)
    assert block.startswith("PV=https://pv1.example\n")
    script = block.replace("PV=https://pv1.example\n", f"PV={served['server'].url}pv1\n", 1)
    result = shell(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "log.git" / "HEAD").exists() and (tmp_path / "pr.git" / "HEAD").exists()
    assert not (tmp_path / "log").exists()
    assert re.search(r"audited 1 epochs, 1 plugins in the final tree, in .* s: clean", result.stdout), result.stdout
    assert (tmp_path / "audit-state.json").exists()
    # and it can fail: the same commands, pinning another key for pv1.example, find the STR forged
    other = str(NoteSigner.generate("pv1.example").verifier())
    wrong = script.replace("log.git", "log2.git").replace("pr.git", "pr2.git") \
        .replace("audit-state.json", "audit-state2.json").replace('"$(jq -r .vkey pv.json)"', shlex.quote(other))
    again = shell(wrong, tmp_path)
    assert again.returncode == 1 and "FINDING" in again.stdout, again.stdout + again.stderr


def test_a_developer_runs_a_pvs_published_verifier_set(served, tmp_path):
    text = " ".join((DOCS / "developer.md").read_text().split())
    command = re.search(r"\(`(curl -fsS https://pv1\.example/pv\.json -o pv1\.json && pds pv check "
                        r"be\.example\.hello --config pv1\.json)`", text).group(1)
    world = served["world"]
    base = f"{served['server'].url}pv1"
    for example, expected in (("org.pds.examples.rtt_monitor", 0), ("org.pds.examples.rtt_tamper", 1)):
        plugin = world.example(example, "be.example.hello" if expected == 0 else "be.example.tamper")
        script = command.replace("https://pv1.example", base).replace("be.example.hello", str(plugin))
        result = shell(script, tmp_path)
        assert result.returncode == expected, result.stdout + result.stderr
        assert re.search(r"^safety\s+pass", result.stdout, re.M) and "side_effects" in result.stdout
        assert "static" not in result.stdout  # the PV's set, not the default one


def test_pv_check_refuses_a_malformed_descriptor_with_exit_2(served, tmp_path):
    desc = json.loads((served["root"] / "srv" / "pv1" / "pv.json").read_text())
    desc["surprise"] = 1
    bad = tmp_path / "pv.json"
    bad.write_text(json.dumps(desc))
    plugin = served["world"].example("org.pds.examples.rtt_monitor", "be.example.hello")
    result = run(*PDS, "pv", "check", plugin, "--config", bad, check=False)
    assert result.returncode == 2 and "unknown key(s) surprise" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
