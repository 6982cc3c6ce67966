"""``scpln storage``: show, pin or clear the storage mode of new plans (the operator pin)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.terminal import console, open_store

storage_app = typer.Typer(help="Storage mode of new plans (operator pin).", no_args_is_help=True)


@storage_app.command("mode")
def storage_mode(
    mode: Annotated[str | None, typer.Argument(help="db | files | both: pin new plans to this mode.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the operator pin.")] = False,
) -> None:
    """Show, pin or clear the storage mode of new plans."""
    from app.storage import modes
    from app.storage import settings as st

    store = open_store()
    if clear:
        st.set_storage_pin(store.engine, None)
    elif mode is not None:
        st.set_storage_pin(store.engine, mode)
    pin = st.storage_pin(store.engine)
    console.print(
        f"storage mode: [bold]{st.effective_mode(store.engine)}[/] "
        f"(pin: {pin or 'none'}, default: {modes.default_mode()})"
    )
