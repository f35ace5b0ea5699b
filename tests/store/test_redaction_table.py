"""A table of realistic texts: what must be redacted (and as what), and what must be left alone.

Tokens are generated from a fixed seed with each provider's real shape, so no secret-looking
literal lives in the repository. The summary test prints the table's precision and recall.
"""

from __future__ import annotations

import string

import pytest

from brandvoice.store.redact import AllowList, Redactor
from tests.store.random_text import ALNUM, RandomText

_text = RandomText(11)
rand, digits, hexs = _text.rand, _text.digits, _text.hexs


AWS_SECRET = rand(40, ALNUM + "/+")
while not (any(c in "/+" for c in AWS_SECRET) and any(c.isdigit() for c in AWS_SECRET)):
    AWS_SECRET = rand(40, ALNUM + "/+")
PEM_BODY = "\n".join(rand(64, ALNUM + "+/") for _ in range(4))

# (text, secret that must disappear, kind it becomes)
POSITIVE: list[tuple[str, str, str]] = [
    # Slack
    *[
        (f"{lead} {tok} {tail}", tok, "SLACK_TOKEN")
        for lead, tok, tail in [
            ("bot token is", f"xoxb-{digits(12)}-{digits(13)}-{rand(24)}", "keep it safe"),
            ("my user token:", f"xoxp-{digits(11)}-{digits(10)}-{digits(11)}-{hexs(32)}", ""),
            ("SLACK_APP_TOKEN=", f"xapp-1-A{rand(10).upper()}-{digits(13)}-{hexs(64)}", ""),
            ("socket mode with", f"xapp-1-A052FGTS2DL-{digits(13)}-{hexs(64)}", "fails"),
            ("refresh:", f"xoxe-1-{rand(146)}", ""),
            ("config token", f"xoxe.xoxp-1-{rand(163)}", "expired"),
            ("config bot token", f"xoxe.xoxb-1-{rand(165)}", "."),
            ("legacy", f"xoxs-{digits(10)}-{digits(10)}-{digits(10)}-{hexs(10)}", "token"),
            ("workspace token", f"xoxa-2-{digits(9)}-{digits(11)}-{hexs(18)}", ""),
            ('"token": "', f"xoxb-{digits(12)}-{rand(24)}", '"'),
            ("url ...?t=", f"xoxe-{digits(13)}-{digits(13)}-{digits(13)}-{hexs(32)}", "&x=1"),
        ]
    ],
    *[
        (f"{lead} {url} {tail}", url, "SLACK_WEBHOOK")
        for lead, url, tail in [
            (
                "post to",
                f"https://hooks.slack.com/services/T{rand(8).upper()}/B{rand(10).upper()}/{rand(24)}",
                "please",
            ),
            (
                "webhook:",
                f"https://hooks.slack.com/workflows/T{rand(8).upper()}/A{rand(10).upper()}/{digits(18)}/{rand(24)}",
                "",
            ),
            (
                "trigger",
                f"https://hooks.slack.com/triggers/T{rand(8).upper()}/{digits(13)}/{hexs(32)}",
                ".",
            ),
            (
                "curl -X POST",
                f"hooks.slack.com/services/T{rand(8).upper()}/B{rand(8).upper()}/{rand(24)}",
                "-d @msg.json",
            ),
        ]
    ],
    # GitHub
    *[
        (f"{lead} {tok} {tail}", tok, "GITHUB_TOKEN")
        for lead, tok, tail in [
            ("export GITHUB_TOKEN=", f"ghp_{rand(36)}", ""),
            ("oauth", f"gho_{rand(36)}", "from the app"),
            ("installation token", f"ghs_{rand(36)}", "expires in 1h"),
            ("user-to-server", f"ghu_{rand(36)}", ""),
            ("refresh", f"ghr_{rand(36)}", "."),
            ("fine-grained PAT:", f"github_pat_{rand(22)}_{rand(59)}", ""),
            ('{"token": "', f"ghp_{rand(36)}", '"}'),
            ("git clone https://", f"ghp_{rand(36)}", "@github.com/acme/repo.git"),
        ]
    ],
    # Stripe
    *[
        (f"{lead} {tok} {tail}", tok, "STRIPE_KEY")
        for lead, tok, tail in [
            ("STRIPE_SECRET_KEY=", f"sk_live_{rand(24)}", ""),
            ("restricted key", f"rk_live_{rand(24)}", "for reporting"),
            ("test mode key", f"sk_test_{rand(99)}", ""),
            ("stripe.api_key = '", f"sk_live_51{rand(96)}", "'"),
            ("webhook secret", f"whsec_{rand(32)}", "."),
        ]
    ],
    # Google
    *[
        (f"{lead} {tok} {tail}", tok, "GOOGLE_API_KEY")
        for lead, tok, tail in [
            ("maps key", f"AIza{rand(35, ALNUM + '-_')}", ""),
            ("https://maps.googleapis.com/maps/api/js?key=", f"AIzaSy{rand(33)}", "&callback=init"),
            ('"apiKey": "', f"AIza{rand(35)}", '",'),
        ]
    ],
    # OpenAI / Anthropic style
    *[
        (f"{lead} {tok} {tail}", tok, "API_KEY")
        for lead, tok, tail in [
            ("OPENAI_API_KEY=", f"sk-proj-{rand(74)}T3BlbkFJ{rand(74)}", ""),
            ("legacy key", f"sk-{rand(20)}T3BlbkFJ{rand(20)}", "still works?"),
            ("anthropic", f"sk-ant-api03-{rand(93)}AA", ""),
            ("deepseek key", f"sk-{hexs(32)}", "in .env"),
            ("service account", f"sk-svcacct-{rand(60)}", "."),
            ("key=", f"sk-{rand(48)}", ""),
        ]
    ],
    # AWS
    *[
        (f"{lead} {tok} {tail}", tok, "AWS_ACCESS_KEY")
        for lead, tok, tail in [
            ("access key id", "AKIA" + rand(16, string.ascii_uppercase + string.digits), ""),
            (
                "temporary creds",
                "ASIA" + rand(16, string.ascii_uppercase + string.digits),
                "from STS",
            ),
            ("aws_access_key_id =", "AKIA" + rand(16, string.ascii_uppercase + string.digits), ""),
        ]
    ],
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "AWS_SECRET_KEY"),
    (f'{{"aws_secret_access_key": "{AWS_SECRET}"}}', AWS_SECRET, "AWS_SECRET_KEY"),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET, "AWS_SECRET_KEY"),
    (f"secretAccessKey: '{AWS_SECRET}'", AWS_SECRET, "AWS_SECRET_KEY"),
    (f"the secret is {AWS_SECRET} and the id is in 1password", AWS_SECRET, "AWS_SECRET_KEY"),
    (f"{AWS_SECRET}", AWS_SECRET, "AWS_SECRET_KEY"),
    # Private keys
    *[
        (f"{lead}\n-----BEGIN {label}-----\n{PEM_BODY}\n{end}{tail}", PEM_BODY[:64], "PRIVATE_KEY")
        for lead, label, end, tail in [
            ("here:", "RSA PRIVATE KEY", "-----END RSA PRIVATE KEY-----\n", "thanks"),
            ("deploy key", "OPENSSH PRIVATE KEY", "-----END OPENSSH PRIVATE KEY-----", ""),
            ("pkcs8", "PRIVATE KEY", "-----END PRIVATE KEY-----", " ok"),
            ("ec key", "EC PRIVATE KEY", "-----END EC PRIVATE KEY-----", ""),
            ("pasted without the end:", "RSA PRIVATE KEY", "", "can you check it?"),
            ("truncated", "PRIVATE KEY", "", ""),
            ("pgp", "PGP PRIVATE KEY BLOCK", "-----END PGP PRIVATE KEY BLOCK-----", ""),
        ]
    ],
    # Emails
    *[
        (f"{lead} {addr} {tail}", addr, "EMAIL")
        for lead, addr, tail in [
            ("write to", "ana.perez@gmail.com", "today"),
            ("cc", "j.o'brien".replace("'", "") + "@corp.example.co.uk", ""),
            ("reply-to", "support+billing@shop.example", "."),
            ("mail", "bob [at] example [dot] com", "if it bounces"),
            ("mail", "bob (at) example (dot) com", ""),
            ("or", "bob{at}example{dot}org", ""),
            ("email", "bob @ example.com", "please"),
            ("email", "bob@ example.com", ""),
            ("full width", "bob＠example．com", ""),
            ("full width at only", "maria＠example.com", ""),
            ("zero width", "b\u200bob@example.com", ""),
            ("zero width domain", "bob@exa\u200bmple.com", ""),
            ("bom", "bob\ufeff@example.com", ""),
            ("upper", "JANE.DOE@EXAMPLE.COM", "shouted"),
            ("subdomain", "ops@mail.eu.example.io", ""),
            ("digits", "user1234@example.net", ""),
            ("angle", "<ana@example.org>", ""),
            ("mailto:", "ana@example.org", ""),
            ("spaced brackets", "ana [ at ] example [ dot ] org", ""),
            ("dotted local", "ana [dot] perez [at] example [dot] com", ""),
            ("hyphen domain", "it@my-shop.example", ""),
            ("long tld", "hello@studio.photography", ""),
            ("json", '{"email":"ana@example.com"}', ""),
            ("zero width joiner", "ana\u200d.perez@example\u200d.com", ""),
            ("word joiner", "support\u2060@shop\u2060.example", ""),
            ("fullwidth spaced", "ana ＠ example.com", ""),
        ]
    ],
    # Cards
    *[
        (f"{lead} {card} {tail}", card, "CARD_NUMBER")
        for lead, card, tail in [
            ("card", "4242 4242 4242 4242", "exp 12/29"),
            ("visa", "4111-1111-1111-1111", ""),
            ("amex", "3782 822463 10005", ""),
            ("mastercard", "5555555555554444", "cvc 123"),
            ("discover", "6011 1111 1111 1117", ""),
        ]
    ],
    # Phones
    *[
        (f"{lead} {phone} {tail}", phone, "PHONE")
        for lead, phone, tail in [
            ("call", "+14155550100", "now"),
            ("call", "+1 415 555 0100", ""),
            ("call", "+1 (415) 555-0100", "after 5"),
            ("whatsapp", "+447911123456", ""),
            ("uk", "+44 20 7946 0958", ""),
            ("de", "+49 30 901820", "office"),
            ("fr", "+33 6 12 34 56 78", ""),
            ("in", "+91 98765 43210", ""),
            ("us", "(415) 555-0100", ""),
            ("us", "415-555-0100", "."),
            ("us", "415.555.0100", ""),
            ("toll free", "1-800-555-0199", ""),
            ("uk national", "020 7946 0958", ""),
            ("fr national", "06 12 34 56 78", ""),
            ("mobile", "07911 123456", ""),
            ("text me at", "+61 412 345 678", ""),
            ("phone no.", "415-555-0100", ""),
            ("tel:", "+14155550100", ""),
            ("my cell,", "555-867-5309", "call after 6"),
            ("sg", "+65 6123 4567", ""),
            ("jp", "+81 3-1234-5678", ""),
        ]
    ],
]

