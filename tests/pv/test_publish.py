"""Static publication: complete, incremental, immutable; and the human site, rendered by a real
headless Chromium."""

import hashlib
import json
import shutil
import subprocess

import pytest

from pds_log.core import static_layout as site
from pds_log.core.names import name_key
from pds_log.core.note import NoteVerifier
from pds_log.core.signed_root import open_str
from pds_log.core.tiles import prove_from_tiles
from pds_log.pv.config import load_config
from tests.support import PDS, StaticServer, World, epoch, run

VERIFIERS = {"safety": {"runner": "bytecode_safety"}, "side_effects": {"runner": "side_effects"},
             "xss": {"runner": "external", "inline": {
                 "argv": ["python3", "-c", "print('VERDICT <script>alert(1)</script> for {pluglet}')"],
                 "pass": "never-matches", "fail": "VERDICT"}}}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("publish"))
    config_path = world.add_pv("pv1.example", verifiers=VERIFIERS, acceptance="safety & side_effects")
    config = load_config(config_path)
    world.push_plugins({f"org.pds.p{i}.rtt": "org.pds.examples.rtt_monitor" for i in range(6)}
                       | {"org.pds.bad.tamper": "org.pds.examples.rtt_tamper"})
    epoch(config_path)
    epoch(config_path)
    out = world.root / "site"
    run(*PDS, "pv", "publish", "--config", config_path, "--out", out)
    return {"world": world, "config": config, "config_path": config_path, "out": out}


def immutable_files(out):
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in out.rglob("*") if p.is_file() and not p.relative_to(out).as_posix().startswith(".")
            and not site.is_mutable(p.relative_to(out).as_posix())}


def test_every_plugin_proves_from_the_published_files(published):
    out, config = published["out"], published["config"]
    verifier = NoteVerifier.from_string(str(config.signer().verifier()))
    signed = open_str((out / site.LATEST).read_bytes(), verifier)
    assert signed.head.epoch == 2
    for i in range(6):
        siblings, leaf = prove_from_tiles(name_key(f"org.pds.p{i}.rtt"), signed.head.root,
                                          lambda level, h: (out / site.tile_path(level, h)).read_bytes())
        assert leaf[0] == name_key(f"org.pds.p{i}.rtt")
        binding = (out / site.binding_by_value_path(leaf[1])).read_bytes()
        assert hashlib.sha256(binding).digest() == leaf[1]
        for digest in json.loads(binding)["pluglets"].values():
            assert (out / site.content_path("bytecode", digest)).exists()
    assert (out / site.proof_path(1, "org.pds.bad.tamper")).exists()
    status = json.loads((out / site.status_path("org.pds.bad.tamper")).read_text())
    assert status["status"] == "rejected" and "xss" in status["reason"]


def test_publishing_is_incremental_and_old_files_never_change(published):
    out, world, config_path = published["out"], published["world"], published["config_path"]
    before = immutable_files(out)
    again = run(*PDS, "pv", "publish", "--config", config_path, "--out", out)
    assert "0 files" in again.stdout or "published epochs -..2" in again.stdout
    world.push_plugins({"org.pds.p0.rtt": "org.pds.examples.state_logger"}, message="one change")
    epoch(config_path)
    result = run(*PDS, "pv", "publish", "--config", config_path, "--out", out, "--no-site")
    after = immutable_files(out)
    for path, digest in before.items():
        assert after[path] == digest, f"{path} changed"
    new = set(after) - set(before)
    assert new, "nothing new was published"
    assert all(p.startswith(("epochs/", "tiles/", "bindings/", "proofs/3/", "results/3/", "bytecode/", "logs/"))
               for p in new), sorted(new)
    assert len(new) < 40, sorted(new)  # in proportion to one changed plugin, not to the tree
    assert "published epochs 3..3" in result.stdout


