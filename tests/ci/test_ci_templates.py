"""The CI templates are valid (check-jsonschema's vendored schemas, systemd-analyze, shellcheck)
and keep the properties that matter for a PV:

* one epoch at a time, never cancelled (GitHub concurrency, GitLab resource_group, flock);
* nothing is signed before `pds_ci.py restore-log` brought the log up to date, nothing is
  published before `pds_ci.py check-pushes` saw it reach the primary mirror, and the cache is
  saved even after a failure;
* the jobs that run verifiers on untrusted sources hold no key; Debian's clang everywhere;
* the fan-out plan -> run-one -> seal wiring is consistent (needs, outputs, artifacts, paths).

Each check is a function returning a list of problems, and each is shown to catch a broken
variant of the real template."""

from __future__ import annotations

import copy
import fnmatch
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support import ROOT

CI = ROOT / "ci"
GH_SINGLE = CI / "github" / "pv-epoch.yml"
GH_FANOUT = CI / "github" / "pv-epoch-fanout.yml"
GITHUB = [GH_SINGLE, GH_FANOUT]
GL_SINGLE = CI / "gitlab" / ".gitlab-ci.yml"
GL_FANOUT = CI / "gitlab" / "fanout.gitlab-ci.yml"
GL_CHILD = CI / "gitlab" / "fanout-epoch.gitlab-ci.yml"
GITLAB = [GL_SINGLE, GL_FANOUT, GL_CHILD]
SYSTEMD = CI / "systemd"

SIGNING = re.compile(r"\bpds pv (epoch|seal|plan)\b")
VERIFYING = re.compile(r"\bpds pv (epoch|run-one)\b")
PUBLISHING = re.compile(r"\bpds pv publish\b")
KEYS = ("PDS_NOTE_KEY", "PDS_SSH_KEY")


def load(path):
    return yaml.safe_load(path.read_text())


def check_schema(schema: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)


# ---------------------------------------------------------------------- schemas
@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows_validate(path):
    result = check_schema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", GITLAB, ids=lambda p: p.name)
def test_gitlab_pipelines_validate(path):
    result = check_schema("vendor.gitlab-ci", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(tmp_path):
    doc = load(GH_SINGLE)
    doc["jobs"]["epoch"]["steps"] = 5
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(doc))
    assert check_schema("vendor.github-workflows", broken).returncode != 0
    doc = load(GL_SINGLE)
    doc["pages"]["resource_group"] = {"name": "pds-epoch"}  # must be a string
    broken.write_text(yaml.safe_dump(doc))
    assert check_schema("vendor.gitlab-ci", broken).returncode != 0


# ---------------------------------------------------------------------- GitHub
def triggers(doc: dict) -> dict:
    return doc.get("on") or doc.get(True) or {}  # YAML 1.1 reads `on` as True


def step_text(step: dict) -> str:
    return yaml.safe_dump(step, width=10_000)


