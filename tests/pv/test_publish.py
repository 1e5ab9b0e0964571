"""Static publication: complete, incremental, immutable; and the human site, rendered by a real
headless Chromium."""

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
import requests

from pds_log.core import static_layout as site
from pds_log.core.names import name_key
from pds_log.core.note import NoteVerifier
from pds_log.core.signed_root import open_str
from pds_log.core.tiles import prove_from_tiles
from pds_log.pv.config import load_config
from tests.support import PDS, ROOT, StaticServer, World, epoch, run

pytestmark = pytest.mark.slow  # real epochs, nginx and headless chromium

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
    # status colours come from classes of the shipped stylesheet; every table has a header
    assert '<span class="pds-status pds-rejected">REJECTED</span>' in page
    assert '<span class="pds-status pds-accepted">ACCEPTED</span>' in good
    css = (html_root / "pds.css").read_text()
    assert ".pds-accepted" in css and ".pds-rejected" in css and "border: 1px solid" in css
    for html_page in html_root.rglob("*.html"):
        text = html_page.read_text()
        assert '<link rel="stylesheet" href="' in text and 'pds.css"' in text, html_page
        assert not re.search(r"<th[^>]*>\s*</th>", text), f"{html_page}: an empty table header"
    # the search box is mkdocs' own search: its index holds the plugin pages
    index = json.loads((html_root / "search" / "search_index.json").read_text())
    assert any(d["location"].startswith("plugins/org.pds.bad.tamper.html") for d in index["docs"])
    assert 'id="mkdocs-search-query"' in good and "search/main.js" in good


# absolute URLs; protocol-relative ones (//host/x) only where a resource is named
URL = re.compile(r"""https?://[^\s"'<>()\\`]+""")
RESOURCE_URL = re.compile(r"""^\s*(?:https?:)?//""", re.I)
# namespace names (xmlns="…") are identifiers that are never fetched
XML_NAMESPACE = re.compile(r"""xmlns(?::\w+)?=["'][^"']*["']""")
# elements/attributes whose URL a browser loads by itself (as opposed to a link a reader follows)
LOADED = {("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"), ("iframe", "src"),
          ("source", "src"), ("source", "srcset"), ("video", "src"), ("video", "poster"), ("audio", "src"),
          ("embed", "src"), ("object", "data"), ("input", "src"), ("track", "src"), ("form", "action"),
          ("image", "href"), ("use", "href"), ("meta", "content")}


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (tag, name) in LOADED and value and (RESOURCE_URL.search(value) or "url=http" in value.lower()):
                self.loaded.append(f"<{tag} {name}={value!r}>")
            if name == "style" and value and re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", value, re.I):
                self.loaded.append(f"<{tag} style={value!r}>")


def _code_without_comments(text: str, suffix: str) -> str:
    """CSS/JS minus comments: the license headers and notes of the search plugin's lunr.js name
    their authors' sites, which nothing fetches; code and strings are left as they are."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    if suffix == ".js":
        text = re.sub(r"(^|\s)//.*$", r"\1", text, flags=re.M)  # `https://` has no space before `//`
    return text


def external_references(root, configured: set[str]) -> list[str]:
    """Every absolute URL in every file under `root` that points off the site, but the URLs the
    operator configured (the PR, mirrors) where they are text or a link; and every resource
    (script, stylesheet, image, font, @import) loaded from another host, configured or not."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        text = data.decode("utf-8", "replace")
        name = path.name[:-3] if path.suffix == ".gz" else path.name
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if suffix == ".html":
            parser = _Resources()
            parser.feed(text)
            found += [f"{rel}: loads {r}" for r in parser.loaded]
        if suffix in (".css", ".js", ".html"):
            code = _code_without_comments(text, suffix) if suffix != ".html" else text
            found += [f"{rel}: loads {m}" for m in re.findall(
                r"""(?:@import\s+(?:url\()?|url\()\s*['"]?\s*(?:https?:)?//[^\s'")]+""", code, re.I)]
            found += [f"{rel}: loads {m}" for m in re.findall(r"""importScripts\([^)]*//[^)]*\)""", code)]
            text = code if suffix != ".html" else text
        if suffix in (".xml", ".svg", ".html"):
            text = XML_NAMESPACE.sub("", text)
        for url in URL.findall(text):
            if not any(url == c or url.startswith(c.rstrip("/") + "/") for c in configured):
                found.append(f"{rel}: {url}")
    return found