NEGATIVE: list[str] = [
    "Your order 1234-5678-9012 ships tomorrow.",
    "SKU 123-456-789 is back in stock.",
    "Order #123-456-7890 was refunded.",
    "Invoice 555-123-4567 is attached.",
    "Tracking number 0123 4567 8901 2345 shows it in Reno.",
    "Use icon@2x.png and logo@3x.jpg for retina screens.",
    "Server at 192.168.100.200 is down.",
    "Ping 10.0.0.1 and 172.16.254.1 from the VPN.",
    "Coupon code sk-trailrunner-2024-spring-collection gives 10% off.",
    "Product slug sk-summit-pack-40l-forest-green-2025 is live.",
    "We ship 5 to 7 days, 60-day returns.",
    "The Ridgeline 40 weighs 1.2 kg and costs $189.",
    "Meet at 10:30 on 05.12.2024 by the river.",
    "Dates: 2024-05-12, 12/05/2024, 01-02-2024.",
    "Version 2.14.1 of the app fixes sync.",
    "Commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 fixed the crash.",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches.",
    "Ping @alice.smith in #help if you need a hand.",
    "Follow @pebbleandpine on Instagram.",
    "Email us? Sure, the form is at https://example.com/contact.",
    "npm install lodash@4.17.21 and react@18.2.0",
    "Use the xoxb- prefix for bot tokens (never paste them here).",
    "Set SLACK_BOT_TOKEN=xoxb-your-token-here in .env",
    "The API key starts with sk- followed by letters.",
    "A GitHub token looks like ghp_ plus 36 characters.",
    "Stripe keys begin with sk_live_ in production.",
    "AIza is the prefix of Google API keys.",
    "-----BEGIN CERTIFICATE----- is a public certificate, not a key.",
    "Our hotline is open 9-5, Monday to Friday.",
    "Temperature dropped to -12 C at 3,000 m.",
    "Call us within 30 days of purchase.",
    "Room 1204, floor 12, building 3.",
    "ISBN 978-3-16-148410-0 is the guidebook.",
    "Warehouse code 4410-22 handles the West Coast.",
    "Batch 2024-0517-003 was recalled.",
    "Lot 20240517 passed inspection.",
    "Case 00123456 is closed.",
    "Reference 8834-2291-5567 for your claim.",
    "Part number 770-4412-9 fits the stove.",
    "Ticket 415-555-0101 was escalated.",
    "Model 3000-44-12 replaces the old tent.",
    "The score was 3-2 after 90+4 minutes.",
    "1,299,000 people hiked the trail in 2023.",
    "Our CamelCaseIdentifierForTheTrailMapView1 renders slowly.",
    "Path /usr/local/share/brandvoice/models/adapter is mounted.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 is the run id.",
    "Size chart: 36-38-40-42-44.",
    "Use the hashtag #HappyTrails2024 in posts.",
    "The storm hit at 4:15 am; 20-30 cm of snow.",
    "Price 1 234,56 EUR incl. VAT.",
    "Call the front desk at extension 4412.",
    "Routing: 10.20.30.40:8080 -> 10.20.30.41:8080",
    "Coordinates 37.7749, -122.4194 (San Francisco).",
    "Release v1.2.3-rc.4+build.5 is tagged.",
    "The wifi password is on the fridge (ask at the desk).",
    "Keep it at 20 @ 5 bar pressure.",
    "Our team is at the booth — look for the green tent.",
    "Write 'bob at home' on the label.",
    "x@y is not an address.",
    "user@localhost is only for testing.",
    "Download report-final@v2.pdf from the drive.",
    "image asset hero@2x.webp is too big.",
]