def github_problems(doc: dict) -> list[str]:
    problems = []
    concurrency = doc.get("concurrency") or {}
    if not concurrency.get("group"):
        problems.append("no concurrency group")
    if concurrency.get("cancel-in-progress") is not False:
        problems.append("an epoch in progress could be cancelled")
    on = triggers(doc)
    for needed in ("schedule", "repository_dispatch", "workflow_dispatch"):
        if needed not in on:
            problems.append(f"no {needed} trigger")
    if "pds-pr-push" not in ((on.get("repository_dispatch") or {}).get("types") or []):
        problems.append("repository_dispatch does not accept pds-pr-push")
    for bad in ("pull_request", "pull_request_target", "push"):
        if bad in on:
            problems.append(f"{bad} trigger on a workflow that holds the signing key")
    if (doc.get("defaults") or {}).get("run", {}).get("shell") != "bash":
        problems.append("run steps without pipefail (defaults.run.shell is not bash)")
    for name, job in doc["jobs"].items():
        steps = job.get("steps", [])
        runs = [s.get("run", "") for s in steps]
        text = "\n".join(runs)
        if VERIFYING.search(text) and not str(job.get("container", "")).startswith("debian:"):
            problems.append(f"{name}: verifies outside a Debian container")
        if re.search(r"\bgit init\b", text):
            problems.append(f"{name}: creates a git repository (CI must never start a log)")
        if re.search(r"\bpds\b[^\n|]*\|", text):
            problems.append(f"{name}: pipes a pds command (its failure could go unnoticed)")
        order = []
        for i, run in enumerate(runs):
            if "pds_ci.py restore-log" in run:
                order.append(("restore", i))
            if SIGNING.search(run):
                order.append(("sign", i))
            if "pds_ci.py check-pushes" in run:
                order.append(("check", i))
            if PUBLISHING.search(run):
                order.append(("publish", i))
        first = {kind: min((i for k, i in order if k == kind), default=None) for kind in
                 ("restore", "sign", "check", "publish")}
        last_sign = max((i for k, i in order if k == "sign"), default=None)
        if first["sign"] is not None and (first["restore"] is None or first["restore"] > first["sign"]):
            problems.append(f"{name}: signs before pds_ci.py restore-log")
        signs_epoch = re.search(r"\bpds pv (epoch|seal)\b", text)
        if signs_epoch and (first["check"] is None or first["check"] < last_sign):
            problems.append(f"{name}: no pds_ci.py check-pushes after the epoch")
        if first["publish"] is not None and signs_epoch and (first["check"] is None or first["check"] > first["publish"]):
            problems.append(f"{name}: publishes before pds_ci.py check-pushes")
        if signs_epoch:
            saves = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save")]
            if not saves or not all("always()" in str(s.get("if", "")) for s in saves):
                problems.append(f"{name}: the cache is not saved after a failure")
        wrote_keys = any("keys/" in r for r in runs)
        if wrote_keys and not any("rm -rf keys" in s.get("run", "") and "always()" in str(s.get("if", ""))
                                  for s in steps):
            problems.append(f"{name}: keys are not removed at the end")
        if "pds pv run-one" in text and any(k in yaml.safe_dump(job) for k in KEYS):
            problems.append(f"{name}: a job that runs verifiers on untrusted sources gets a PV key")
    return problems


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows_keep_the_safety_properties(path):
    assert github_problems(load(path)) == []


def _runs(job):
    return [s for s in job["steps"] if "run" in s]


