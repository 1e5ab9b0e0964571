"""End to end on the real corpora: every plugin pushed to a PR, one PV epoch, publish, peer.

    python benchmarks/corpus_e2e.py PQUIC_TREE [XBGP_TREE] [--libxbgp DIR] [--work DIR] [--json]
        [--acceptance EXPR] [--limit N]

PQUIC_TREE may be `-` to run the xBGP corpus alone.

Everything goes through the `pds` command line (`sys.executable -m pds_log`), as a PQUIC or
xBGP developer and a PV operator would run it:

1. `pds pr init` makes a bare PR with its hooks; `pds pr add-developer` lets one developer
   key write the corpus's namespaces; `pds pv init` makes one PV with the default verifier
   set and `pds pr add-pv` gives it its area;
2. for every top-level manifest (the ones `benchmarks/corpus.py` reads): `pds dev import`
   (a name per variant), `pds dev build` (the PV's default recipe), `pds dev submit` (a signed
   commit pushed through the PR's hook);
3. one `pds pv epoch` (timed: this is the corpus's epoch time), then `pds pv publish`;
4. the site served over HTTP on 127.0.0.1, and `pds peer verify NAME --bytecode DIR` for every
   plugin the PV accepted (and one it rejected, which must be refused).

It prints the counts, the epoch time (with each verifier's seconds and the machine's load
average) and every refusal with its reason, then a table of every refusal: the verifiers that
failed (read from the PV's results record and logs in its log repo; * marks those the
acceptance names, which decide), the first reason, and a class from benchmarks/
corpus_verdicts.py, which judges each failure item (a property of the plugin, a limitation of
our verifier, or unclassified: printed in full, a judgement owed). The corpora are not part of
this repository.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import top_level_pquic_manifests  # noqa: E402
from corpus_verdicts import LIMITATION, PLUGIN, UNCLASSIFIED, classify, failure_items  # noqa: E402

PDS = [sys.executable, "-m", "pds_log"]


def pds(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([*PDS, *map(str, args)], capture_output=True, text=True)
    if check and run.returncode != 0:
        raise SystemExit(f"pds {' '.join(map(str, args))}: exit {run.returncode}\n{run.stderr.strip()}")
    return run


def first_lines(text: str, n: int = 2) -> str:
    """The head of a refusal: pds puts the reason first; a tool's crash dump follows it."""
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][:n])[:400]


def plugin_name(manifest: Path, kind: str) -> str:
    if kind == "pquic":
        content = [ln for ln in manifest.read_text(errors="replace").splitlines()
                   if ln.strip() and not ln.lstrip().startswith("#")]
        return content[0].split()[0]
    doc = json.loads(manifest.read_text())
    return f"org.xbgp.{doc.get('name', manifest.stem)}"


def manifests_of(pquic: Path | None, xbgp: Path | None) -> list[tuple[str, Path]]:
    out = [("pquic", m) for m in top_level_pquic_manifests(pquic)] if pquic is not None else []
    if xbgp is not None:
        out += [("xbgp", m) for m in sorted(xbgp.rglob("*.plugin"))]
    return out


def setup(work: Path, namespaces: list[str], acceptance: str | None) -> dict:
    keys = work / "keys"
    keys.mkdir(parents=True)
    for who in ("admin", "dev", "pv"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(keys / who)],
                       check=True)
    pr = work / "pr.git"
    pds("pr", "init", pr, "--admin-key", keys / "admin")
    pds("pr", "add-developer", "--repo", pr, "--admin-key", keys / "admin", "--name", "dev",
        "--key", keys / "dev.pub", *[a for ns in namespaces for a in ("--namespace", ns)])
    extra = ["--acceptance", acceptance] if acceptance else []
    init = json.loads(pds("pv", "init", work / "pv", "--origin", "pv.corpus.pds", "--pr", pr, *extra,
                          "--json").stdout)
    pub = work / "pv" / "keys" / "ssh_ed25519.pub"
    pds("pr", "add-pv", "--repo", pr, "--admin-key", keys / "admin", "--origin", "pv.corpus.pds", "--key", pub)
    return {"pr": pr, "keys": keys, "config": work / "pv" / "pv.yaml", "init": init}


def git_show(repo: Path, spec: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), "show", spec], capture_output=True, text=True,
                          check=True).stdout


def judged(verifier: str, items: list[str]) -> list[dict]:
    """Each failure item with its class and why (corpus_verdicts)."""
    out = []
    for item in items:
        cls, why = classify(verifier, item)
        out.append({"item": item, "class": cls, "why": why})
    return out


def refusal_row(name: str, step: str, text: str) -> dict:
    """A plugin refused before the PV (import, build, submit): its step is the failed 'verifier'."""
    return {"plugin": name, "failed": {step: {"decisive": True, "reason": first_lines(text),
                                              "items": judged(step, [text])}}}


