"""What counts as a secret or personal data: one rule per shape, each with cheap keywords.

The secret rules follow the ones gitleaks publishes (rule ids in brackets), loosened where a
token's length varies in practice; like gitleaks, a rule runs only when one of its keywords occurs
in the text, so most texts never reach an expression. Personal data (emails, phones, cards) has no
scanner to follow, so those rules carry a check that rejects the look-alikes people actually write
(order numbers, retina image names, IP addresses, slugs).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
"""Invisible characters people (and spammers) put inside addresses to dodge filters."""

Check = Callable[[str, str, int], bool]
"""``(match, whole text, start of the match) -> True`` when the match is really of its kind."""


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: str
    keywords: tuple[str, ...] = ()
    """Lowercase substrings of which one must occur; empty: the rule needs a run of digits or a
    40-character token, which one shared scan detects (see ``needs_shape``)."""
    check: Check | None = None
    keep_prefix: bool = False
    """Replace only the value and keep the ``name = `` or ``scheme://user:`` before it (``KEPT``)."""


def _not_a_slug(found: str, _text: str, _start: int) -> bool:
    """``sk-trailrunner-2024-spring`` is a product slug: a key has a long run that mixes cases,
    or letters and digits, between its dashes."""
    body = re.sub(r"^sk-(?:(?:proj|ant|svcacct|admin)-)?", "", found)
    return any(
        len(part) >= 8
        and (
            (any(c.isupper() for c in part) and any(c.islower() for c in part))
            or (any(c.isdigit() for c in part) and any(c.isalpha() for c in part))
        )
        for part in re.split(r"[-_]", body)
    )


def _numbered(found: str, _text: str, _start: int) -> bool:
    """Slack tokens carry team and user numbers; ``xoxb-your-token-here`` is a placeholder."""
    return sum(c.isdigit() for c in found) >= 6


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_40(found: str, _text: str, _start: int) -> bool:
    """A bare AWS secret: 40 base64 characters with upper, lower and digits, and random-looking.

    Hex hashes (git SHAs) have no upper case; CamelCase identifiers are mostly words (a random
    string almost never holds a capital followed by three lower-case letters twice).
    """
    words = sum(len(word) for word in re.findall(r"[A-Z][a-z]{3,}", found))
    return (
        any(c.isupper() for c in found)
        and any(c.islower() for c in found)
        and any(c.isdigit() for c in found)
        and words < len(found) // 2
        and _entropy(found) > 4.2
    )


_SECRET_NAME = re.compile(
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|auth[_-]?key|access[_-]?key"
    r"|private[_-]?key|credentials?|authorization)(?:[_-]?(?:key|value|id|str|string))?"
    r"[\"']?[ \t]*$",
    re.IGNORECASE,
)


def _named_secret(found: str, text: str, start: int) -> bool:
    """A value is a secret when the name just before it says so (``DB_PASSWORD:``, ``"token" =``)
    and it mixes letters and digits: ``token: expired``, ``api_key: YOUR_API_KEY`` and
    ``xoxb-your-token-here`` are words or placeholders. Names like ``tokenizer=`` are not secrets.
    """
    value = found[KEPT.match(found).end() :]  # type: ignore[union-attr]
    return (
        len(value) >= 8
        and any(c.isalpha() for c in value)
        and any(c.isdigit() for c in value)
        and _SECRET_NAME.search(text, max(0, start - 48), start) is not None
    )


def _iban(found: str, _text: str, _start: int) -> bool:
    """An IBAN passes the ISO 13616 mod-97 check, which no SKU or ticket number does by chance."""
    compact = re.sub(r"\s", "", found)
    rotated = compact[4:] + compact[:4]
    return 15 <= len(compact) <= 34 and int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


def _luhn_card(found: str, _text: str, _start: int) -> bool:
    digits = re.sub(r"\D", "", found)
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_NOT_PHONE_BEFORE = re.compile(
    r"\b(?:order|sku|invoice|ticket|ref|reference|tracking|part|serial|model|item|case|po"
    r"|confirmation|batch|lot)"
    r"\.?\s*(?:number|no\.?|num|#|:)?\s*#?\s*$",
    re.IGNORECASE,
)


