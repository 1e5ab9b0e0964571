"""clang -> LLVM bitcode -> llvm2kittel -> T2, for the `t2.yaml` external verifier config.

    python -m verifier_runners.tools.t2_pipeline SOURCE.c

Exit 127 with "tool not found: <name>" when a step's program is missing, so the external
runner reports `error` (never pass)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from pds_log.core.recipe import BuildRecipe


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m verifier_runners.tools.t2_pipeline SOURCE.c", file=sys.stderr)
        return 2
    source = argv[0]
    for program in ("clang", "llvm2kittel", "T2"):
        if shutil.which(program) is None:
            print(f"tool not found: {program}")
            return 127
    recipe = BuildRecipe()
    bitcode, kittel = source + ".bc", source + ".t2"
    steps = [
        [recipe.compiler, *recipe.flags, "-emit-llvm", "-c", source, "-o", bitcode],
        ["llvm2kittel", "--eager-inline", "--t2", bitcode],
    ]
    subprocess.run(steps[0], check=True)
    with open(kittel, "w") as out:
        subprocess.run(steps[1], check=True, stdout=out)
    result = subprocess.run(["T2", "-input_t2", kittel, "-termination"], capture_output=True, text=True)
    print(result.stdout + result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
