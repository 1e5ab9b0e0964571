"""Auditors and monitors: recompute a PV log, check what PVs serve against what developers
pushed, detect equivocation."""
