"""clang -> LLVM bitcode -> llvm2kittel -> T2, for the `t2.yaml` external verifier config.

    python3 t2_pipeline.py SOURCE.c

Runs inside the verifier sandbox with the system Python, so it imports nothing of PDS: the
compile flags below are the default recipe's (tests/verifiers checks that they stay equal).
Exit 127 with "tool not found: <name>" when a step's program is missing, so the external
runner reports `error` (never pass)."""

from __future__ import annotations

import shutil
import subprocess
import sys

COMPILER = "clang"
RECIPE_FLAGS = ("-I", ".", "-O2", "-fno-gnu-inline-asm", "-emit-llvm")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 t2_pipeline.py SOURCE.c", file=sys.stderr)
        return 2
    source = argv[0]
    for program in ("clang", "llvm2kittel", "T2"):
        if shutil.which(program) is None:
            print(f"tool not found: {program}")
            return 127
    bitcode, kittel = source + ".bc", source + ".t2"
    steps = [
        [COMPILER, *RECIPE_FLAGS, "-emit-llvm", "-c", source, "-o", bitcode],
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
