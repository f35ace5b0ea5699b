"""Prompt templates: text files next to the code, each with a version recorded on what it makes.

A template file starts with ``version: N``, then ``#`` comment lines, then messages, each opened by
a ``=== system``, ``=== user`` or ``=== assistant`` line. ``$name`` placeholders are filled with
``string.Template`` (so JSON braces need no escaping); a missing value is an error, not a blank.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template

_HEADER = re.compile(r"^=== (system|user|assistant)\s*$")
_VERSION = re.compile(r"^version:\s*(\S+)\s*$")


class TemplateError(ValueError):
    """A template file that cannot be read, or a render with missing values."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    messages: tuple[tuple[str, str], ...]
    """(role, text with ``$placeholders``) in order."""

    @property
    def ref(self) -> str:
        """``name@version``, what candidates record."""
        return f"{self.name}@{self.version}"

    def render(
        self, values: Mapping[str, object], demos: Sequence[tuple[str, str]] = ()
    ) -> list[dict[str, str]]:
        """Chat messages with ``values`` filled in; ``demos`` (user, assistant) pairs follow the
        system message as worked examples."""
        rendered: list[dict[str, str]] = []
        for role, text in self.messages:
            try:
                content = Template(text).substitute({k: str(v) for k, v in values.items()})
            except (KeyError, ValueError) as exc:
                raise TemplateError(f"template {self.ref}: no value for {exc}") from exc
            rendered.append({"role": role, "content": content.strip()})
        at = 1 if rendered and rendered[0]["role"] == "system" else 0
        turns = [
            {"role": role, "content": content}
            for user, assistant in demos
            for role, content in (("user", user), ("assistant", assistant))
        ]
        return rendered[:at] + turns + rendered[at:]


def parse_template(name: str, text: str) -> PromptTemplate:
    lines = text.splitlines()
    match = _VERSION.match(lines[0]) if lines else None
    if match is None:
        raise TemplateError(f"template {name}: the first line must be 'version: N'")
    messages: list[tuple[str, list[str]]] = []
    for number, line in enumerate(lines[1:], start=2):
        header = _HEADER.match(line)
        if header:
            messages.append((header.group(1), []))
        elif messages:
            messages[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise TemplateError(f"template {name} line {number}: text before the first '=== role'")
    if not messages:
        raise TemplateError(f"template {name}: no messages ('=== user' and so on)")
    return PromptTemplate(
        name, match.group(1), tuple((role, "\n".join(body)) for role, body in messages)
    )


@cache
def load_template(name: str) -> PromptTemplate:
    """The packaged template ``templates/<name>.txt``."""
    resource = files("brandvoice.datagen").joinpath("templates", f"{name}.txt")
    if not resource.is_file():
        raise TemplateError(f"no packaged template named {name!r} (looked for {resource})")
    return parse_template(name, resource.read_text(encoding="utf-8"))
