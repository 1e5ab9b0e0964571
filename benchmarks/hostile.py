"""Benchmark: the in-process bytecode passes on hostile objects grow linearly.

    python benchmarks/hostile.py [--sizes 4000,8000,16000,32000,130000] [--before COMMIT]

For objects of N conditional self-jumps (one back edge each; the measured attack was a 1 MiB
object of 131k of them), times load (ELF + decode + relocations), CFG and the register
dataflow, and prints microseconds per instruction: flat means linear. With --before, the same
passes of an earlier verifier_runners/ebpf.py (read from git) are timed side by side on the
sizes it can finish (it was quadratic; its times are skipped past --before-max instructions).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.hostile_objects import self_jumps  # noqa: E402
from verifier_runners import ebpf  # noqa: E402


def timed_passes(module, data: bytes) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    obj = module.load_object(data)
    t1 = time.perf_counter()
    section = obj.sections[0]
    insns = module.function_ranges(section)[0][1]
    cfg = module.build_cfg(insns, insns[0].index)
    t2 = time.perf_counter()
    module.constant_registers(insns, cfg)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def load_old(commit: str):
    source = subprocess.run(["git", "-C", str(HERE.parent), "show", f"{commit}:verifier_runners/ebpf.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "ebpf_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("ebpf_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ebpf_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="4000,8000,16000,32000,130000")
    parser.add_argument("--before", default=None, help="a commit whose ebpf.py to time beside this one")
    parser.add_argument("--before-max", type=int, default=16000)
    args = parser.parse_args()
    old = load_old(args.before) if args.before else None
    print(f"{'insns':>7} {'load s':>8} {'cfg s':>8} {'dataflow s':>10} {'us/insn':>8}"
          + (f" | {'before: load':>12} {'cfg':>8} {'dataflow':>9} {'us/insn':>8}" if old else ""))
    for n in (int(x) for x in args.sizes.split(",")):
        data = self_jumps(n)
        new = timed_passes(ebpf, data)
        line = f"{n:>7} {new[0]:>8.3f} {new[1]:>8.3f} {new[2]:>10.3f} {sum(new) / n * 1e6:>8.1f}"
        if old:
            if n <= args.before_max:
                before = timed_passes(old, data)
                line += f" | {before[0]:>12.3f} {before[1]:>8.3f} {before[2]:>9.3f} {sum(before) / n * 1e6:>8.1f}"
            else:
                line += " | (skipped: quadratic)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
