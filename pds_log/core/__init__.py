"""The pure core of PDS: wire formats and their checks, with no I/O.

Every function here takes bytes / str / plain data and returns the same; nothing reads files,
the network or the clock (callers pass times in). Errors are `pds_log.core.errors.PdsError`
subclasses whose message names the problem and where it was found.
"""