CASES = [(text, secret, kind) for text, secret, kind in POSITIVE] + [
    (text, None, None) for text in NEGATIVE
]
REDACTOR = Redactor()


def _outcome(text: str, secret: str | None, kind: str | None) -> tuple[bool, str]:
    redacted, counts = REDACTOR.redact_text(text)
    if secret is None:
        return redacted == text, f"redacted a clean text: {redacted!r}"
    leaked = secret.replace("\n", "") in redacted.replace("\n", "") or secret[:24] in redacted
    return (not leaked and counts.get(kind or "", 0) >= 1), f"{redacted!r} {dict(counts)}"


@pytest.mark.parametrize(("text", "secret", "kind"), CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_each_case(text: str, secret: str | None, kind: str | None) -> None:
    ok, detail = _outcome(text, secret, kind)
    assert ok, detail


def test_table_size_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(POSITIVE) >= 100 and len(NEGATIVE) >= 50
    caught = sum(_outcome(*case)[0] for case in POSITIVE)
    false_alarms = sum(not _outcome(text, None, None)[0] for text in NEGATIVE)
    precision = caught / (caught + false_alarms)
    recall = caught / len(POSITIVE)
    with capsys.disabled():
        print(
            f"\nredaction table: {len(POSITIVE)} positive, {len(NEGATIVE)} negative; "
            f"precision {precision:.3f}, recall {recall:.3f}"
        )
    assert precision >= 0.98 and recall >= 0.98


def test_allow_list_keeps_the_brands_own_contact_points() -> None:
    redactor = Redactor(
        allow=AllowList.parse("yourbrand.example, +1 415 555 0100, ops@partner.example")
    )
    text = (
        "Write to help@yourbrand.example or returns@eu.yourbrand.example, call +1 (415) 555-0100; "
        "ops@partner.example handles freight. Not ana@gmail.com, not sales@partner.example, "
        "not 212-555-0188, not help@yourbrand.example.evil.com."
    )
    redacted, counts = redactor.redact_text(text)
    assert "help@yourbrand.example " in redacted and "returns@eu.yourbrand.example" in redacted
    assert "+1 (415) 555-0100" in redacted and "ops@partner.example" in redacted
    assert redacted.count("<EMAIL>") == 3 and redacted.count("<PHONE>") == 1
    assert counts == {"EMAIL": 3, "PHONE": 1}
    assert counts.allowed == {"EMAIL": 3, "PHONE": 1}
