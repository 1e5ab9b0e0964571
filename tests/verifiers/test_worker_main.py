"""A verifier worker does not re-run the parent's main script: multiprocessing would, for a PV
hosted by a script, re-import everything that script imports on every verifier run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_worker_does_not_execute_the_parents_main_script(tmp_path):
    marker = tmp_path / "main-ran-in-a-child"
    script = tmp_path / "host.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        if __name__ != "__main__":  # multiprocessing imports a script as __mp_main__
            open({str(marker)!r}, "a").write(__name__ + "\\n")
        import verifier_runners as vr
        from verifier_runners.worker import run_verifier_bounded
        from pds_log.core.manifest import parse_plugin_manifest

        if __name__ == "__main__":
            files = {{"p.plugin": b"org.x.y\\nupdate_rtt post a.o\\n", "a.o": b"x"}}
            plugin = vr.PluginInput("org.x.y", "0" * 40, files, parse_plugin_manifest(files, "org.x.y"))
            verifier = vr.build_verifiers({{"always": {{"runner": "always_pass"}}}})["always"]
            print(run_verifier_bounded(verifier, plugin).status)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pass"], result.stdout + result.stderr
    assert not marker.exists(), marker.read_text()
