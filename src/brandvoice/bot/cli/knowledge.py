"""Knowledge commands: give the bot markdown or text files to take facts from, list, remove them."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brandvoice.bot.cli.context import console, engine, friendly_errors, settings
from brandvoice.bot.cli.progress import progress_bar
from brandvoice.bot.knowledge import add_documents, minilm_embedder, read_documents
from brandvoice.store.db import session_scope
from brandvoice.store.knowledge import list_documents, remove_document

knowledge_app = typer.Typer(
    help="Team knowledge (markdown or text files) the bot retrieves facts from: add, list, remove.",
    no_args_is_help=True,
)

PROGRESS_FROM = 3
"""Files from which ``add`` draws a progress bar."""


@knowledge_app.command("add")
@friendly_errors
def add_command(
    files: Annotated[list[Path], typer.Argument(help="Markdown or text files.")],
) -> None:
    """Chunk, redact and embed files; the same file again changes nothing, a changed one replaces
    its old version. A bad file stops the whole command before anything is stored."""
    config = settings()
    docs = read_documents(files, config)
    db = engine()
    embed = minilm_embedder(config)
    if len(docs) >= PROGRESS_FROM:
        with progress_bar() as bar:
            task = bar.add_task("embedding", total=len(docs), detail="")
            result = add_documents(
                db,
                docs,
                embed,
                getpass.getuser(),
                on_embedded=lambda doc: bar.update(task, advance=1, detail=doc.name),
            )
    else:
        result = add_documents(db, docs, embed, getpass.getuser())
    parts = [
        f"{len(names)} {label}"
        for names, label in (
            (result.added, "added"),
            (result.replaced, "replaced"),
            (result.unchanged, "unchanged"),
        )
        if names
    ]
    redacted = sum(result.redactions.values())
    console.print(
        f"knowledge: {', '.join(parts)}; {result.chunks} chunk(s) written"
        + (f", {redacted} redaction(s)" if redacted else "")
    )


@knowledge_app.command("list")
@friendly_errors
def list_command() -> None:
    """The files the bot knows, with their chunks and tokens."""
    with session_scope(engine()) as session:
        rows = list_documents(session)
    if not rows:
        console.print("no knowledge yet: brandvoice knowledge add FILE...")
        return
    table = Table()
    for column in ("name", "title", "chunks", "tokens", "added by", "added"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.doc.name,
            row.doc.title,
            str(row.chunks),
            str(row.tokens),
            row.doc.added_by or "",
            row.doc.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@knowledge_app.command("remove")
@friendly_errors
def remove_command(
    name: Annotated[str, typer.Argument(help="The file name, as `knowledge list` shows it.")],
) -> None:
    """Stop retrieving a file (snapshots that saw it still name its chunks)."""
    with session_scope(engine()) as session:
        doc = remove_document(session, name)
    console.print(f"removed {doc.name} ({doc.title})")
