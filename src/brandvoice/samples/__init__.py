"""The sample brand that ships with brandvoice: "Pebble & Pine", a fictional outdoor-gear co-op.

Its voice is deliberately distinctive (warm, plain-spoken, short sentences, second person, the odd
trail metaphor, and every reply ends with the line "Happy trails! 🌲") so that even a tiny model's
progress toward it can be measured. The demo, the tests and the benchmarks train on these files;
``general_text.txt`` is neutral prose for measuring how much general language a run forgets.
"""

from pathlib import Path

SAMPLE_BRAND_DIR: Path = Path(__file__).parent / "brand"
SIGN_OFF: str = "Happy trails! 🌲"


def sample_examples_path() -> Path:
    """Chat examples in OpenAI's fine-tuning JSONL format, all in the Pebble & Pine voice."""
    return SAMPLE_BRAND_DIR / "examples.jsonl"


def sample_guidelines_path() -> Path:
    """The human-readable brand guidelines the examples were written to."""
    return SAMPLE_BRAND_DIR / "guidelines.md"


def general_text_path() -> Path:
    """Neutral English paragraphs, one per line, for perplexity-based forgetting checks."""
    return Path(__file__).parent / "general_text.txt"


def sample_knowledge_paths() -> list[Path]:
    """The team's knowledge files (products, policies, shipping, care) the examples agree with."""
    return sorted((SAMPLE_BRAND_DIR / "knowledge").glob("*.md"))
