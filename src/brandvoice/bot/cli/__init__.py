"""The ``brandvoice`` command line: one typer app, one module per group of commands."""

from __future__ import annotations

from typing import Annotated

import typer

from brandvoice.bot.cli import audit, data, demo, generate, knowledge, models, pairs, serve
from brandvoice.bot.cli.context import console, engine, err_console, friendly_errors, settings
from brandvoice.bot.cli.logs import configure_logging

app = typer.Typer(
    help="brandvoice: teach a model your team's voice from inside Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data.dataset_app, name="dataset")
app.add_typer(data.examples_app, name="examples")
app.command("import")(data.import_command)
app.command("export")(data.export_command)
app.add_typer(pairs.pairs_app, name="pairs")
app.add_typer(knowledge.knowledge_app, name="knowledge")
app.command("demo")(demo.demo_command)
app.add_typer(models.models_app, name="models")
app.add_typer(models.runs_app, name="runs")
app.command("train")(models.train_command)
app.command("eval")(models.eval_command)
app.command("chat")(models.chat_command)
app.command("generate")(generate.generate_command)
app.add_typer(generate.guidelines_app, name="guidelines")
app.command("web")(serve.web_command)
app.command("worker")(serve.worker_command)
app.command("audit")(audit.audit_command)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show library logs, warnings and progress bars.")
    ] = False,
) -> None:
    configure_logging(verbose, err_console)


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create the database or migrate it to the newest schema."""
    engine()
    console.print(f"database ready: {settings().database_url}")