def _phone(found: str, text: str, start: int) -> bool:
    """A phone number has 7 to 15 digits, is not introduced as an order, SKU or ticket number,
    and is not the tail of a longer spaced code (``1Z 999 AA1 01 2345 6784``)."""
    digits = sum(c.isdigit() for c in found)
    return (
        7 <= digits <= 15
        and not _NOT_PHONE_BEFORE.search(text[max(0, start - 24) : start])
        and not re.search(r"\d\s$", text[max(0, start - 2) : start])
    )


def _national_phone(found: str, text: str, start: int) -> bool:
    """A national number (``020 7946 0958``) has 9 digits or more; ``05.12.2024`` is a date."""
    return sum(c.isdigit() for c in found) >= 9 and _phone(found, text, start)


FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "tif",
        "tiff",
        "heic",
        "avif",
        "psd",
        "mp3",
        "mp4",
        "mov",
        "wav",
        "pdf",
        "js",
        "css",
        "html",
        "htm",
        "json",
        "yaml",
        "yml",
        "toml",
        "txt",
        "csv",
        "xml",
        "zip",
        "gz",
        "tar",
        "whl",
        "exe",
        "dll",
    ]
)


def _email(found: str, _text: str, _start: int) -> bool:
    """``icon@2x.png`` is an image name, not an address: file extensions are not top-level domains."""
    tld = re.split(r"[.．。\]\)\}>\s]", found.rstrip(ZERO_WIDTH))[-1].strip(ZERO_WIDTH)
    return tld.casefold() not in FILE_EXTENSIONS


_ZW = f"[{ZERO_WIDTH}]*"
_WORD = rf"[A-Za-z0-9%+_-][A-Za-z0-9%+_\-{ZERO_WIDTH}]*"
_AT = r"(?:[@＠﹫]\s?|\s[@＠﹫]\s|\s*[\[\(\{<]\s*at\s*[\]\)\}>]\s*)"
_DOT = r"(?:[.．。]|\s*[\[\(\{<]\s*dot\s*[\]\)\}>]\s*)"
_LABEL = rf"[A-Za-z0-9][A-Za-z0-9\-{ZERO_WIDTH}]*"
EMAIL = rf"(?<![\w.%+-]){_WORD}(?:{_DOT}{_WORD})*{_ZW}{_AT}{_ZW}{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}{_ZW}[A-Za-z]{{2,24}}(?![A-Za-z0-9-])"

_SEP = r"[\s.-]"
PHONE_INTERNATIONAL = r"(?<![\w+])\+\d(?:[\s.\-()]{0,2}\d){6,14}(?!\d)"
PHONE_NANP = (
    rf"(?<![\w.+-])(?:1{_SEP})?(?:\(\d{{3}}\)\s?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}(?![-.:]?\d)"
)
PHONE_TRUNK = rf"(?<![\w.+-])(?:\(0\d{{1,4}}\)|0\d{{1,4}})(?:{_SEP}\d{{2,6}}){{1,4}}(?![-.:]?\d)"

KEPT = re.compile(r"[^=:]*://[^\s:/@]*:|[^=:]*[=:]\s*[\"']?(?i:(?:basic|bearer|token)\s+)?")
"""The part of a ``keep_prefix`` match that stays: a setting's name, or a URL's scheme and user."""