def test_github_checks_catch_broken_variants():
    base = load(GH_SINGLE)

    def broken(mutate):
        doc = copy.deepcopy(base)
        mutate(doc)
        return github_problems(doc)

    def drop_step(job, needle):
        return lambda d: d["jobs"][job]["steps"].remove(next(s for s in d["jobs"][job]["steps"]
                                                               if needle in s.get("run", "")))

    assert "an epoch in progress could be cancelled" in broken(lambda d: d["concurrency"].update({"cancel-in-progress": True}))
    assert "no concurrency group" in broken(lambda d: d.pop("concurrency"))
    assert "pull_request trigger on a workflow that holds the signing key" in broken(
        lambda d: triggers(d).update({"pull_request": {}}))
    assert "epoch: signs before pds_ci.py restore-log" in broken(drop_step("epoch", "restore-log"))
    assert "epoch: no pds_ci.py check-pushes after the epoch" in broken(drop_step("epoch", "check-pushes"))
    assert "epoch: verifies outside a Debian container" in broken(lambda d: d["jobs"]["epoch"].pop("container"))
    assert "run steps without pipefail (defaults.run.shell is not bash)" in broken(lambda d: d.pop("defaults"))

    def tee(d):
        step = next(s for s in _runs(d["jobs"]["epoch"]) if "pds pv epoch" in s["run"])
        step["run"] = "pds pv epoch --config pv.yaml --json | tee epoch.json"
    assert "epoch: pipes a pds command (its failure could go unnoticed)" in broken(tee)

    def init_fallback(d):
        step = next(s for s in _runs(d["jobs"]["epoch"]) if "restore-log" in s["run"])
        step["run"] = "git clone --bare $URL log.git || git init --bare log.git"
    assert "epoch: creates a git repository (CI must never start a log)" in broken(init_fallback)

    def save_on_success_only(d):
        next(s for s in d["jobs"]["epoch"]["steps"] if str(s.get("uses", "")).startswith("actions/cache/save")).pop("if")
    assert "epoch: the cache is not saved after a failure" in broken(save_on_success_only)

    def keys_kept(d):
        d["jobs"]["epoch"]["steps"] = [s for s in d["jobs"]["epoch"]["steps"] if "rm -rf keys" not in s.get("run", "")]
    assert "epoch: keys are not removed at the end" in broken(keys_kept)

    def publish_first(d):
        steps = d["jobs"]["epoch"]["steps"]
        pub = next(s for s in steps if "pds pv publish" in s.get("run", ""))
        steps.remove(pub)
        steps.insert(next(i for i, s in enumerate(steps) if "check-pushes" in s.get("run", "")), pub)
    assert "epoch: publishes before pds_ci.py check-pushes" in broken(publish_first)

    fan = load(GH_FANOUT)
    fan["jobs"]["run-one"]["steps"][0]["env"] = {"PDS_SSH_KEY": "${{ secrets.PDS_SSH_KEY }}"}
    assert "run-one: a job that runs verifiers on untrusted sources gets a PV key" in github_problems(fan)


def artifacts(job: dict, action: str) -> list[dict]:
    return [s.get("with", {}) for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"actions/{action}")]


