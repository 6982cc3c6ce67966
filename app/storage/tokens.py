"""API tokens (SPEC 5.3): roles, the hashed tokens of ``api_tokens`` and those of ``SCPLN_API_TOKENS``.

Owns the role order, how a token is made (random, shown once), how it is stored (its SHA-256 only,
never the token) and how a presented token is resolved to a role (compared in constant time). The
HTTP edge (``app.api.auth``) decides which role a request needs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select

from app.config import get_settings
from app.storage.db import now_ms
from app.storage.schema import api_tokens

#: Roles from least to most privileged: each role may do everything the ones before it may.
ROLES = ("viewer", "planner", "approver", "admin")
TOKEN_PREFIX = "scpln_"


def role_rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES`; ValueError for an unknown role."""
    try:
        return ROLES.index(role)
    except ValueError:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}") from None


def role_allows(role: str, needed: str) -> bool:
    return role_rank(role) >= role_rank(needed)


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    token_hash: str
    role: str
    label: str | None
    created_at: int | None


#: The shortest token ``SCPLN_API_TOKENS`` accepts (``scpln token create`` makes 43-character ones).
MIN_TOKEN_LENGTH = 16


def parse_env_tokens(value: str | None) -> dict[str, str]:
    """``"<token>:<role>,<token>:<role>"`` as token hash -> role. Blank entries are ignored; a malformed
    entry, an unknown role, a token shorter than ``MIN_TOKEN_LENGTH`` or one listed twice is a ValueError
    naming the entry's position (never the token)."""
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for position, entry in enumerate((value or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        token, sep, role = entry.rpartition(":")
        if not sep or not token.strip():
            raise ValueError(f"SCPLN_API_TOKENS entry {position} must be <token>:<role>")
        role = role.strip().lower()
        if role not in ROLES:
            raise ValueError(
                f"SCPLN_API_TOKENS entry {position}: role must be one of {', '.join(ROLES)}, not {role!r}"
            )
        token = token.strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"SCPLN_API_TOKENS entry {position}: the token is shorter than {MIN_TOKEN_LENGTH} characters "
                "(make one with `scpln token create`)"
            )
        digest = hash_token(token)
        if digest in first:
            raise ValueError(f"SCPLN_API_TOKENS entry {position} repeats the token of entry {first[digest]}")
        first[digest] = position
        out[digest] = role
    return out


def env_tokens() -> dict[str, str]:
    """The tokens of ``SCPLN_API_TOKENS`` in this process's environment, as hash -> role."""
    return parse_env_tokens(get_settings().scpln_api_tokens)


def create_token(engine: Engine, role: str, label: str | None = None) -> str:
    """Make a new random token with ``role``, store only its hash and return the token itself."""
    role_rank(role)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            api_tokens.insert().values(
                token_hash=hash_token(token), role=role, label=label, created_at=now_ms()
            )
        )
    return token


def list_tokens(engine: Engine) -> list[TokenInfo]:
    query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.token_hash)
    with engine.connect() as conn:
        return [TokenInfo(r.token_hash, r.role, r.label, r.created_at) for r in conn.execute(query)]


def revoke_token(engine: Engine, token_hash: str) -> bool:
    """Delete a stored token by its hash; True when one was deleted."""
    with engine.begin() as conn:
        return conn.execute(delete(api_tokens).where(api_tokens.c.token_hash == token_hash)).rowcount > 0


def stored_tokens_exist(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(api_tokens.c.token_hash).limit(1)).first() is not None


def tokens_configured(engine: Engine, env: dict[str, str] | None = None) -> bool:
    """True when any token exists (environment or database): then every request must present one.
    ``env`` is :func:`env_tokens` when the caller has already read it."""
    return bool(env_tokens() if env is None else env) or stored_tokens_exist(engine)


def resolve_role(engine: Engine, token: str, env: dict[str, str] | None = None) -> str | None:
    """The role of a presented token, or None. The hash is compared in constant time against every
    environment token and against the stored row found by it."""
    presented = hash_token(token)
    role = None
    for known, known_role in (env_tokens() if env is None else env).items():
        if hmac.compare_digest(known, presented):
            role = known_role
    if role is not None:
        return role
    with engine.connect() as conn:
        row = conn.execute(
            select(api_tokens.c.token_hash, api_tokens.c.role).where(api_tokens.c.token_hash == presented)
        ).first()
    if row is not None and hmac.compare_digest(row.token_hash, presented):
        return row.role
    return None
