"""The program a verifier worker process runs (`python -I <this file> <read fd> <write fd> <parent pid>`).

Started by verifier_runners.worker.WorkerPool, never by hand. It is a file run by path rather
than a module run with `-m` so that it needs nothing from the environment: in isolated mode
(`-I`) it reads the parent's `sys.path` from the first message, then imports the verifiers.
The parent's main script is never re-run here (multiprocessing's spawn and forkserver would
import it in every child).
"""

import os
import pickle
import sys


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def main() -> None:
    rfd, wfd, parent = (int(a) for a in sys.argv[1:4])
    size = int.from_bytes(_read_exact(rfd, 8), "big")
    init = pickle.loads(_read_exact(rfd, size))  # from the parent (the PV), which is trusted
    sys.path[:] = init["sys_path"]
    from verifier_runners.worker import serve

    serve(rfd, wfd, parent, init)


if __name__ == "__main__":
    try:
        main()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):  # the parent went away
        os._exit(0)