def needs_of(job: dict) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def github_fanout_problems(doc: dict) -> list[str]:
    problems = []
    jobs = doc["jobs"]
    for name in ("plan", "run-one", "seal"):
        if name not in jobs:
            return [f"no {name} job"]
    plan, run_one, seal = jobs["plan"], jobs["run-one"], jobs["seal"]
    if needs_of(run_one) != ["plan"]:
        problems.append("run-one does not need plan")
    if not {"plan", "run-one"} <= set(needs_of(seal)):
        problems.append("seal does not need plan and run-one")
    # the matrix comes from the plan's output, which comes from a step running github-matrix
    matrix = str(run_one.get("strategy", {}).get("matrix", {}))
    m = re.search(r"fromJSON\(needs\.plan\.outputs\.([\w-]+)\)", matrix)
    if not m:
        problems.append("the run-one matrix is not built from the plan's output")
    else:
        expr = str(plan.get("outputs", {}).get(m.group(1), ""))
        s = re.search(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        step = next((st for st in plan["steps"] if s and st.get("id") == s.group(1)), None)
        if step is None or "pds pv plan" not in step.get("run", "") or "github-matrix" not in step.get("run", ""):
            problems.append(f"plan output {m.group(1)!r} does not come from the plan + github-matrix step")
        elif s.group(2) != "batches":
            problems.append("the matrix is not fed the batches")
    count = re.search(r"needs\.plan\.outputs\.([\w-]+)", str(run_one.get("if", "")))
    if not count or count.group(1) not in plan.get("outputs", {}):
        problems.append("run-one is not skipped on an empty plan")
    seal_if = str(seal.get("if", ""))
    if "needs.run-one.result == 'skipped'" not in seal_if or "!cancelled()" not in seal_if:
        problems.append("seal does not run after an empty plan (skipped run-one)")
    # every downloaded artifact is uploaded by a job this job needs
    for name, job in jobs.items():
        uploads = [(up.get("name"), up.get("path"), src) for src in needs_of(job)
                   for up in artifacts(jobs.get(src, {}), "upload-artifact")]
        for down in artifacts(job, "download-artifact"):
            wanted = down.get("name") or down.get("pattern")
            if not any(fnmatch.fnmatch(str(u), wanted) for u, _, _ in uploads):
                problems.append(f"{name} downloads artifact {wanted!r} that no needed job uploads")
    # the files: plan.json made and uploaded by plan, used by run-one and seal; results/<id>.json
    # written by run-one under the uploaded path, merged by seal into the directory it seals from
    plan_run = "\n".join(s.get("run", "") for s in plan["steps"])
    out = re.search(r"pds pv plan .*--out (\S+)", plan_run)
    plan_file = out.group(1) if out else None
    if plan_file not in [u.get("path") for u in artifacts(plan, "upload-artifact")]:
        problems.append("plan does not upload the plan file it wrote")
    one_run = "\n".join(s.get("run", "") for s in run_one["steps"])
    seal_run = "\n".join(s.get("run", "") for s in seal["steps"])
    for who, text in (("run-one", one_run), ("seal", seal_run)):
        if f"--plan {plan_file}" not in text:
            problems.append(f"{who} does not read {plan_file}")
    one_out = re.search(r"pds pv run-one .*--out \"?([\w./-]+)/", one_run)
    one_up = [str(u.get("path", "")).rstrip("/") for u in artifacts(run_one, "upload-artifact")]
    if not one_out or one_out.group(1) not in one_up:
        problems.append("run-one does not upload the directory it writes results to")
    seal_results = re.search(r"pds pv seal .*--results (\S+)", seal_run)
    merged = [d.get("path") for d in artifacts(seal, "download-artifact") if d.get("pattern")]
    if not seal_results or seal_results.group(1) not in merged:
        problems.append("seal does not seal the directory the results are downloaded to")
    if "tar -cf" in plan_run and "tar -xf" not in seal_run:
        problems.append("seal does not continue from the plan's state")
    return problems


def test_github_fanout_wiring():
    assert github_fanout_problems(load(GH_FANOUT)) == []


def test_github_fanout_check_catches_broken_wiring():
    base = load(GH_FANOUT)

    def broken(mutate):
        doc = copy.deepcopy(base)
        mutate(doc)
        return github_fanout_problems(doc)

    def rename_upload(d):
        next(s for s in d["jobs"]["run-one"]["steps"] if "upload-artifact" in str(s.get("uses")))["with"]["name"] = "out-x"
    assert "seal downloads artifact 'result-*' that no needed job uploads" in broken(rename_upload)
    assert "seal does not need plan and run-one" in broken(lambda d: d["jobs"]["seal"].update({"needs": ["plan"]}))

    def other_results_dir(d):
        step = next(s for s in d["jobs"]["seal"]["steps"] if "pds pv seal" in s.get("run", ""))
        step["run"] = step["run"].replace("--results results", "--results out")
    assert "seal does not seal the directory the results are downloaded to" in broken(other_results_dir)

    def matrix_from_elsewhere(d):
        d["jobs"]["run-one"]["strategy"]["matrix"]["batch"] = ["a", "b"]
    assert "the run-one matrix is not built from the plan's output" in broken(matrix_from_elsewhere)

    def plan_file_renamed(d):
        step = next(s for s in d["jobs"]["plan"]["steps"] if "pds pv plan" in s.get("run", ""))
        step["run"] = step["run"].replace("--out plan.json", "--out work.json")
    assert "plan does not upload the plan file it wrote" in broken(plan_file_renamed)
    assert "seal does not run after an empty plan (skipped run-one)" in broken(
        lambda d: d["jobs"]["seal"].pop("if"))


# ---------------------------------------------------------------------- GitLab
def script_of(job: dict, key: str = "script") -> list[str]:
    out = []

    def flatten(x):
        if isinstance(x, list):
            for y in x:
                flatten(y)
        elif x is not None:
            out.append(str(x))
    flatten(job.get(key))
    return out


def gitlab_jobs(doc: dict) -> dict[str, dict]:
    reserved = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache",
                "before_script", "after_script"}
    return {k: v for k, v in doc.items() if isinstance(v, dict) and k not in reserved and not k.startswith(".")}


