"""pds as an operator installs it: the wheel and sdist built from this source tree with
`python -m build`, the wheel installed into a fresh venv (no system site-packages, no source
tree on sys.path, cwd outside the tree, no other pds on PATH), then a whole PR -> developer ->
PV -> peer flow run with that venv's `python -m pds_log`. Plus the install source the docs and
the CI templates name (site/docs/deployment.md)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

PACKAGES = ("pds_log", "verifier_runners")
# What a source checkout holds that is not source (as in .gitignore), relative to ROOT.
NOT_SOURCE = {".git", ".venv", "build", "dist", "site_build", ".pytest_cache", ".hypothesis", ".benchmarks",
              "benchmarks/results", "site/site"}
DEPLOYMENT = ROOT / "site" / "docs" / "deployment.md"
CI_TEMPLATES = [ROOT / "ci" / "github" / "pv-epoch.yml", ROOT / "ci" / "github" / "pv-epoch-fanout.yml",
                ROOT / "ci" / "gitlab" / ".gitlab-ci.yml", ROOT / "ci" / "gitlab" / "fanout.gitlab-ci.yml",
                ROOT / "ci" / "gitlab" / "fanout-epoch.gitlab-ci.yml"]


def package_files(base: Path) -> set[str]:
    """Files of the PACKAGES under `base` (a source tree or site-packages), relative to it."""
    return {p.relative_to(base).as_posix() for name in PACKAGES for p in (base / name).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def not_source(directory: str, names: list[str]) -> set[str]:
    rel = Path(directory).resolve().relative_to(ROOT)
    return {n for n in names if (rel / n).as_posix() in NOT_SOURCE or n == "__pycache__" or n.endswith(".pyc")
            or n.endswith(".egg-info")}


def tracked_files() -> set[str] | None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    return {p for p in out.decode().split("\0") if p and (ROOT / p).exists()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build sdist + wheel from a copy of the source tree, install the wheel in a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=not_source)
    dist = tmp / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel, = dist.glob("pds_log-*.whl")
    sdist, = dist.glob("pds_log-*.tar.gz")
    venv = tmp / "venv"
    # The venv's own pip (ensurepip) would cost ~15 s; this pip installs into it just the same.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # Nothing of the source tree or of the test venv: PATH without them, no PYTHONPATH.
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(ROOT)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    work = tmp / "work"
    work.mkdir()
    return {"wheel": wheel, "sdist": sdist, "venv": venv, "python": python, "env": env, "work": work}


def in_venv(installed, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(installed["python"]), *map(str, args)], cwd=installed["work"],
                            env=installed["env"], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def pds(installed, *args, check=True) -> subprocess.CompletedProcess:
    return in_venv(installed, "-m", "pds_log", *args, check=check)


@pytest.mark.slow
def test_wheel_and_sdist_carry_everything(installed):
    wheel = {n for n in zipfile.ZipFile(installed["wheel"]).namelist() if not n.endswith("/")}
    source = package_files(ROOT)
    assert source - wheel == set(), "in the source tree but not in the wheel (package-data in pyproject.toml)"
    assert {n for n in wheel if n.startswith("pds_log/templates/")} >= {
        "pds_log/templates/pr/hooks/pre-receive.in", "pds_log/templates/pr/README.md",
        "pds_log/templates/log/README.md", "pds_log/templates/site/index.md.j2",
        "pds_log/templates/gitolite/gitolite.conf", "pds_log/templates/nginx/pds-static.conf"}
    with tarfile.open(installed["sdist"]) as tar:
        sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tracked = tracked_files()
    expected = tracked if tracked is not None else source | {"pyproject.toml", "README.md"}
    assert expected - sdist == set(), "tracked files missing from the sdist (MANIFEST.in)"

    site_packages = Path(in_venv(installed, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                         .stdout.strip())
    assert source - package_files(site_packages) == set(), "not installed from the wheel"


@pytest.mark.slow
def test_installed_package_is_the_venvs(installed):
    where = json.loads(in_venv(installed, "-c", "import json, sys, pds_log, verifier_runners; print(json.dumps("
                                                "[pds_log.__file__, verifier_runners.__file__, sys.path]))").stdout)
    venv = installed["venv"].resolve()
    for module in where[:2]:
        assert Path(module).resolve().is_relative_to(venv), module
    assert not any(p and Path(p).resolve().is_relative_to(ROOT) for p in where[2]), where[2]
    assert not installed["work"].resolve().is_relative_to(ROOT)
    entry = subprocess.run(["pds", "--version"], cwd=installed["work"], env=installed["env"], capture_output=True,
                           text=True, timeout=60)
    assert entry.returncode == 0 and shutil.which("pds", path=installed["env"]["PATH"]) == \
        str(installed["venv"] / "bin" / "pds"), entry.stderr


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_end_to_end_with_the_installed_wheel(installed):
    """pr init -> developer keygen/new/build/submit -> pv init -> pr add-pv -> pv epoch ->
    pv publish (with the human site) -> peer verify over HTTP, all from the wheel."""
    work = installed["work"]
    pds(installed, "dev", "keygen", "--out", work / "admin")
    pds(installed, "dev", "keygen", "--out", work / "alice")
    pds(installed, "pr", "init", work / "pr.git", "--admin-key", work / "admin")
    hook = (work / "pr.git" / "hooks" / "pre-receive").read_text()
    assert hook.startswith(f"#!{installed['python']}"), hook.splitlines()[0]
    written = pds(installed, "pr", "gitolite-hooks", work / "gitolite-hooks")
    assert sorted(p.name for p in (work / "gitolite-hooks").iterdir()) == ["pds-post-receive", "pds-pre-receive"], \
        written.stdout
    pds(installed, "pr", "add-developer", "--repo", work / "pr.git", "--admin-key", work / "admin", "--name", "alice",
        "--key", work / "alice.pub", "--namespace", "be.example.*")
    pds(installed, "dev", "new", "be.example.hello", "--dir", work)
    assert (work / "be.example.hello" / "pquic.h").stat().st_size > 0
    pds(installed, "dev", "build", work / "be.example.hello")
    pds(installed, "dev", "submit", work / "be.example.hello", "--repo", work / "pr.git", "--key", work / "alice")
    pds(installed, "pv", "init", work / "pv1", "--origin", "pv1.example", "--pr", work / "pr.git")
    pds(installed, "pr", "add-pv", "--repo", work / "pr.git", "--admin-key", work / "admin", "--origin",
        "pv1.example", "--key", work / "pv1" / "keys" / "ssh_ed25519.pub")
    summary = json.loads(pds(installed, "pv", "epoch", "--config", work / "pv1" / "pv.yaml", "--json").stdout)
    assert summary["epoch"] == 1 and summary["added"] == ["be.example.hello"] and summary["rejected"] == [], summary
    pds(installed, "pv", "publish", "--config", work / "pv1" / "pv.yaml", "--out", work / "public")
    assert (work / "public" / "latest.note").exists()
    assert "be.example.hello" in (work / "public" / "site" / "plugins" / "be.example.hello.html").read_text()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(work / "public")))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        trust = {"version": 1, "require": "pv1", "max_age": 3600, "state": str(work / "peer-state.json"),
                 "pvs": {"pv1": {"vkey": (work / "pv1" / "keys" / "note.key.pub").read_text().strip(),
                                 "mirrors": [f"http://127.0.0.1:{httpd.server_port}/"]}}}
        (work / "trust.yaml").write_text(yaml.safe_dump(trust))
        verdict = pds(installed, "peer", "verify", "be.example.hello", "--trust", work / "trust.yaml",
                      "--bytecode", work / "be.example.hello", "--json", check=False)
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr
        report = json.loads(verdict.stdout)
        assert report["accepted"] is True and report["pvs"]["pv1"]["status"] == "included", report
        # The same bytecode, changed by one byte, is refused: the verdict above was earned.
        obj = next((work / "be.example.hello").glob("*.o"))
        obj.write_bytes(obj.read_bytes() + b"\0")
        tampered = pds(installed, "peer", "verify", "be.example.hello", "--trust", work / "trust.yaml",
                       "--bytecode", work / "be.example.hello", check=False)
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------------------- the install source
def documented_spec() -> str:
    text = DEPLOYMENT.read_text()
    match = re.search(r'/opt/pds/bin/pip install "([^"]+)"', text)
    assert match, "deployment.md: no `pip install \"<spec>\"` on the validator's host"
    return match.group(1)


def test_deployment_names_a_pinned_git_install_and_no_todo():
    text = DEPLOYMENT.read_text()
    assert "TODO: confirm: how pds is distributed" not in text
    assert "pip install pds-log " not in text and "pip install pds-log\n" not in text
    spec = documented_spec()
    assert re.fullmatch(r"pds-log @ git\+https://\S+\.git@(v\d+\.\d+\.\d+|[0-9a-f]{40})", spec), spec
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert spec.endswith(f"@v{version}") or re.search(r"@[0-9a-f]{40}$", spec), (spec, version)


@pytest.mark.parametrize("template", CI_TEMPLATES, ids=lambda p: p.name)
def test_ci_templates_default_to_the_documented_pinned_spec(template):
    def settings(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "PDS_PIP_SPEC":
                    yield value
                else:
                    yield from settings(value)
        elif isinstance(node, list):
            for item in node:
                yield from settings(item)

    defaults = []
    for value in settings(yaml.safe_load(template.read_text())):
        github = re.fullmatch(r"\$\{\{ vars\.PDS_PIP_SPEC \|\| '([^']+)' \}\}", value)
        defaults.append(github.group(1) if github else value)
    assert defaults and set(defaults) == {documented_spec()}, defaults


# ---------------------------------------------------------------------------- tests run without PATH
BARE_CLI = re.compile(r"""(?:\(|\[|,)\s*["'](?:pds|python3?)["']\s*,\s*(?:["'](?:-m["']\s*,\s*["']pds_log|"""
                      r"""pr|pv|dev|peer|audit|monitor|gossip|note|tree|key|demo)["'])""")


def test_tests_call_the_cli_through_sys_executable():
    """`pds` and `python3` on PATH may be another installation (or none): tests run the CLI as
    tests.support.PDS (sys.executable -m pds_log)."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "tests").rglob("*.py")) if path.resolve() != Path(__file__).resolve()
             for n, line in enumerate(path.read_text().splitlines(), 1) if BARE_CLI.search(line)]
    assert found == []
    assert BARE_CLI.search('run("pds", "pv", "epoch")') and BARE_CLI.search('Popen(["pds", "peer", "verify"])')
    assert BARE_CLI.search("['python3', '-m', 'pds_log', 'audit']") and not BARE_CLI.search('run(*PDS, "pv")')
