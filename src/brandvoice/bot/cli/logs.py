"""Where log records, warnings and library progress bars go when the CLI runs.

Our own output (tables, rich progress bars, ``brandvoice.*`` warnings) is what a user reads.
Libraries (transformers, peft, huggingface_hub, accelerate, torch) log, warn and draw tqdm bars
of their own; without ``-v`` only their errors reach the terminal, with ``-v`` everything does.
Each library is switched through its own verbosity API when it is imported, so a command that never
loads a model does not pay for importing transformers.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from rich.console import Console
from rich.logging import RichHandler

OUR_LOGGER = "brandvoice"


class OursOrErrors(logging.Filter):
    """Lets through our own records, and anyone's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        is_ours = record.name == OUR_LOGGER or record.name.startswith(OUR_LOGGER + ".")
        return is_ours or record.levelno >= logging.ERROR


class _CliHandler(RichHandler):
    """The handler ``configure_logging`` installs (and replaces when called again)."""


def configure_logging(verbose: bool, console: Console) -> None:
    """The one place that decides what reaches the terminal: our records at INFO with ``-v``
    (WARNING without), library records, ``warnings`` and library progress bars only with ``-v``."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(handler)
    handler = _CliHandler(console=console, show_path=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    if not verbose:
        handler.addFilter(OursOrErrors())
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)
    after_import("huggingface_hub.utils", lambda hub: _hub_progress(hub, verbose))
    after_import("transformers.utils.logging", lambda tf: _transformers_output(tf, verbose))
    after_import("transformers.modeling_gguf_pytorch_utils", lambda module: _gguf_progress(module))


def _hub_progress(hub_utils: ModuleType, verbose: bool) -> None:
    if verbose:
        hub_utils.enable_progress_bars()
    else:
        hub_utils.disable_progress_bars()


def _transformers_output(tf_logging: ModuleType, verbose: bool) -> None:
    """transformers logs through its own stderr handler and never propagates; make it propagate
    into ours instead, and switch its progress bars ("Loading weights", "Writing model shards")."""
    tf_logging.disable_default_handler()
    tf_logging.enable_propagation()
    tf_logging.set_verbosity_warning()
    if verbose:
        tf_logging.enable_progress_bar()
    else:
        tf_logging.disable_progress_bar()


def _gguf_progress(gguf_utils: ModuleType) -> None:
    """The GGUF converter draws a bare ``tqdm.auto`` bar that no switch reaches; give it
    transformers' own ``tqdm``, which follows transformers' progress-bar switch above."""
    from transformers.utils import logging as tf_logging

    gguf_utils.tqdm = tf_logging.tqdm


def after_import(name: str, configure: Callable[[ModuleType], None]) -> None:
    """Call ``configure(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None:
        configure(module)
        return
    for finder in sys.meta_path:
        if isinstance(finder, _ConfigureOnImport) and finder.name == name:
            finder.configure = configure
            return
    sys.meta_path.insert(0, _ConfigureOnImport(name, configure))


class _ConfigureOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing of its own: when ``name`` is about to be imported it has the real loader run
    ``configure`` once the module has executed, then steps out of ``sys.meta_path``."""

    def __init__(self, name: str, configure: Callable[[ModuleType], None]) -> None:
        self.name, self.configure = name, configure

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module, configure = spec.loader.exec_module, self.configure

        def exec_then_configure(module: ModuleType) -> None:
            run_module(module)
            configure(module)

        spec.loader.exec_module = exec_then_configure  # type: ignore[method-assign]
        return spec