def gitlab_problems(doc: dict, *, child_locked: bool = False) -> list[str]:
    """child_locked: the file runs as a child pipeline whose trigger job holds pds-epoch."""
    problems = []
    if not child_locked:
        rules = (doc.get("workflow") or {}).get("rules") or []
        sources = set(re.findall(r'\$CI_PIPELINE_SOURCE == "(\w+)"', str(rules)))
        if not {"schedule", "trigger"} <= sources:
            problems.append("no schedule and trigger pipelines")
        if sources - {"schedule", "trigger", "api", "web"} or any("if" not in r for r in rules) or not rules:
            problems.append("pipelines from pushes or merge requests could run with the keys")
    for name, job in gitlab_jobs(doc).items():
        script = script_of(job)
        text = "\n".join(script)
        image = str(job.get("image") or (doc.get("default") or {}).get("image", ""))
        if VERIFYING.search(text) and not image.startswith("debian:"):
            problems.append(f"{name}: verifies outside Debian")
        if re.search(r"\bgit init\b", text):
            problems.append(f"{name}: creates a git repository (CI must never start a log)")
        if re.search(r"\bpds\b[^\n|]*\|", text):
            problems.append(f"{name}: pipes a pds command (its failure could go unnoticed)")
        signs = SIGNING.search(text)
        locked = job.get("resource_group") == "pds-epoch"
        if signs and not (locked or child_locked):
            problems.append(f"{name}: runs an epoch without resource_group pds-epoch")
        if child_locked and locked:
            problems.append(f"{name}: takes pds-epoch inside a child pipeline whose parent holds it (deadlock)")
        if "trigger" in job and locked and (job["trigger"] or {}).get("strategy") != "depend":
            problems.append(f"{name}: the lock is released before the child pipeline ends (no strategy: depend)")
        index = {kind: [i for i, line in enumerate(script) if pat(line)] for kind, pat in (
            ("restore", lambda ln: "pds_ci.py restore-log" in ln), ("sign", lambda ln: bool(SIGNING.search(ln))),
            ("check", lambda ln: "pds_ci.py check-pushes" in ln), ("publish", lambda ln: bool(PUBLISHING.search(ln))))}
        if index["sign"] and (not index["restore"] or index["restore"][0] > index["sign"][0]):
            problems.append(f"{name}: signs before pds_ci.py restore-log")
        commits = re.search(r"\bpds pv (epoch|seal)\b", text)
        if commits and (not index["check"] or index["check"][0] < index["sign"][-1]):
            problems.append(f"{name}: no pds_ci.py check-pushes after the epoch")
        if commits and index["publish"] and (not index["check"] or index["check"][0] > index["publish"][0]):
            problems.append(f"{name}: publishes before pds_ci.py check-pushes")
        if commits and (job.get("cache") or {}).get("when") != "always":
            problems.append(f"{name}: the cache is not saved after a failure")
        if "pds pv run-one" in text and (any(k in text for k in KEYS) or job.get("environment")):
            problems.append(f"{name}: a job that runs verifiers on untrusted sources gets the PV keys")
        if "keys/" in text and "rm -rf keys" not in "\n".join(script_of(job, "after_script")):
            problems.append(f"{name}: keys are not removed at the end")
    return problems


@pytest.mark.parametrize("path,child", [(GL_SINGLE, False), (GL_FANOUT, False), (GL_CHILD, True)],
                         ids=lambda p: getattr(p, "name", str(p)))
def test_gitlab_pipelines_keep_the_safety_properties(path, child):
    assert gitlab_problems(load(path), child_locked=child) == []


