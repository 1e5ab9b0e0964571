"""Verifiers that misbehave in-process, to show the worker's limits (importable by the worker)."""

from __future__ import annotations

import verifier_runners as vr


class Hog(vr.Verifier):
    """Allocates until something stops it."""

    runner = "test_hog"
    needs_files = False

    def check(self, plugin, workdir):
        chunks = []
        while True:
            chunks.append(bytearray(64 << 20))


class Spin(vr.Verifier):
    """Never returns."""

    runner = "test_spin"
    needs_files = False

    def check(self, plugin, workdir):
        while True:
            pass


class Quick(vr.Verifier):
    runner = "test_quick"
    needs_files = False

    def check(self, plugin, workdir):
        return self.result(vr.PASS, f"{len(plugin.files)} file(s) seen in a worker")


class KillSelf(vr.Verifier):
    """SIGKILLs its own worker (as the OOM killer would) on plugins whose name ends in `.die`."""

    runner = "test_kill_self"
    needs_files = False

    def check(self, plugin, workdir):
        import os
        import signal

        if plugin.name.endswith(".die"):
            os.kill(os.getpid(), signal.SIGKILL)
        return self.result(vr.PASS, "alive")


class HangOn(vr.Verifier):
    """Never returns on plugins whose name ends in `.hang`."""

    runner = "test_hang_on"
    needs_files = False

    def check(self, plugin, workdir):
        while plugin.name.endswith(".hang"):
            pass
        return self.result(vr.PASS, "returned")


class HogOn(vr.Verifier):
    """Allocates until stopped on plugins whose name ends in `.hog`."""

    runner = "test_hog_on"
    needs_files = False

    def check(self, plugin, workdir):
        chunks = []
        while plugin.name.endswith(".hog"):
            chunks.append(bytearray(64 << 20))
        return self.result(vr.PASS, "small")


class Liar(vr.Verifier):
    """Writes its own message to the parent: a frame claiming 1 GiB, on plugins ending in `.lie`."""

    runner = "test_liar"
    needs_files = False

    def check(self, plugin, workdir):
        import os
        import sys

        if plugin.name.endswith(".lie"):
            os.write(int(sys.argv[2]), (1 << 30).to_bytes(8, "big") + b"{")
        return self.result(vr.PASS, "honest")


class Peek(vr.Verifier):
    """Reports what its worker process can see of its parent: environment names, open fds."""

    runner = "test_peek"
    needs_files = False

    def check(self, plugin, workdir):
        import os

        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        return self.result(vr.PASS, f"env={','.join(sorted(os.environ))} fds={fds}")


class Quitter(vr.Verifier):
    """Says something on stderr and exits its worker with status 3, on plugins ending in `.quit`."""

    runner = "test_quitter"
    needs_files = False

    def check(self, plugin, workdir):
        import sys

        if plugin.name.endswith(".quit"):
            print("giving up on", plugin.name, file=sys.stderr, flush=True)
            raise SystemExit(3)
        return self.result(vr.PASS, "stayed")
