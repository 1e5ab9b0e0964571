"""The documentation builds with `mkdocs build --strict`, and the CLI reference is current."""

import subprocess
import sys

from pds_log.cli.reference import render
from tests.support import ROOT


def test_mkdocs_build_strict(tmp_path):
    out = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                             str(ROOT / "site" / "mkdocs.yml"), "-d", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for page in ("index.html", "concepts/index.html", "formats/index.html", "security/index.html",
                 "deployment/index.html", "cli/index.html", "howto/developer/index.html",
                 "howto/pr-admin/index.html", "howto/pv-operator/index.html", "howto/peer/index.html",
                 "howto/auditor/index.html"):
        assert (out / page).exists(), page
    assert "pv1 &amp; (pv2 | pv3)" in (out / "index.html").read_text()


def test_cli_reference_is_current():
    committed = (ROOT / "site" / "docs" / "cli.md").read_text()
    assert committed == render(), "regenerate with: python -m pds_log.cli.reference > site/docs/cli.md"
    for group in ("pds tree", "pds pv epoch", "pds peer verify", "pds pr init", "pds dev submit", "pds audit"):
        assert f"## `{group}`" in committed