def test_gitlab_fanout_child_runs_under_the_parents_lock():
    parent = load(GL_FANOUT)
    trigger = parent["epoch"]
    assert trigger["resource_group"] == "pds-epoch" and trigger["trigger"]["strategy"] == "depend"
    assert trigger["trigger"]["include"] == str(GL_CHILD.relative_to(ROOT))
    assert parent["pages"]["resource_group"] == "pds-epoch" and parent["pages"]["needs"] == ["epoch"]


def test_gitlab_checks_catch_broken_variants():
    single = load(GL_SINGLE)

    def broken(doc, mutate, **kw):
        doc = copy.deepcopy(doc)
        mutate(doc)
        return gitlab_problems(doc, **kw)

    assert "pages: runs an epoch without resource_group pds-epoch" in broken(single, lambda d: d["pages"].pop("resource_group"))
    assert "pipelines from pushes or merge requests could run with the keys" in broken(
        single, lambda d: d["workflow"]["rules"].append({"if": '$CI_PIPELINE_SOURCE == "push"'}))
    assert "pipelines from pushes or merge requests could run with the keys" in broken(single, lambda d: d.pop("workflow"))
    assert "pages: the cache is not saved after a failure" in broken(single, lambda d: d["pages"]["cache"].pop("when"))
    assert "pages: signs before pds_ci.py restore-log" in broken(
        single, lambda d: d["pages"]["script"].remove("python3 ci/pds_ci.py restore-log --config pv.yaml"))
    assert "pages: publishes before pds_ci.py check-pushes" in broken(
        single, lambda d: d["pages"]["script"].insert(3, "pds pv publish --config pv.yaml --out public"))
    child = load(GL_CHILD)
    assert "seal: takes pds-epoch inside a child pipeline whose parent holds it (deadlock)" in broken(
        child, lambda d: d["seal"].update({"resource_group": "pds-epoch"}), child_locked=True)
    assert "run-one: a job that runs verifiers on untrusted sources gets the PV keys" in broken(
        child, lambda d: d["run-one"].update({"environment": {"name": "pds-signing"}}), child_locked=True)
    parent = load(GL_FANOUT)
    assert "epoch: the lock is released before the child pipeline ends (no strategy: depend)" in broken(
        parent, lambda d: d["epoch"]["trigger"].pop("strategy"))


def gitlab_fanout_problems(child: dict) -> list[str]:
    problems = []
    jobs = gitlab_jobs(child)
    plan, run_one, seal = jobs.get("plan"), jobs.get("run-one"), jobs.get("seal")
    if not (plan and run_one and seal):
        return ["plan, run-one and seal are not all there"]
    stages = child.get("stages", [])
    if [plan.get("stage"), run_one.get("stage"), seal.get("stage")] != ["plan", "verify", "seal"] or \
            stages[:3] != ["plan", "verify", "seal"]:
        problems.append("stages are not plan -> verify -> seal")
    if run_one.get("needs") != ["plan"]:
        problems.append("run-one does not need plan")
    if set(seal.get("needs") or []) != {"plan", "run-one"}:
        problems.append("seal does not need plan and run-one")
    if not isinstance(run_one.get("parallel"), int) or not 1 <= run_one["parallel"] <= 200:
        problems.append("run-one is not a parallel job")
    plan_text, one_text, seal_text = ("\n".join(script_of(j)) for j in (plan, run_one, seal))
    plan_out = re.search(r"pds pv plan .*--out (\S+)", plan_text)
    plan_paths = (plan.get("artifacts") or {}).get("paths") or []
    if not plan_out or plan_out.group(1) not in plan_paths:
        problems.append("plan does not keep the plan file it wrote")
    elif f"--plan {plan_out.group(1)}" not in one_text or f"--plan {plan_out.group(1)}" not in seal_text:
        problems.append("run-one or seal does not read the plan file")
    if "--index \"$CI_NODE_INDEX\" --total \"$CI_NODE_TOTAL\"" not in one_text:
        problems.append("run-one jobs do not take their share of the plan")
    one_out = re.search(r"pds pv run-one .*--out \"?([\w.-]+)/", one_text)
    one_paths = [p.rstrip("/") for p in (run_one.get("artifacts") or {}).get("paths") or []]
    seal_results = re.search(r"pds pv seal .*--results (\S+)", seal_text)
    if not one_out or one_out.group(1) not in one_paths:
        problems.append("run-one does not keep the results it writes")
    elif not seal_results or seal_results.group(1) != one_out.group(1):
        problems.append("seal does not seal the results run-one wrote")
    tar = re.search(r"tar -cf (\S+)", plan_text)
    if not tar or tar.group(1) not in plan_paths or f"tar -xf {tar.group(1)}" not in seal_text:
        problems.append("seal does not continue from the plan's log and state")
    return problems


