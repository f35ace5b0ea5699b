"""What every CLI command shares: settings, the migrated database, the console and error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from brandvoice.bot.settings import Settings
from brandvoice.store.db import make_engine, upgrade

if TYPE_CHECKING:
    from brandvoice.bot.backends import Backends

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")

BAD_INPUT_EXIT = 2


class CliError(Exception):
    """An error to show as one line, with exit code 2 (bad input) unless told otherwise."""

    def __init__(self, message: str, exit_code: int = BAD_INPUT_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


@functools.lru_cache(maxsize=1)
def backends() -> Backends:
    """The process's backends: every command shares its cache of loaded models."""
    from brandvoice.bot.backends import Backends

    return Backends(settings())


@functools.lru_cache(maxsize=1)
def engine() -> Engine:
    """The configured database, migrated to the newest schema on first use."""
    db = make_engine(settings().database_url)
    try:
        upgrade(db)
    except OperationalError as exc:
        raise CliError(f"cannot open the database {settings().database_url}: {exc.orig}") from exc
    return db


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our own errors into one clear line and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except (ValueError, LookupError, FileNotFoundError, PermissionError) as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(BAD_INPUT_EXIT) from None

    return wrapper
