"""Error types of the core. Every message names the problem and the place it was found."""


class PdsError(Exception):
    """Base of every error PDS reports to a user (CLI prints the message, no traceback)."""


class FormatError(PdsError, ValueError):
    """Malformed input: a name, binding, proof, note, manifest or formula that breaks its format."""


class VerificationError(PdsError):
    """Well-formed input that fails a cryptographic or consistency check."""
