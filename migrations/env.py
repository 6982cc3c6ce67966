"""Alembic environment: runs the revisions on the connection app.db hands over, or on SCPLN_DB.

SQLite gets batch mode (table rebuilds) so that every revision can alter and drop columns there too.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from app.db import database_url, get_engine, normalize_url
from app.storage.schema import metadata

config = context.config
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    configured = config.get_main_option("sqlalchemy.url")
    return normalize_url(configured) if configured else database_url()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    with get_engine(_url()).begin() as conn:
        run_on(conn)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
