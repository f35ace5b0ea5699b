"""``brandvoice demo``: the whole loop on the embedded defaults, for a first run on a fresh machine."""

from __future__ import annotations

from brandvoice.bot.cli.context import console, engine, friendly_errors, settings
from brandvoice.bot.cli.data import import_file, print_report, stats_command
from brandvoice.samples import sample_examples_path


@friendly_errors
def demo_command() -> None:
    """Create the database, import the sample brand and show what the dataset holds."""
    console.rule("brandvoice demo")
    console.print(f"database: {settings().database_url}")
    engine()
    result = import_file(sample_examples_path(), skip_invalid=False, actor="demo")
    print_report(result.report)
    console.print(
        f"sample brand: imported {result.inserted} example(s), {result.duplicates} already there"
    )
    stats_command()
