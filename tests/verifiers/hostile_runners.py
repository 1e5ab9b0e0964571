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
