"""SSH signatures on git commits (``git -c gpg.format=ssh commit -S``), checked with sshsig.

git signs the commit object without its ``gpgsig`` header with namespace ``git``; pygit2's
``Commit.gpg_signature`` returns (signature, signed payload). This module verifies the
signature over the payload and returns the OpenSSH public key that made it; whether that key
may write what the commit changes is the policy's business (pds_log.core.policy).
"""

from __future__ import annotations

import sshsig

from .errors import PdsError

SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"


class SignatureProblem(PdsError):
    """Why a commit's signature is unusable (one line)."""


def signer_key(signature: bytes | None, payload: bytes | None) -> str:
    """The `<type> <base64>` public key whose valid signature `signature` is over `payload`.

    Raises SignatureProblem: unsigned, not an SSH signature, wrong namespace or bad signature."""
    if not signature:
        raise SignatureProblem("unsigned commit")
    if not isinstance(signature, bytes) or not isinstance(payload, bytes):
        raise SignatureProblem("signature and payload must be bytes")
    if not signature.lstrip().startswith(SSH_ARMOR):
        raise SignatureProblem("signature is not an SSH signature (gpg.format=ssh required)")
    try:
        key = sshsig.check_signature(payload, signature, namespace="git")
    except sshsig.InvalidSignature as exc:
        raise SignatureProblem(f"invalid SSH signature ({exc or 'does not verify'})") from None
    except (NotImplementedError, ValueError) as exc:
        raise SignatureProblem(f"unsupported SSH signature ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the signature is hostile input to a third-party parser
        raise SignatureProblem(f"malformed SSH signature ({type(exc).__name__})") from None
    parts = key.openssh_str().split()
    return f"{parts[0]} {parts[1]}"