def configured_urls(out) -> set[str]:
    """The URLs the operator put in pv.json (PR, log repos, mirrors): the site may name them."""
    urls: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            urls.add(value)
    walk(json.loads((out / site.DESCRIPTOR).read_text()))
    return urls


def test_human_site_makes_no_third_party_requests(published, tmp_path):
    """grep of every file of the built human site: no URL to another host (the built-in mkdocs
    theme loaded highlight.js from cdnjs); the checker itself catches an injected CDN script,
    a web font and an @import."""
    html_root = published["out"] / site.SITE_DIR
    assert external_references(html_root, configured_urls(published["out"])) == []
    assert (html_root / "search" / "search_index.json").exists() and (html_root / "search" / "lunr.js").exists()
    bad = tmp_path / "bad"
    shutil.copytree(html_root, bad)
    page = bad / "plugins" / "index.html"
    page.write_text(page.read_text().replace(
        "</head>", '<script src="https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.8.0/highlight.min.js">'
                   '</script></head>'))
    (bad / "pds.css").write_text((bad / "pds.css").read_text() + '\n@import url("//fonts.googleapis.com/css");\n'
                                 '@font-face { src: url(https://fonts.gstatic.com/x.woff2); }\n')
    found = external_references(bad, {"https://cdnjs.cloudflare.com"})  # configured or not, never loaded
    assert any("plugins/index.html: loads <script src=" in f for f in found), found
    assert any("fonts.googleapis.com" in f for f in found) and any("fonts.gstatic.com" in f for f in found), found


def test_site_screenshot_in_headless_chromium(published, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is required (installed by scripts/bootstrap)"
    server = StaticServer(published["out"])
    shot, listing = tmp_path / "plugin.png", tmp_path / "plugins.png"
    try:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile0'}", "--window-size=1200,900", f"--screenshot={listing}",
             server.url + "site/plugins/index.html"],
            capture_output=True, text=True, timeout=120)
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
    for png in (shot, listing):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, png
    assert "pv1.example" in dom.stdout and "Latest epoch" in dom.stdout