def test_gitlab_fanout_wiring():
    assert gitlab_fanout_problems(load(GL_CHILD)) == []


def test_gitlab_fanout_check_catches_broken_wiring():
    base = load(GL_CHILD)

    def broken(mutate):
        doc = copy.deepcopy(base)
        mutate(doc)
        return gitlab_fanout_problems(doc)

    assert "seal does not need plan and run-one" in broken(lambda d: d["seal"].update({"needs": ["plan"]}))
    assert "run-one does not keep the results it writes" in broken(lambda d: d["run-one"]["artifacts"].update({"paths": ["out/"]}))
    assert "plan does not keep the plan file it wrote" in broken(lambda d: d["plan"]["artifacts"]["paths"].remove("plan.json"))

    def seal_elsewhere(d):
        d["seal"]["script"] = [s.replace("--results results", "--results res") if isinstance(s, str) else s
                               for s in d["seal"]["script"]]
    assert "seal does not seal the results run-one wrote" in broken(seal_elsewhere)


# ---------------------------------------------------------------------- shell steps
def shell_steps() -> list[tuple[str, str]]:
    out = []
    for path in GITHUB:
        for job_name, job in load(path)["jobs"].items():
            for step in job.get("steps", []):
                if "run" in step:
                    script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
                    out.append((f"{path.name}:{job_name}:{step.get('name', step['run'][:30])}", script))
    for path in GITLAB:
        for job_name, job in gitlab_jobs(load(path)).items():
            for key in ("script", "after_script"):
                lines = script_of(job, key)
                if lines:
                    out.append((f"{path.name}:{job_name}:{key}", "\n".join(lines)))
    return out


def test_shell_steps_pass_shellcheck(tmp_path):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed here (apt-get install shellcheck); only this check is skipped")
    failures = []
    for i, (where, script) in enumerate(shell_steps()):
        f = tmp_path / f"s{i}.sh"
        f.write_text("#!/bin/bash\n" + script + "\n")
        result = subprocess.run([shellcheck, "-s", "bash", "-S", "warning", str(f)], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"{where}:\n{result.stdout}")
    assert not failures, "\n".join(failures)


