"""Alembic, driven from code: `gridbot init` upgrades to head and is safe to repeat."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent


class _AlembicChatter(logging.Filter):
    """Alembic's start-up lines ("setup plugin ...", "Context impl SQLiteImpl.", "Will assume
    non-transactional DDL.") say nothing to an operator; "Running upgrade a -> b" stays."""

    QUIET = ("setup plugin ", "Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not str(record.msg).startswith(self.QUIET)


for _name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    logging.getLogger(_name).addFilter(_AlembicChatter())


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # imported here: its plugins log as they load, past the filter

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Runs the migrations; call it outside a running event loop (Alembic's env starts its own)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