def deployment_nginx_commands() -> tuple[str, str]:
    """The two shell blocks of deployment.md's nginx section: set up and start; reload and stop."""
    text = (ROOT / "site" / "docs" / "deployment.md").read_text()
    section = text[text.index("## The static site: nginx"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    start, stop = re.findall(r"```sh\n(.*?)```", section, re.S)
    return start, stop


def documented(block: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in block, f"deployment.md's nginx commands no longer contain {old!r}"
        block = block.replace(old, new)
    return block


def test_nginx_runs_as_documented_and_never_caches_errors(published, tmp_path):
    """deployment.md's nginx commands, run as written (only the prefix, port and python differ)
    against a real nginx serving a real publication: content types, immutable vs short-lived
    caching, no-store on 404 and 403, hidden publisher state."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is installed by scripts/bootstrap"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, prefix = published["out"], tmp_path / "srv"
    prefix.mkdir()
    for parent in list(out.parents)[::-1] + [out] + list(prefix.parents)[::-1] + [prefix]:
        parent.chmod(parent.stat().st_mode | 0o005)  # nginx workers (nobody under root) must read the site
    (prefix / "public").symlink_to(out)  # stands for `pds pv publish --out $PREFIX/public`
    start_block, stop_block = deployment_nginx_commands()
    replacements = {"PREFIX=/srv/pds/pv1": f"PREFIX={prefix}", "LISTEN=80": f"LISTEN=127.0.0.1:{port}",
                    "/opt/pds/bin/python": sys.executable}
    env = dict(os.environ, PATH=f"{os.path.dirname(nginx)}:{os.environ.get('PATH', '')}")
    started = subprocess.run(["bash", "-euo", "pipefail", "-c", documented(start_block, replacements)],
                             capture_output=True, text=True, env=env, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int((prefix / "logs" / "nginx.pid").read_text())
    base = f"http://127.0.0.1:{port}/"
    try:
        # the daemon has bound its socket before the command returned
        latest = requests.get(base + "latest.note", timeout=5)
        assert latest.status_code == 200 and latest.headers["Content-Type"].startswith("text/plain")
        assert latest.content == (out / site.LATEST).read_bytes()
        assert latest.headers["Cache-Control"] == "public, max-age=60"
        assert latest.headers["Access-Control-Allow-Origin"] == "*"
        tile = next(p for p in (out / "tiles").rglob("*") if p.is_file())
        tile_url = base + tile.relative_to(out).as_posix()
        got = requests.get(tile_url, timeout=5)
        assert got.content == tile.read_bytes()
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        revalidated = requests.get(tile_url, timeout=5, headers={"If-None-Match": got.headers["ETag"]})
        assert revalidated.status_code == 304 and "immutable" in revalidated.headers["Cache-Control"]
        # a proof of an epoch not published yet: 404, and nothing may cache that answer
        missing = requests.get(base + site.proof_path(99, "org.pds.p0.rtt"), timeout=5)
        assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
        for path in ("tiles/0/" + "0" * 64, "site/no-such-page.html", "status/no.such.plugin.json", "nothing"):
            answer = requests.get(base + path, timeout=5)
            assert answer.status_code == 404 and answer.headers["Cache-Control"] == "no-store", path
        hidden = requests.get(base + ".pds-publish.json", timeout=5)
        assert hidden.status_code == 403 and hidden.headers["Cache-Control"] == "no-store"
        proof = next((out / "proofs").rglob("*.json"))
        proof_url = base + proof.relative_to(out).as_posix()
        assert requests.get(proof_url, timeout=5).headers["Content-Type"].startswith("application/json")
        # compressed on request, as it is for a browser; never when not asked (the pds peer)
        largest = max((out / "proofs").rglob("*.json"), key=lambda p: p.stat().st_size)
        assert largest.stat().st_size >= 256  # over gzip_min_length, so it must be compressed
        gz = requests.get(base + largest.relative_to(out).as_posix(), timeout=5, headers={"Accept-Encoding": "gzip"})
        assert gz.headers.get("Content-Encoding") == "gzip" and gz.content == largest.read_bytes()
        plain = requests.get(proof_url, timeout=5, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and plain.content == proof.read_bytes()
        assert "gzip" not in requests.get(tile_url, timeout=5, headers={"Accept-Encoding": "gzip"}
                                          ).headers.get("Content-Encoding", "")
        page = requests.get(base + "site/index.html", timeout=5)
        assert page.status_code == 200 and page.headers["Cache-Control"] == "public, max-age=300"
        assert requests.get(base + "pv.json", timeout=5).headers["Cache-Control"] == "public, max-age=300"
        stopped = subprocess.run(["bash", "-euo", "pipefail", "-c", stop_block], capture_output=True, text=True,
                                 env=dict(env, PREFIX=str(prefix)), timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert wait_until_gone(pid, 20), "nginx -s quit did not stop nginx"
    finally:
        if not wait_until_gone(pid, 0):
            os.kill(pid, signal.SIGTERM)  # the daemon this test started, by its pid


def wait_until_gone(pid: int, seconds: float) -> bool:
    """Whether process `pid` (a daemon, not our child: no wait()) has exited within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
