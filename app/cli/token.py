"""``scpln token``: create, list and revoke API tokens (stored hashed, shown once)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.terminal import err, open_store

token_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer | planner | approver | admin")],
    label: Annotated[str | None, typer.Option(help="What the token is for (stored with it).")] = None,
) -> None:
    """Create an API token with a role; the token is printed once and only its SHA-256 is stored."""
    from app.storage.tokens import create_token

    store = open_store()
    token = create_token(store.engine, role.strip().lower(), label)
    err.print(f"Created a {role} token{f' ({label})' if label else ''}; it is shown only this once:")
    print(token)


@token_app.command("list")
def token_list() -> None:
    """The stored API tokens: the first 12 hex digits of each hash, role, label and creation time."""
    import datetime as dt

    from app.storage.tokens import list_tokens

    found = list_tokens(open_store().engine)
    if not found:
        err.print("no stored tokens (SCPLN_API_TOKENS may still hold some)")
    for t in found:
        created = dt.datetime.fromtimestamp(t.created_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{t.token_hash[:12]}  {t.role:<8}  {created}  {t.label or ''}".rstrip())


@token_app.command("revoke")
def token_revoke(
    which: Annotated[
        str,
        typer.Argument(
            help="The token itself, or the start of its hash as `scpln token list` shows it (8+ hex)."
        ),
    ],
) -> None:
    """Delete a stored token: requests with it get 401 from now on (UI sessions made with it end too)."""
    from app.storage.tokens import hash_token, list_tokens, revoke_token

    engine = open_store().engine
    hashes = [t.token_hash for t in list_tokens(engine)]
    wanted = hash_token(which)
    if wanted not in hashes:
        prefix = which.strip().lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise ValueError(
                f"no stored token matches {which!r} (give the token or 8+ hex digits of its hash)"
            )
        matches = [h for h in hashes if h.startswith(prefix)]
        if len(matches) != 1:
            raise ValueError(f"{len(matches)} stored tokens start with {prefix!r}; give more digits")
        wanted = matches[0]
    revoke_token(engine, wanted)
    err.print(f"revoked token {wanted[:12]}")
