"""Hosted fine-tuning: OpenAI and Together AI behind one provider interface.

``run_hosted_training`` is what the retrain pipeline calls for a run whose backend is not local;
the candidate it produces is evaluated, registered and reported exactly like a local one.
"""

from brandvoice.trainer.hosted.base import (
    MIN_EXAMPLES,
    HostedConfig,
    HostedJob,
    HostedProvider,
    HostedTrainingError,
    Preflight,
    PreflightError,
    preflight,
)
from brandvoice.trainer.hosted.runner import (
    HostedOutcome,
    make_provider,
    run_hosted_training,
    snapshot_preflight,
)

__all__ = [
    "MIN_EXAMPLES",
    "HostedConfig",
    "HostedJob",
    "HostedOutcome",
    "HostedProvider",
    "HostedTrainingError",
    "Preflight",
    "PreflightError",
    "make_provider",
    "preflight",
    "run_hosted_training",
    "snapshot_preflight",
]
