"""Long-running processes: the web app and the worker (the Procfile's two lines)."""

from __future__ import annotations

import threading

import typer

from brandvoice.bot.cli.context import backends, console, engine, friendly_errors, settings


@friendly_errors
def web_command(
    host: str | None = typer.Option(None, help="Listen address (default: HOST)."),
    port: int | None = typer.Option(None, help="Port (default: PORT)."),
) -> None:
    """Serve Slack events, the REST API and /v1/chat/completions with uvicorn."""
    import uvicorn

    from brandvoice.bot.knowledge import KnowledgeService
    from brandvoice.bot.slack.app import create_slack_app, slack_enabled
    from brandvoice.bot.slack.provider import promoted_model_provider
    from brandvoice.bot.web import create_app, freeze_startup_heap

    config = settings()
    load = backends().load  # the bot and the API share one cache of loaded models
    knowledge = KnowledgeService(config)  # and one retrieval index
    slack_app = (
        create_slack_app(
            config, engine(), promoted_model_provider(engine(), load), knowledge=knowledge
        )
        if slack_enabled(config)
        else None
    )
    if slack_app is None:
        console.print("Slack is not configured (SLACK_BOT_TOKEN): serving the API only")
    app = create_app(
        config, engine(), backend_loader=load, slack_app=slack_app, knowledge=knowledge
    )
    freeze_startup_heap()
    uvicorn.run(app, host=host or config.host, port=port or config.port, log_level="info")


@friendly_errors
def worker_command() -> None:
    """Run scheduled and queued retrains until stopped."""
    from brandvoice.bot.services import make_worker

    worker = make_worker(settings(), engine(), backends=backends())
    console.print(
        f"worker {worker.name} started; schedule {settings().retrain_schedule} ({settings().timezone})"
    )
    stop = threading.Event()
    try:
        worker.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()
