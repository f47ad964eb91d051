"""Secrets: generation, hashing and verification. Secrets are shown once and stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """A random, URL-safe secret with a readable prefix (``cbt_`` tokens, ``cbd_`` devices)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret.

    Random secrets of 192 bits need no slow hash; a slow one would cost every ingest request.

    >>> len(hash_secret("cbt_x"))
    64
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with its stored hash.

    >>> verify_secret("a", hash_secret("a")), verify_secret("b", hash_secret("a"))
    (True, False)
    """
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = 200_000) -> str:
    """PBKDF2-SHA256 for human passwords, stored as ``pbkdf2$iterations$salt$hash``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against :func:`hash_password` output.

    >>> verify_password("pw", hash_password("pw", iterations=10))
    True
    """
    try:
        _, iterations, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), bytes.fromhex(salt_hex), int(iterations)
    )
    return hmac.compare_digest(digest.hex(), digest_hex)
