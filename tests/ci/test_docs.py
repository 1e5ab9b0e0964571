"""The documentation builds with `mkdocs build --strict` (broken links and anchors fail it), its
worked examples are what the real commands print, and what it quotes (CLI help, pv.yaml,
trust.yaml, the gitolite and nginx configurations) is what the code and pds_log/templates accept."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pds_log.cli.reference import render
from tests.support import ROOT

SITE = ROOT / "site"
DOCS = SITE / "docs"
PAGES = ("index.html", "concepts/index.html", "formats/index.html", "security/index.html",
         "deployment/index.html", "cli/index.html", "howto/developer/index.html", "howto/pr-admin/index.html",
         "howto/pv-operator/index.html", "howto/peer/index.html", "howto/auditor/index.html",
         "examples/bindings.jsonl", "examples/epoch1.note")


def mkdocs(config, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
                          capture_output=True, text=True)


def test_mkdocs_build_strict(tmp_path):
    out = tmp_path / "site"
    result = mkdocs(SITE / "mkdocs.yml", out)
    assert result.returncode == 0, result.stderr
    for page in PAGES:
        assert (out / page).exists(), page
    assert "pv1 &amp; (pv2 | pv3)" in (out / "index.html").read_text()
    formats = (out / "formats" / "index.html").read_text()
    for heading in ("Binding", "Compressed sparse Merkle prefix tree", "Proof", "STR (signed tree root)",
                    "Tiles (tile v1)", "Log repository (log v1)", "Static publication (static v1)", "Worked example"):
        assert heading in formats, heading
    security = (out / "security" / "index.html").read_text()
    for threat in ("Malicious developer", "Compromised PR", "Malicious PV", "Equivocating PV", "Malicious mirror",
                   "Network attacker", "Unreachable or dead PV"):
        assert threat in security, threat


def test_strict_build_catches_a_broken_anchor(tmp_path):
    """The strict build would fail on a link to a section that does not exist."""
    docs = tmp_path / "site"
    shutil.copytree(SITE, docs, ignore=shutil.ignore_patterns("templates"))
    page = docs / "docs" / "howto" / "peer.md"
    page.write_text(page.read_text() + "\nSee [nowhere](../deployment.md#no-such-section).\n")
    result = mkdocs(docs / "mkdocs.yml", tmp_path / "out")
    assert result.returncode != 0 and "no-such-section" in result.stderr


def _site_copy(tmp_path: Path) -> Path:
    """A copy of site/ to run the generator in: tests never write to tracked files (the
    generator's --check runs the real commands, which write the example files it compares)."""
    copy = tmp_path / "site"
    shutil.copytree(SITE, copy, ignore=shutil.ignore_patterns("site", "__pycache__"))
    return copy


@pytest.mark.slow
def test_worked_examples_are_current(tmp_path):
    copy = _site_copy(tmp_path)
    result = subprocess.run([sys.executable, str(copy / "tools" / "worked_examples.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_worked_examples_check_can_fail(tmp_path):
    copy = _site_copy(tmp_path)
    formats = copy / "docs" / "formats.md"
    formats.write_text(formats.read_text().replace("valid: inclusion", "valid: inclusio", 1))
    result = subprocess.run([sys.executable, str(copy / "tools" / "worked_examples.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "site/docs/formats.md" in result.stdout


def test_cli_reference_is_current():
    committed = (DOCS / "cli.md").read_text()
    assert committed == render(), "regenerate with: python -m pds_log.cli.reference > site/docs/cli.md"
    for group in ("pds tree", "pds pv epoch", "pds pv plan", "pds pv run-one", "pds pv seal", "pds pv publish",
                  "pds peer verify", "pds peer bundle", "pds peer check-bundle", "pds pr init", "pds dev submit",
                  "pds audit", "pds monitor", "pds gossip", "pds note verify", "pds key generate", "pds demo"):
        assert f"## `{group}`" in committed, group


def blocks(page: str, lang: str = "") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / page).read_text(), re.S)


def test_documented_pv_yaml_is_accepted(tmp_path):
    import verifier_runners as vr
    from pds_log.pv.config import load_config

    text = blocks("howto/pv-operator.md", "yaml")[0]
    (tmp_path / "pv.yaml").write_text(text)
    config = load_config(tmp_path / "pv.yaml")
    assert config.mirrors and config.acceptance_formula()
    built = vr.build_verifiers(config.verifiers, base_dir=config.base)
    assert set(built) == {"reproducible", "safety", "termination", "side_effects", "static", "cbmc"}
    # and the runner table names every runner pds has, but its test-only ones
    page = (DOCS / "howto" / "pv-operator.md").read_text()
    for runner in set(vr.RUNNERS) - {"always_pass", "always_fail"}:
        assert f"| `{runner}` |" in page, runner


def test_documented_trust_yaml_is_accepted():
    from pds_log.peer.trust import parse_trust

    trust = parse_trust(blocks("howto/peer.md", "yaml")[0], "peer.md")
    assert set(trust.pvs) == {"pv1", "pv2", "pv3"} and trust.max_age == 3600


def test_quoted_configurations_are_the_shipped_ones():
    deployment = (DOCS / "deployment.md").read_text()
    nginx = (ROOT / "pds_log" / "templates" / "nginx" / "pds-static.conf").read_text()
    assert nginx[nginx.index("map $status"):].strip() == blocks("deployment.md", "nginx")[0].strip()
    gitolite = (ROOT / "pds_log" / "templates" / "gitolite" / "gitolite.conf").read_text()
    assert gitolite[gitolite.index("@admins"):].strip() in deployment


def test_documented_nginx_configuration_parses(tmp_path):
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if shutil.os.path.exists(p)), None)
    if nginx is None:
        pytest.skip("nginx is not installed here (only this check is skipped)")
    server = blocks("deployment.md", "nginx")[0].replace("listen 80;", "listen 127.0.0.1:8089;")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{ access_log off;\n{server}\n}}\n")
    result = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    conf.write_text(conf.read_text().replace("location = /latest.note {", "location = /latest.note "))
    assert subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True).returncode != 0


def test_documented_commands_exist():
    """Every `pds <group> <command>` the pages mention is a real command."""
    import click

    from pds_log.cli import cli

    ctx = click.Context(cli)
    missing = set()
    for page in DOCS.rglob("*.md"):
        if page.name == "cli.md":
            continue
        text = page.read_text()
        code = "\n".join(re.findall(r"```.*?```", text, re.S) + re.findall(r"`[^`\n]+`", text))
        # `pds` as a command (not a path like /srv/pds, nor the user in `sudo -u pds`)
        for group, sub in re.findall(r"(?<![\w/.-])(?<!-u )pds ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code):
            command = cli.get_command(ctx, group)
            if command is None:
                missing.add(f"{page.name}: pds {group}")
            elif isinstance(command, click.Group) and sub and command.get_command(ctx, sub) is None:
                missing.add(f"{page.name}: pds {group} {sub}")
    assert not missing, sorted(missing)
