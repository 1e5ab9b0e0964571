"""Plugin Distribution System: a git-backed static transparency log for protocol plugins.

`pds_log.core` is the pure core (no I/O): the prefix tree, proofs, signed notes and STRs,
bindings, manifests, formulas. The role packages (developer, pr, pv, peer, auditor) build on
it and never on each other's internals.
"""

__version__ = "0.1.0"