def test_anyone_can_publish_from_a_clone(published, tmp_path):
    clone = tmp_path / "clone.git"
    run("git", "clone", "-q", "--bare", published["config"].log_repo, clone)
    out = tmp_path / "mirror"
    vkey = str(published["config"].signer().verifier())
    run(*PDS, "pv", "publish", "--log", clone, "--out", out, "--vkey", vkey, "--no-site")
    import pygit2

    log = pygit2.Repository(str(published["config"].log_repo))
    latest = log[log.revparse_single("main").tree[site.LATEST].id].data
    assert (out / site.LATEST).read_bytes() == latest
    wrong = run(*PDS, "pv", "publish", "--log", clone, "--out", tmp_path / "x", "--vkey",
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", check=False)
    assert wrong.returncode == 1 and "expected" in wrong.stderr


def test_human_site_pages_and_escaping(published):
    html_root = published["out"] / site.SITE_DIR
    page = (html_root / "plugins" / "org.pds.bad.tamper.html").read_text()
    assert "REJECTED" in page and "set_cnx(cnx.state) is not allowed" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    good = (html_root / "plugins" / "org.pds.p1.rtt.html").read_text()
    assert "ACCEPTED" in good and "record_progress.o" in good
    assert (html_root / "epochs" / "1.html").exists() and (html_root / "pv.html").exists()
    pv = (html_root / "pv.html").read_text()
    assert str(published["config"].signer().verifier()) in pv


def test_site_screenshot_in_headless_chromium(published, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is required (installed by scripts/bootstrap)"
    server = StaticServer(published["out"])
    shot = tmp_path / "plugin.png"
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900", f"--screenshot={shot}",
             server.url + "site/plugins/org.pds.bad.tamper.html"],
            capture_output=True, text=True, timeout=120)
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", server.url + "site/index.html"],
            capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "pv1.example" in dom.stdout and "Latest epoch" in dom.stdout


def test_nginx_serves_content_types_and_cache_headers(published, tmp_path):
    """The documented nginx config, for real: content types, immutable vs short-lived caching,
    hidden publisher state."""
    import socket
    import time as _time

    import requests

    from tests.support import ROOT

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert shutil.os.path.exists(nginx), "nginx is installed by scripts/bootstrap"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = (ROOT / "pds_log" / "templates" / "nginx" / "pds-static.conf").read_text()
    server = server.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "root /srv/pds/pv1/public;", f"root {published['out']};")
    for parent in list(published["out"].parents)[::-1] + [published["out"]]:
        parent.chmod(parent.stat().st_mode | 0o005)  # nginx workers must read the site
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    f"events {{ worker_connections 64; }}\nhttp {{ access_log off; client_body_temp_path {tmp_path}/b; "
                    f"proxy_temp_path {tmp_path}/p; fastcgi_temp_path {tmp_path}/f; uwsgi_temp_path {tmp_path}/u; "
                    f"scgi_temp_path {tmp_path}/s;\n{server}\n}}\n")
    check = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                requests.get(base + "latest.note", timeout=1)
                break
            except requests.ConnectionError:
                _time.sleep(0.05)
        latest = requests.get(base + "latest.note", timeout=5)
        assert latest.status_code == 200 and latest.headers["Content-Type"].startswith("text/plain")
        assert latest.headers["Cache-Control"] == "public, max-age=60"
        tile = next(p for p in (published["out"] / "tiles").rglob("*") if p.is_file())
        got = requests.get(base + tile.relative_to(published["out"]).as_posix(), timeout=5)
        assert got.content == tile.read_bytes()
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert "immutable" in got.headers["Cache-Control"]
        proof = next((published["out"] / "proofs").rglob("*.json"))
        proof_url = base + proof.relative_to(published["out"]).as_posix()
        assert requests.get(proof_url, timeout=5).headers["Content-Type"].startswith("application/json")
        # compressed on request, as it is for a browser; never when not asked (the pds peer)
        largest = max((published["out"] / "proofs").rglob("*.json"), key=lambda p: p.stat().st_size)
        assert largest.stat().st_size >= 256  # over gzip_min_length, so it must be compressed
        gz = requests.get(base + largest.relative_to(published["out"]).as_posix(), timeout=5,
                          headers={"Accept-Encoding": "gzip"})
        assert gz.headers.get("Content-Encoding") == "gzip" and gz.content == largest.read_bytes()
        plain = requests.get(proof_url, timeout=5, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and plain.content == proof.read_bytes()
        assert "gzip" not in requests.get(base + tile.relative_to(published["out"]).as_posix(), timeout=5,
                                          headers={"Accept-Encoding": "gzip"}).headers.get("Content-Encoding", "")
        assert requests.get(base + ".pds-publish.json", timeout=5).status_code == 403
        page = requests.get(base + "site/index.html", timeout=5)
        assert page.status_code == 200 and "max-age=300" in page.headers["Cache-Control"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
