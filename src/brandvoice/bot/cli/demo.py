"""``brandvoice demo``: the loop turning twice on the embedded defaults, for a first run on a fresh machine.

Round 1 imports part of the sample brand and its knowledge files, trains v1 on CPU, evaluates it
against the base model and puts it in production. Then v1 writes the replies of a few synthetic
variations, shown beside the examples they came from. Round 2 imports the rest and trains v2 on
everything plus the kept variations, evaluated against v1: the lift of the second turn. Last, v2
answers a question from the knowledge, with its sources.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from brandvoice.bot.cli.context import console, engine, friendly_errors, settings
from brandvoice.bot.cli.data import import_file, print_report, stats_command
from brandvoice.bot.cli.knowledge import add_command
from brandvoice.bot.cli.models import (
    chat_command,
    execute_run,
    print_run_outcome,
    promote_command,
)
from brandvoice.bot.runs import TrainRequest, enqueue_request
from brandvoice.samples import (
    sample_examples_path,
    sample_guidelines_path,
    sample_knowledge_paths,
)
from brandvoice.store.db import session_scope
from brandvoice.trainer.eval_report import EvalReport
from brandvoice.trainer.registry import get_version

GROUNDED_QUESTION = "A customer asks: is the Ridgeline 40 pack waterproof? Draft a reply."
"""The question the issue found the demo's model answering wrong from memory."""
FIRST_ROUND_SHARE = 0.4
"""Share of the sample brand's examples approved before the first retrain."""


@friendly_errors
def demo_command(
    epochs: Annotated[
        int, typer.Option(min=1, help="Passes over each round's training examples.")
    ] = 2,
    max_steps: Annotated[
        int, typer.Option(min=1, help="Most training steps per round (the demo's time budget).")
    ] = 28,
    generate_parents: Annotated[
        int, typer.Option(min=0, help="Examples to expand synthetically between the rounds.")
    ] = 4,
) -> None:
    """Turn the loop twice on the sample brand: train v1, expand with v1, train v2 on more."""
    from brandvoice.bot.cli.generate import generate_command, guidelines_set

    config = settings()
    console.rule("brandvoice demo: the sample brand Pebble & Pine")
    console.print(f"database {config.database_url}, artifacts {config.artifacts_dir}")
    engine()
    lines = sample_examples_path().read_text(encoding="utf-8").splitlines(keepends=True)
    first = round(len(lines) * FIRST_ROUND_SHARE)
    with tempfile.TemporaryDirectory() as tmp:
        parts = [Path(tmp) / "round-1.jsonl", Path(tmp) / "round-2.jsonl"]
        parts[0].write_text("".join(lines[:first]), encoding="utf-8")
        parts[1].write_text("".join(lines[first:]), encoding="utf-8")
        approve(parts[0], f"round 1: {first} of the brand's {len(lines)} examples approved")
        guidelines_set(sample_guidelines_path(), actor="demo")
        add_command(sample_knowledge_paths())
        stats_command()
        v1 = retrain("round 1: train v1, evaluate it against the base model", epochs, max_steps)
        promote_command(v1, actor="demo")
        if generate_parents:
            console.rule(f"synthetic variations: new requests, replies written by {v1}")
            generate_command(max_parents=generate_parents)
        approve(parts[1], f"round 2: the other {len(lines) - first} examples approved")
    v2 = retrain(f"round 2: train v2 on everything, evaluate it against {v1}", epochs, max_steps)
    print_lift(v1, v2)
    console.rule(f"a grounded answer from {v2}, with its sources")
    console.print(f"[bold]{GROUNDED_QUESTION}[/bold]")
    chat_command(GROUNDED_QUESTION, version=v2, max_tokens=120)
    console.rule("next")
    console.print(
        f"promote it:        brandvoice models promote {v2}\n"
        f'ask it:            brandvoice chat "Draft a reply to a customer whose tent pole snapped" --version {v2}\n'
        "serve it:          API_TOKEN=... brandvoice web   (then /v1/chat/completions with the openai SDK)\n"
        "connect Slack:     paste slack-manifest.yml at api.slack.com/apps, set SLACK_BOT_TOKEN and\n"
        "                   SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN), then run brandvoice web and brandvoice worker"
    )


def approve(path: Path, title: str) -> None:
    console.rule(title)
    result = import_file(path, skip_invalid=False, actor="demo")
    print_report(result.report)
    console.print(f"imported {result.inserted} example(s), {result.duplicates} already there")


def retrain(title: str, epochs: int, max_steps: int) -> str:
    """One retrain as the worker runs it (without generation: the demo shows that step itself);
    returns the registered version's name. The budget is in epochs, so round 2, with more than
    twice the examples, gets more steps (trained from scratch on equal steps, v2 saw each example
    half as often as v1 and came out no better), capped for the demo's time: 8 min 14 s in all
    on 2 cores with the model cache warm."""
    console.rule(title)
    with session_scope(engine()) as session:
        request = TrainRequest(force=True, backend="local", epochs=epochs, generate=False)
        run = enqueue_request(session, "demo", request, default_backend="local")
    assert run.id is not None
    finished = execute_run(run.id, step_cap=max_steps)
    print_run_outcome(finished)
    return str(finished.metrics["version"])


def print_lift(v1: str, v2: str) -> None:
    """v2 against v1 on v2's validation split, as its report measured them."""
    with session_scope(engine()) as session:
        report = EvalReport.from_stored(get_version(session, v2).eval)
    if report is None:
        return
    voice = report.voice_similarity
    console.rule(f"the loop's second turn: {v2} over {v1}")
    console.print(
        f"voice similarity {voice.production:.3f} -> {voice.candidate:.3f} "
        f"({voice.candidate - voice.production:+.3f}), {v2} wins "
        f"{report.win_rate.vs_production:.0%} of {report.examples} validation replies against {v1}"
    )
