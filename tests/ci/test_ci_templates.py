"""The CI templates are valid (check-jsonschema's vendored schemas, systemd-analyze) and keep
the properties that matter: one epoch at a time, never cancelled, plan -> run-one -> seal."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support import ROOT

CI = ROOT / "ci"
GITHUB = sorted((CI / "github").glob("*.yml"))
GITLAB = [CI / "gitlab" / ".gitlab-ci.yml", CI / "gitlab" / "fanout.gitlab-ci.yml"]


def check_schema(schema: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows_validate(path):
    result = check_schema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", GITLAB, ids=lambda p: p.name)
def test_gitlab_pipelines_validate(path):
    result = check_schema("vendor.gitlab-ci", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: 5\n")
    assert check_schema("vendor.github-workflows", broken).returncode != 0
    broken.write_text("job:\n  stage: 3\n  script: {a: 1}\n")
    assert check_schema("vendor.gitlab-ci", broken).returncode != 0


def workflow_problems(doc: dict) -> list[str]:
    problems = []
    concurrency = doc.get("concurrency") or {}
    if not concurrency.get("group"):
        problems.append("no concurrency group")
    if concurrency.get("cancel-in-progress") is not False:
        problems.append("an epoch in progress could be cancelled")
    triggers = doc.get("on") or doc.get(True) or {}
    for needed in ("schedule", "repository_dispatch"):
        if needed not in triggers:
            problems.append(f"no {needed} trigger")
    return problems


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows_serialize_epochs(path):
    assert workflow_problems(yaml.safe_load(path.read_text())) == []


def test_workflow_checks_catch_a_broken_variant():
    doc = yaml.safe_load(GITHUB[0].read_text())
    doc["concurrency"]["cancel-in-progress"] = True
    del doc["concurrency"]["group"]
    assert set(workflow_problems(doc)) == {"no concurrency group", "an epoch in progress could be cancelled"}


def test_github_fanout_wiring():
    doc = yaml.safe_load((CI / "github" / "pv-epoch-fanout.yml").read_text())
    jobs = doc["jobs"]
    assert jobs["run-one"]["needs"] == "plan" and set(jobs["seal"]["needs"]) == {"plan", "run-one"}
    assert "fromJSON(needs.plan.outputs.items)" in jobs["run-one"]["strategy"]["matrix"]["item"]
    steps = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    assert "pds pv plan" in steps
    assert any("pds pv run-one" in s.get("run", "") for s in jobs["run-one"]["steps"])
    assert any("pds pv seal" in s.get("run", "") for s in jobs["seal"]["steps"])
    # only seal gets the SSH key that pushes: run-one jobs sign nothing
    assert "PDS_SSH_KEY" not in json.dumps(jobs["run-one"])


def test_gitlab_jobs_that_commit_use_a_resource_group():
    for path in GITLAB:
        doc = yaml.safe_load(path.read_text())
        for name, job in doc.items():
            if not isinstance(job, dict) or "script" not in job:
                continue
            script = " ".join(map(str, job["script"]))
            if "pds pv epoch" in script or "pds pv seal" in script:
                assert job.get("resource_group") == "pds-epoch", (path.name, name)


def test_gitlab_child_pipeline_generator(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"v": 1, "items": [{"id": "0000", "plugin": "a.b", "verifier": "safety"}]}))
    out = subprocess.run([sys.executable, str(CI / "gitlab" / "make_child_pipeline.py"), str(plan)],
                         capture_output=True, text=True, check=True).stdout
    child = tmp_path / "child.yml"
    child.write_text(out)
    assert "run-0000" in yaml.safe_load(out)
    assert check_schema("vendor.gitlab-ci", child).returncode == 0


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (only this check is skipped)")
    pds = shutil.which("pds")
    for name in ("pds-epoch.service", "pds-epoch.timer"):
        text = (CI / "systemd" / name).read_text().replace("/usr/local/bin/pds", pds)
        (tmp_path / name).write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "pds-epoch.service"), str(tmp_path / "pds-epoch.timer")],
                            capture_output=True, text=True)
    relevant = [ln for ln in (result.stdout + result.stderr).splitlines() if "pds-epoch" in ln]
    assert not relevant, relevant


def test_cron_entry_uses_flock_and_the_epoch_command():
    line = next(ln for ln in (CI / "cron" / "pds-epoch.cron").read_text().splitlines() if ln.startswith("*/"))
    assert "flock -n" in line and "pds pv epoch --config" in line