def test_shellcheck_catches_a_broken_step(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed here")
    f = tmp_path / "bad.sh"
    f.write_text("#!/bin/bash\nfor id in $(cat items); do rm -rf $id/; done\ncd $dir\n")
    assert subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", str(f)], capture_output=True).returncode != 0


# ---------------------------------------------------------------------- systemd, cron
UNITS = ["pds-epoch.service", "pds-epoch.timer", "pds-epoch.path", "pds-epoch-hook.socket", "pds-epoch-hook@.service"]


def analyze():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (only the systemd checks are skipped)")
    return tool


def units_in(tmp_path, mutate=None):
    pds = shutil.which("pds") or "/bin/true"  # verify wants existing executables
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace("/usr/local/bin/pds", pds)
        (tmp_path / name).write_text(mutate(name, text) if mutate else text)
    return [tmp_path / n for n in UNITS]


def test_systemd_units_verify(tmp_path):
    tool = analyze()
    result = subprocess.run([tool, "verify", *map(str, units_in(tmp_path))], capture_output=True, text=True)
    relevant = [ln for ln in (result.stdout + result.stderr).splitlines() if "pds-epoch" in ln]
    assert result.returncode == 0 and not relevant, relevant


def test_systemd_verify_catches_a_broken_unit(tmp_path):
    tool = analyze()
    paths = units_in(tmp_path, lambda name, text: text.replace("Type=oneshot", "Type=oneshoot"))
    result = subprocess.run([tool, "verify", str(paths[0])], capture_output=True, text=True)
    assert "pds-epoch" in result.stdout + result.stderr


def exposure(tool, path) -> float:
    result = subprocess.run([tool, "security", "--offline=true", str(path)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    if m is None:
        pytest.skip(f"this systemd-analyze has no offline security scoring: {result.stderr.strip()[:200]}")
    return float(m.group(1))


@pytest.mark.parametrize("unit,limit", [("pds-epoch.service", 2.5), ("pds-epoch-hook@.service", 1.0)])
def test_systemd_services_are_hardened(tmp_path, unit, limit):
    tool = analyze()
    units_in(tmp_path)
    assert exposure(tool, tmp_path / unit) <= limit
    loose = tmp_path / "loose"
    loose.mkdir()
    units_in(loose, lambda name, text: "\n".join(ln for ln in text.splitlines()
                                                 if not re.match(r"(Protect|Private|Restrict|SystemCall)", ln)))
    assert exposure(tool, loose / unit) > limit  # the check can fail


def unit_settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_epoch_unit_settings():
    s = unit_settings("pds-epoch.service")
    assert s["Type"] == ["oneshot"] and s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert "/srv/pds/pv1" in s["ReadWritePaths"][0].split()
    assert "pds pv epoch --config /srv/pds/pv1/pv.yaml" in s["ExecStart"][0]
    assert "pds pv publish" in s["ExecStartPost"][0]
    # the verifier sandbox (bwrap --unshare-all) needs these namespaces and mount(2), nothing else
    assert set(s["RestrictNamespaces"][0].split()) == {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}
    assert s["SystemCallFilter"] == ["@system-service", "@mount"]
    path = unit_settings("pds-epoch.path")
    hook = unit_settings("pds-epoch-hook@.service")
    trigger = path["PathChanged"][0]
    assert f"> {trigger}" in hook["ExecStart"][0] and path["Unit"] == ["pds-epoch.service"]
    assert unit_settings("pds-epoch-hook.socket")["ListenStream"][0].startswith("127.0.0.1:")
    assert unit_settings("pds-epoch.timer")["Unit"] == ["pds-epoch.service"]


def test_webhook_command_answers_and_writes_the_trigger(tmp_path):
    """Run the hook's ExecStart as systemd would (C escapes, %% -> %) on a real request."""
    line = unit_settings("pds-epoch-hook@.service")["ExecStart"][0]
    m = re.fullmatch(r"/bin/sh -c '(.*)'", line)
    assert m, line
    script = m.group(1).replace("%%", "%").replace("\\r", "\r").replace("\\n", "\n")
    trigger = tmp_path / "trigger"
    script = script.replace("/srv/pds/pv1/state/trigger", str(trigger))
    request = b"POST / HTTP/1.1\r\nHost: pv1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    result = subprocess.run(["/bin/sh", "-c", script], input=request, capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 202 Accepted\r\n") and result.stdout.endswith(b"\r\n\r\n")
    assert trigger.read_text().strip().isdigit()


def test_cron_entry():
    lines = [ln for ln in (CI / "cron" / "pds-epoch.cron").read_text().splitlines() if ln and ln[0] in "*0123456789"]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert fields[5] == "pds"  # /etc/cron.d format: the user field
    command = fields[6]
    assert command.startswith("flock -n ")
    assert re.search(r"pds pv epoch --config \S+ --json && pds pv publish", command)