def rejection_rows(log_git: Path, rejected: list[dict], acceptance: str) -> list[dict]:
    """Every plugin the PV rejected, from its results record and verifier logs in the log repo:
    each failed verifier (decisive when the acceptance names it), its reason, and each of its
    failure items judged."""
    decisive = set(re.findall(r"[A-Za-z_][\w-]*", acceptance))
    listing = subprocess.run(["git", "--git-dir", str(log_git), "ls-tree", "-r", "--name-only", "HEAD", "results/"],
                             capture_output=True, text=True, check=True).stdout.split()
    # a log's path depends on the log's layout (its shard depth): found by its name, the digest
    logs = {p.rsplit("/", 1)[-1]: p for p in subprocess.run(
        ["git", "--git-dir", str(log_git), "ls-tree", "-r", "--name-only", "HEAD", "logs/"],
        capture_output=True, text=True, check=True).stdout.split()}
    rows = []
    for entry in sorted(rejected, key=lambda e: e["name"]):
        path = next((p for p in listing if p.endswith(f"/{entry['name']}.json")), None)
        if path is None:
            rows.append({"plugin": entry["name"], "failed": {"?": {"decisive": True, "reason": entry["reason"],
                                                                    "items": judged("?", [entry["reason"]])}}})
            continue
        record = json.loads(git_show(log_git, f"HEAD:{path}"))
        failed = {}
        for verifier, result in sorted(record["verifiers"].items()):
            if result["status"] == "pass":
                continue
            sha = result.get("log_sha256") or ""
            log = git_show(log_git, f"HEAD:{logs[sha]}") if sha in logs else ""
            failed[verifier] = {"decisive": verifier in decisive, "reason": result["reason"],
                                "status": result["status"],
                                "items": judged(verifier, failure_items(verifier, result["reason"], log))}
        rows.append({"plugin": entry["name"], "failed": failed})
    return rows


def row_class(row: dict) -> str:
    """The rejection's class: from its decisive failures (a plugin property decides it; loops our
    verifier cannot count are said too; an item no rule judges makes it unclassified)."""
    items = [i for f in row["failed"].values() if f["decisive"] for i in f["items"]]
    unjudged = sum(i["class"] == UNCLASSIFIED for i in items)
    if unjudged:
        return f"{UNCLASSIFIED} ({unjudged} item(s))"
    plugin = sum(i["class"] == PLUGIN for i in items)
    limited = sum(i["class"] == LIMITATION for i in items)
    if plugin:
        return PLUGIN + (f" (+{limited} item(s) a {LIMITATION})" if limited else "")
    return LIMITATION