RULES: tuple[Rule, ...] = (
    # [private-key]; also a key pasted without its END line (the base64 body up to the first prose)
    Rule(
        "PRIVATE_KEY",
        r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z ]*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:\s*[A-Za-z-]+:[^\n]*)*(?:\s*[A-Za-z0-9+/=]{16,})*)",
        ("private key",),
    ),
    # [slack-webhook-url]
    Rule(
        "SLACK_WEBHOOK",
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{16,}",
        ("hooks.slack.com",),
    ),
    # [slack-bot-token, slack-user-token, slack-legacy-*, slack-config-access/refresh-token]
    Rule("SLACK_TOKEN", r"\bxox[abposre](?:\.xox[bp])?-[A-Za-z0-9-]{10,}", ("xox",), _numbered),
    # [slack-app-token]
    Rule("SLACK_TOKEN", r"(?i:\bxapp-\d-[A-Z0-9]+-\d+-[A-Z0-9]+)", ("xapp-",)),
    # [github-pat, github-oauth, github-app-token, github-refresh-token, github-fine-grained-pat]
    Rule(
        "GITHUB_TOKEN",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{40,255})\b",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    # [stripe-access-token]; webhook signing secrets too
    Rule(
        "STRIPE_KEY",
        r"\b(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}|whsec_[A-Za-z0-9]{24,})\b",
        ("_live_", "_test_", "_prod_", "whsec_"),
    ),
    # [gcp-api-key]
    Rule("GOOGLE_API_KEY", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", ("aiza",)),
    # [openai-api-key, anthropic-api-key] loosened to any sk- key; product slugs are not keys
    Rule(
        "API_KEY",
        r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        ("sk-",),
        _not_a_slug,
    ),
    # [aws-access-token]
    Rule(
        "AWS_ACCESS_KEY",
        r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        ("akia", "asia", "abia", "acca", "a3t"),
    ),
    # a secret named as one, quoted or not (in code, .env files, JSON)
    Rule(
        "AWS_SECRET_KEY",
        r"(?i:(?:aws_secret_access_key|secret_access_key|secretaccesskey|aws_secret_key|aws_secret)"
        r"[A-Za-z0-9_-]*)[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
        ("secret_access_key", "secretaccesskey", "aws_secret"),
        keep_prefix=True,
    ),
    # [generic-api-key]: a value assigned to a name that says it is a secret. The match starts at
    # the ``=`` or ``:`` (a scan for one character is fast) and the check reads the name before it;
    # a vendor token in the value is still named by its own rule (see ``Redactor``).
    Rule(
        "SECRET",
        r"[=:][ \t]*[\"']?(?i:(?:basic|bearer|token)\s+)?[A-Za-z0-9][^\s\"',;<>`]{5,}",
        (
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "apikey",
            "api_key",
            "api-key",
            "auth_key",
            "access_key",
            "private_key",
            "credential",
            "authorization",
        ),
        _named_secret,
        keep_prefix=True,
    ),
    # [generic credentials in a URL]: ``postgres://app:hunter22@db/shop`` keeps scheme, user, host
    Rule(
        "PASSWORD",
        r"://[^\s:/@]*:[^\s/@]{3,}(?=@)",
        ("@",),
        keep_prefix=True,
    ),
    # [jwt]
    Rule(
        "JWT",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ("eyj",),
    ),
    # [gitlab-pat, gitlab-deploy-token, gitlab-ptt, gitlab-rrt]
    Rule(
        "API_KEY",
        r"\bgl(?:pat|dt|ptt|rt|cbt|oas)-[A-Za-z0-9_-]{20,}",
        ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "gloas-"),
    ),
    # [sendgrid-api-token]
    Rule("API_KEY", r"\bSG\.[A-Za-z0-9_-]{20,24}\.[A-Za-z0-9_-]{39,50}(?![A-Za-z0-9_-])", ("sg.",)),
    # [npm-access-token]
    Rule("API_KEY", r"\bnpm_[A-Za-z0-9]{36}\b", ("npm_",)),
    # [twilio-api-key]: woken by ``SHAPE`` (its 32 hex digits), since "sk" is in every other word
    Rule("API_KEY", r"\bSK[0-9a-fA-F]{32}\b"),
    Rule(
        "EMAIL", EMAIL, ("@", "＠", "﹫", *(f"at{s}{b}" for s in ("", " ") for b in "])}>")), _email
    ),
    Rule("IBAN", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", (), _iban),
    Rule("CARD_NUMBER", r"\b(?:\d[ -]?){12,18}\d\b", (), _luhn_card),
    Rule("PHONE", PHONE_INTERNATIONAL, (), _phone),
    Rule("PHONE", PHONE_NANP, (), _phone),
    Rule("PHONE", PHONE_TRUNK, (), _national_phone),
    # a bare AWS secret, unnamed: last, so every named token above wins where they overlap
    Rule(
        "AWS_SECRET_KEY",
        r"(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])",
        (),
        _random_40,
    ),
)
"""Order matters: at one position the first rule that matches wins."""

KINDS: tuple[str, ...] = tuple(dict.fromkeys(rule.kind for rule in RULES))

SHAPE = re.compile(r"\d(?:[\d\s().+-]{5,}\d|[A-Za-z0-9/+]{20}|(?<=[A-Za-z0-9/+]{20}\d))")
"""One scan that says whether a keyword-less rule could match: a run of digits, or a digit inside
a 40-character token (a random 40-character secret lacks a digit once in a thousand). Starting
at a digit lets the scan skip the prose between digits."""
