"""``brandvoice demo``: the whole loop on the embedded defaults, for a first run on a fresh machine.

Import the sample brand and its knowledge files, train a LoRA adapter on CPU, evaluate it against
the base model, register it and show the report; then expand a few examples with the local model
(the new version writing the replies) and show one answer grounded in the knowledge, with its
sources. The step budget keeps the whole demo within about fifteen minutes on two CPU cores.
"""

from __future__ import annotations

from typing import Annotated

import typer

from brandvoice.bot.cli.context import console, engine, friendly_errors, settings
from brandvoice.bot.cli.data import import_file, print_report, stats_command
from brandvoice.bot.cli.knowledge import add_command
from brandvoice.bot.cli.models import chat_command, execute_run, print_run_outcome
from brandvoice.bot.runs import TrainRequest, enqueue_request
from brandvoice.samples import (
    sample_examples_path,
    sample_guidelines_path,
    sample_knowledge_paths,
)
from brandvoice.store.db import session_scope

GROUNDED_QUESTION = "A customer asks: is the Ridgeline 40 pack waterproof? Draft a reply."
"""The question the issue found the demo's model answering wrong from memory."""


@friendly_errors
def demo_command(
    max_steps: Annotated[
        int, typer.Option(min=1, help="Training steps (the demo's time budget).")
    ] = 60,
    generate_parents: Annotated[
        int, typer.Option(min=0, help="Examples to expand synthetically.")
    ] = 3,
) -> None:
    """Run the whole loop on the sample brand: import, train, evaluate, register, generate."""
    from brandvoice.bot.cli.generate import generate_command, guidelines_set

    config = settings()
    console.rule("brandvoice demo: the sample brand Pebble & Pine")
    console.print(f"database {config.database_url}, artifacts {config.artifacts_dir}")
    engine()
    result = import_file(sample_examples_path(), skip_invalid=False, actor="demo")
    print_report(result.report)
    console.print(f"imported {result.inserted} example(s), {result.duplicates} already there")
    guidelines_set(sample_guidelines_path(), actor="demo")
    add_command(sample_knowledge_paths())
    stats_command()

    console.rule("1/3 train a LoRA adapter, 2/3 evaluate it against production")
    with session_scope(engine()) as session:
        request = TrainRequest(force=True, backend="local", max_steps=max_steps, generate=False)
        run = enqueue_request(session, "demo", request, default_backend="local")
    assert run.id is not None
    finished = execute_run(run.id)
    print_run_outcome(finished)
    version = finished.metrics.get("version", "v1")
    if generate_parents:
        console.rule(f"3/3 synthetic variations: new requests, replies written by {version}")
        generate_command(per_example=1, strategy=None, dry_run=False, max_parents=generate_parents)
    console.rule(f"a grounded answer from {version}, with its sources")
    console.print(f"[bold]{GROUNDED_QUESTION}[/bold]")
    chat_command(GROUNDED_QUESTION, version=version, max_tokens=120)
    console.rule("next")
    console.print(
        f"promote it:        brandvoice models promote {version}\n"
        f'ask it:            brandvoice chat "Draft a reply to a customer whose tent pole snapped" --version {version}\n'
        "serve it:          API_TOKEN=... brandvoice web   (then /v1/chat/completions with the openai SDK)\n"
        "connect Slack:     paste slack-manifest.yml at api.slack.com/apps, set SLACK_BOT_TOKEN and\n"
        "                   SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN), then run brandvoice web and brandvoice worker"
    )