def print_rejections(rows: list[dict]) -> None:
    print(f"\n### every refusal ({len(rows)}), judged (corpus_verdicts.py; * = named in the acceptance)")
    print("| plugin | failed | reason (first) | class |\n|---|---|---|---|")
    for row in rows:
        failed = ", ".join(v + ("*" if f["decisive"] else "") for v, f in row["failed"].items())
        first = next((f for f in row["failed"].values() if f["decisive"]), next(iter(row["failed"].values())))
        reason = first["reason"].replace("|", "/").replace("\n", " ")[:160]
        print(f"| {row['plugin']} | {failed} | {reason} | {row_class(row)} |")
    print("\nwhy, per plugin and failed verifier (distinct judgements, with how many failure items each):")
    for row in rows:
        print(f"- {row['plugin']}")
        for verifier, f in row["failed"].items():
            seen: collections.Counter = collections.Counter((i["class"], i["why"]) for i in f["items"])
            for (cls, why), n in seen.items():
                print(f"  - {verifier}{'*' if f['decisive'] else ''}: {cls} ({n})" + (f": {why}" if why else ":"))
            for i in f["items"]:
                if i["class"] == UNCLASSIFIED:
                    print(f"    - unclassified: {i['item'][:300]}")


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pquic", type=Path)
    parser.add_argument("xbgp", type=Path, nargs="?")
    parser.add_argument("--libxbgp", type=Path, help="a libxbgp checkout: its include/ is given to `pds dev "
                        "import -I` for the xBGP plugins (as xbgp_plugins' COMPILING.md asks)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--acceptance", help="the PV's acceptance expression (default: pds pv init's)")
    parser.add_argument("--limit", type=int, help="only the first N manifests (a quick look)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="pds-corpus-e2e-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    manifests = manifests_of(None if args.pquic == Path("-") else args.pquic.resolve(),
                             args.xbgp.resolve() if args.xbgp else None)
    if args.limit:
        manifests = manifests[:args.limit]
    names: collections.Counter = collections.Counter()
    plugins: list[tuple[str, str, Path]] = []
    for kind, manifest in manifests:
        original = plugin_name(manifest, kind)
        names[original] += 1
        name = original if names[original] == 1 else f"{original}.v{names[original]}"
        plugins.append((kind, name, manifest))
    namespaces = sorted({name.split(".")[0] + ".*" for _, name, _ in plugins})
    env = setup(work, namespaces, args.acceptance)
    counts: collections.Counter = collections.Counter()
    refusals: list[str] = []
    rows: list[dict] = []  # every refusal, judged
    dirs: dict[str, Path] = {}
    timings: dict[str, float] = collections.defaultdict(float)
    for kind, name, manifest in plugins:
        counts["manifests"] += 1
        dest = work / "dev" / name
        started = time.perf_counter()
        include = ["-I", args.libxbgp.resolve() / "include"] if kind == "xbgp" and args.libxbgp else []
        run = pds("dev", "import", manifest, "--out", dest, "--name", name, *include, check=False)
        timings["import"] += time.perf_counter() - started
        if run.returncode != 0:
            refusals.append(f"{name}: import: {first_lines(run.stderr)}")
            rows.append(refusal_row(name, "import", run.stderr))
            continue
        counts["imported"] += 1
        started = time.perf_counter()
        run = pds("dev", "build", dest, check=False)
        timings["build"] += time.perf_counter() - started
        if run.returncode != 0:
            refusals.append(f"{name}: build: {first_lines(run.stderr)}")
            rows.append(refusal_row(name, "build", run.stderr))
            continue
        counts["built"] += 1
        started = time.perf_counter()
        run = pds("dev", "submit", dest, "--repo", env["pr"], "--key", env["keys"] / "dev", "--name", name,
                  check=False)
        timings["submit"] += time.perf_counter() - started
        if run.returncode != 0:
            refusals.append(f"{name}: submit: {first_lines(run.stderr)}")
            rows.append(refusal_row(name, "submit", run.stderr))
            continue
        counts["pushed"] += 1
        dirs[name] = dest
    started = time.perf_counter()
    epoch = json.loads(pds("pv", "epoch", "--config", env["config"], "--json").stdout)
    timings["epoch"] = time.perf_counter() - started
    accepted = sorted(set(epoch["added"]) | set(epoch["updated"]))
    counts["accepted by the PV"] = len(accepted)
    counts["rejected by the PV"] = len(epoch["rejected"])
    for entry in sorted(epoch["rejected"], key=lambda e: e["name"]):
        refusals.append(f"{entry['name']}: PV: {entry['reason']}")
    acceptance = next((ln.split(":", 1)[1].strip() for ln in env["config"].read_text().splitlines()
                       if ln.startswith("acceptance:")), "")
    rows += rejection_rows(work / "pv" / "log.git", epoch["rejected"], acceptance)
    counts["refusals judged a property of the plugin"] = sum(row_class(r).startswith(PLUGIN) for r in rows)
    counts["refusals judged a verifier limitation"] = sum(row_class(r) == LIMITATION for r in rows)
    counts["refusals unclassified"] = sum(row_class(r).startswith(UNCLASSIFIED) for r in rows)
    site = work / "site"
    started = time.perf_counter()
    pds("pv", "publish", "--config", env["config"], "--out", site)
    timings["publish"] = time.perf_counter() - started
    server, url = serve(site)
    vkey = env["init"]["vkey"]
    trust = work / "trust.yaml"
    trust.write_text(json.dumps({"version": 1, "pvs": {"pv": {"vkey": vkey, "mirrors": [url], "pr": str(env["pr"])}},
                                 "require": "pv", "state": str(work / "peer-state.json")}))
    peer: dict[str, str] = {}
    started = time.perf_counter()
    for name in [n for n in dirs if n in accepted] + [n for n in dirs if n not in accepted][:1]:
        run = pds("peer", "verify", name, "--trust", trust, "--bytecode", dirs[name], "--json", check=False)
        try:
            verdict = json.loads(run.stdout)
        except ValueError:
            verdict = {"accepted": False, "error": run.stderr.strip()[-200:]}
        peer[name] = ("ACCEPT" if verdict.get("accepted") else "REJECT") + f" (exit {run.returncode})"
        counts["peer ACCEPT" if verdict.get("accepted") else "peer REJECT"] += 1
    timings["peer verify (all)"] = time.perf_counter() - started
    server.shutdown()
    breakdown = {k: round(v, 2) for k, v in (epoch.get("seconds") or {}).items()}
    result = {"work": str(work), "counts": dict(counts), "seconds": {k: round(v, 2) for k, v in timings.items()},
              "epoch": {"epoch": epoch.get("epoch"), "size": epoch.get("size"), "seconds": breakdown},
              "jobs": os.cpu_count(), "load_average": os.getloadavg(), "peer": peer,
              "refusals": refusals, "judged": rows, "acceptance": acceptance}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"work directory: {work}")
    print("| step | count |\n|---|---|")
    for key, value in counts.items():
        print(f"| {key} | {value} |")
    print("\n| phase | seconds |\n|---|---|")
    for key, value in result["seconds"].items():
        print(f"| {key} | {value} |")
    print(f"\n| epoch phase (`pds pv epoch` wall time {result['seconds']['epoch']} s) | seconds |\n|---|---|")
    for key, value in breakdown.items():
        print(f"| {key} | {value} |")
    print("(verifier rows are the sums of each verifier's runs over the parallel jobs of the verify phase; "
          "the reproducible verifier is the PV's build)")
    print("\npeer verify:")
    for name, verdict in peer.items():
        print(f"  {verdict:18} {name}")
    print(f"\nload average at the end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in result['load_average'])} "
          f"on {os.cpu_count()} CPU(s); acceptance: {acceptance}")
    print("\nrefusals:")
    for line in refusals:
        print(f"  {line}")
    print_rejections(rows)


if __name__ == "__main__":
    main()
