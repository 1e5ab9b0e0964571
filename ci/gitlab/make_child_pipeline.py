"""Turn a `pds pv plan` (plan.json) into a GitLab child pipeline with one run-one job per item.

    python3 make_child_pipeline.py plan.json > child.yml
"""

import json
import sys

SETUP = "apt-get update -qq && apt-get install -y -qq git clang llvm cppcheck python3-pip && pip3 install pds-log"


def main(path: str) -> None:
    plan = json.load(open(path))
    jobs = {}
    for item in plan["items"]:
        jobs[f"run-{item['id']}"] = {
            "image": "debian:bookworm",
            "variables": {"PIP_BREAK_SYSTEM_PACKAGES": "1"},
            "needs": [{"pipeline": "$PARENT_PIPELINE_ID", "job": "plan"}],
            "script": [SETUP, f"pds pv run-one --config pv.yaml --plan plan.json --item {item['id']} "
                              f"--out results/{item['id']}.json"],
            "artifacts": {"paths": ["results/"]},
        }
    if not jobs:
        jobs["nothing-to-verify"] = {"image": "debian:bookworm", "script": ["echo every result is cached"]}
    print(json.dumps(jobs, indent=1))  # JSON is YAML


if __name__ == "__main__":
    main(sys.argv[1])
