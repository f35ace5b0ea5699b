"""Prompt templates: versioned files, guidelines in every prompt, no silent blanks."""

from __future__ import annotations

from importlib.resources import files

import pytest

from brandvoice.datagen.templates import TemplateError, load_template, parse_template

PACKAGED = sorted(
    p.name.removesuffix(".txt")
    for p in files("brandvoice.datagen").joinpath("templates").iterdir()
    if p.name.endswith(".txt")
)


@pytest.mark.parametrize("name", PACKAGED)
def test_every_template_is_versioned_and_carries_the_guidelines(name):
    template = load_template(name)
    assert template.ref == f"{name}@{template.version}"
    assert any("$guidelines" in text for _, text in template.messages)
    assert template.messages[-1][0] == "user"


def test_rendering_fills_values_and_puts_demonstrations_after_the_system_message():
    template = parse_template(
        "t",
        'version: 3\n# note\n=== system\nRules: $guidelines {"json": true}\n=== user\n$request\n',
    )
    messages = template.render({"guidelines": "be kind", "request": "hi"}, [("q", "a")])
    assert messages == [
        {"role": "system", "content": 'Rules: be kind {"json": true}'},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "hi"},
    ]
    with pytest.raises(TemplateError, match="t@3: no value for 'request'"):
        template.render({"guidelines": "x"})


def test_a_template_without_a_version_line_is_refused():
    with pytest.raises(TemplateError, match="version: N"):
        parse_template("bad", "=== user\nhi\n")
