"""Every setting brandvoice reads from the environment (or ``.env``), in one place.

Nothing else reads ``os.environ``: lower packages receive these values as arguments. Each field's
description is the documentation shown in ``.env.example`` and the README.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from brandvoice.store.redact import Redactor


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Storage
    database_url: str = Field(
        "sqlite:///./data/brandvoice.db",
        description="SQLAlchemy URL. SQLite (default) or postgresql://user@host/db for several processes.",
    )
    artifacts_dir: Path = Field(
        Path("./data/artifacts"),
        description="Snapshots, adapters and reports; a path shared by web and worker.",
    )

    # Models
    base_model: str = Field(
        "smollm2-135m-instruct",
        description="Base model: the packaged SmolLM2-135M-Instruct, a Hugging Face id or a local path.",
    )
    device: str | None = Field(None, description="cpu, cuda or mps; empty picks the best present.")
    system_prompt: str = Field(
        "You are the team's assistant. Answer in the team's voice.",
        description="System prompt the bot answers with and approved replies are stored with.",
    )
    openai_base_url: str | None = Field(
        None,
        description="OpenAI-compatible server for generation and judging (OpenAI, vLLM, Ollama, llama.cpp). Empty: the local base model.",
    )
    openai_api_key: str | None = Field(
        None, description="Key for OPENAI_BASE_URL or api.openai.com."
    )
    generator_model: str = Field(
        "gpt-4o-mini", description="Model name on the OpenAI-compatible server for generation."
    )
    judge_model: str | None = Field(
        None, description="Model name for the pairwise judge; empty: closer-to-reference wins."
    )
    local_synthetic: bool = Field(
        False,
        description="Let retrains add synthetic variations made by the local model (no OPENAI_BASE_URL): few-shot requests, replies by the latest trained version.",
    )
    """Off by measurement. bench/synthetic_lift.py (Pebble & Pine, 20 real examples, 3 seeds,
    the test split, with the claims filter, on 2 AMD EPYC cores): 15 of 60 candidates kept (15
    dropped for unsupported claims), and real + synthetic against real only -0.081, +0.019,
    +0.063 per seed (mean +0.0005). The kept replies still read as invented (places, products,
    numbers that happen to appear somewhere in the knowledge). Generation takes about 2 minutes
    per 60 candidates on 2 threads. ``brandvoice generate`` and an OpenAI-compatible generator
    are not affected."""
    local_candidates: int = Field(
        3, ge=1, description="Sampled candidates per approved example in local generation."
    )
    chat_timeout_s: float = Field(60.0, description="Timeout of one chat request, in seconds.")
    chat_concurrency: int = Field(4, description="Parallel requests to the chat server.")
    max_loaded_models: int = Field(
        8, description="Model versions a process keeps loaded; the least recently used goes first."
    )
    max_adapter_mb: int = Field(
        1024,
        description="Memory for loaded LoRA adapters per process, in MiB; least recently used are freed past it.",
    )

    # Data
    val_share: float = Field(0.2, description="Share of real examples held out for evaluation.")
    max_example_tokens: int = Field(
        16_385, description="Examples over this many tokens are rejected."
    )
    redact: str = Field(
        "all",
        description="Redaction kinds, comma separated (EMAIL,PHONE,CARD_NUMBER,IBAN,SLACK_TOKEN,SLACK_WEBHOOK,GITHUB_TOKEN,STRIPE_KEY,GOOGLE_API_KEY,API_KEY,AWS_ACCESS_KEY,AWS_SECRET_KEY,PRIVATE_KEY,SECRET,PASSWORD,JWT), 'all' or 'none'.",
    )
    redact_allow: str = Field(
        "",
        description="Never redacted, comma separated: the team's own domains (subdomains too) and exact public values, e.g. yourbrand.example,+1 415 555 0100.",
    )
    synthetic_per_example: int = Field(
        3, description="At most this many synthetic examples per real one in a snapshot."
    )

    # Knowledge and retrieval
    knowledge_enabled: bool = Field(
        True,
        description="Retrieve team knowledge (added files and approved examples) into reply prompts.",
    )
    retrieval_top_k: int = Field(
        4, ge=0, description="Knowledge chunks and approved examples retrieved per request."
    )
    retrieval_token_budget: int = Field(
        400, ge=0, description="Most tokens the retrieved knowledge may add to a prompt."
    )

    # Training
    training_backend: Literal["local", "openai", "together"] = Field(
        "local", description="local (LoRA with torch + peft), openai or together (hosted)."
    )
    together_api_key: str | None = Field(None, description="Together AI key for hosted training.")
    price_per_million_tokens: float = Field(
        0.0, description="Hosted training price per 1M billed tokens, for cost estimates."
    )
    min_new_examples: int = Field(
        20, description="Scheduled retrains are skipped until this many new approved examples."
    )
    auto_promote: bool = Field(False, description="Promote a candidate the eval recommends.")
    retrain_schedule: str = Field(
        "0 9 * * mon",
        description="Default retrain cron (changed at run time by /brandvoice schedule).",
    )
    timezone: str = Field("UTC", description="Time zone of the retrain schedule.")
    together_base_url: str = Field(
        "https://api.together.ai/v1",
        description="Together AI's OpenAI-compatible URL, for hosted training and serving.",
    )
    hosted_openai_model: str = Field(
        "gpt-4o-mini-2024-07-18",
        description="Base model OpenAI fine-tunes (TRAINING_BACKEND=openai).",
    )
    hosted_together_model: str = Field(
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        description="Open base model Together AI trains a LoRA adapter on (TRAINING_BACKEND=together).",
    )
    hosted_epochs: int = Field(3, description="Epochs of a hosted fine-tuning job.")
    hosted_batch_size: int = Field(
        0, description="Batch size of a hosted job; 0 lets the provider choose."
    )
    hosted_learning_rate_multiplier: float = Field(
        0.0,
        description="OpenAI's learning-rate multiplier (scales Together's 1e-5); 0: provider default.",
    )
    hosted_poll_interval_s: float = Field(
        30.0, description="Seconds between polls of a hosted job (backs off to 10x while idle)."
    )
    preference_min_pairs: int = Field(
        20,
        description="Preference (DPO) training runs only when a snapshot has at least this many training pairs (corrections, thumbs-down replies answered well).",
    )

    # Production signal
    signal_window_hours: float = Field(
        168.0,
        gt=0,
        description="Hours of served replies the production signal covers in reports, /brandvoice status and the thumbs-down alert.",
    )
    signal_min_votes: int = Field(
        20,
        ge=1,
        description="Replies with a thumbs-up or thumbs-down that the promoted version and its predecessor each need before their thumbs-down rates are compared.",
    )
    signal_alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Significance level of the one-sided two-proportion z-test that raises the thumbs-down alert.",
    )
    signal_check_interval_s: float = Field(
        300.0, gt=0, description="Seconds between the worker's checks of the thumbs-down rate."
    )
    auto_rollback: bool = Field(
        False,
        description="Roll back a promoted version whose thumbs-down rate is significantly worse than its predecessor's (otherwise only alert).",
    )

    # Worker
    worker_poll_interval_s: float = Field(
        5.0, gt=0, description="Seconds an idle worker waits before it looks at the queue again."
    )
    run_heartbeat_interval_s: float = Field(
        15.0, gt=0, description="Seconds between heartbeats of a running run."
    )
    run_stale_after_s: float = Field(
        300.0,
        gt=0,
        description="A running run without a heartbeat for this long is taken as dead and re-queued once (at least 3x RUN_HEARTBEAT_INTERVAL_S).",
    )

    # Slack
    slack_bot_token: str | None = Field(None, description="xoxb- token; enables the Slack bot.")
    slack_signing_secret: str | None = Field(None, description="Verifies requests from Slack.")
    slack_app_token: str | None = Field(
        None, description="xapp- token: use Socket Mode instead of HTTP."
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (tests point it at loopback)."
    )
    slack_org_install: bool = Field(
        False,
        description="Serve every workspace of the Enterprise Grid org the bot is installed in "
        "(an org-wide install); otherwise requests from other workspaces are refused.",
    )
    report_channel: str | None = Field(None, description="Channel for training reports.")
    curation_channel: str | None = Field(None, description="Channel for pending corrections.")
    curators: str = Field("", description="Comma-separated Slack user ids allowed to curate.")
    curator_group: str | None = Field(None, description="Slack user group id whose members curate.")
    approval_reaction: str = Field(
        "white_check_mark", description="Reaction a curator approves with."
    )
    approval_quorum: int = Field(2, description="Distinct thumbs-ups that approve a reply.")
    collected_reaction: str | None = Field(
        "inbox_tray", description="Reaction the bot adds to a reply it collected; empty: none."
    )
    reply_max_tokens: int = Field(256, description="Longest reply the bot writes, in tokens.")
    reply_temperature: float = Field(0.7, description="Sampling temperature of Slack replies.")
    context_token_budget: int = Field(
        1536,
        description="Thread context sent with a question, in tokens; older messages drop first.",
    )
    curator_cache_s: int = Field(
        300, description="Seconds the curator user group's members are cached."
    )
    slack_streaming: bool = Field(
        True,
        description="Stream replies (chat.startStream/appendStream/stopStream); "
        "false: a placeholder updated about once a second.",
    )
    assistant_greeting: str = Field(
        "Hi! Ask me anything and I'll answer in the team's voice.",
        description="First message in a new assistant thread (Slack's AI app split view).",
    )
    assistant_prompts: str = Field(
        "",
        description="Suggested prompts of a new assistant thread, separated by '|'; "
        "empty: the team's most recent approved requests.",
    )

    # Web
    api_token: str | None = Field(None, description="Bearer token for the REST and chat APIs.")
    max_request_bytes: int = Field(
        1_048_576, description="Largest request body the web app reads; larger ones get 413."
    )
    host: str = Field("127.0.0.1", description="Address the web app listens on.")
    port: int = Field(8000, description="Port the web app listens on.")

    @model_validator(mode="after")
    def _stale_timeout_outlasts_heartbeats(self) -> Self:
        if self.run_stale_after_s < 3 * self.run_heartbeat_interval_s:
            raise ValueError(
                f"RUN_STALE_AFTER_S ({self.run_stale_after_s:g}) must be at least 3x "
                f"RUN_HEARTBEAT_INTERVAL_S ({self.run_heartbeat_interval_s:g}), or live runs "
                "are taken as dead between two heartbeats"
            )
        return self

    @cached_property
    def curator_ids(self) -> frozenset[str]:
        return frozenset(_csv(self.curators))

    @cached_property
    def redact_kinds(self) -> tuple[str, ...]:
        from brandvoice.store.redact import parse_kinds

        return parse_kinds(self.redact)

    @cached_property
    def redactor(self) -> Redactor:
        """The one redactor every path that stores or records text uses (kinds and allow list)."""
        from brandvoice.store.redact import AllowList, Redactor

        return Redactor(self.redact_kinds, AllowList.parse(self.redact_allow))
