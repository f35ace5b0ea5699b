"""An independent redaction table, written without reading the rules, to estimate how the
redactor does on cases its author did not tune against.

Positive cases carry the part that must disappear; negatives must come back unchanged. Tokens are
generated from a fixed seed in each provider's published shape, so no secret-looking literal lives
in the repository.

Borderline choices, as a brand team that imports support replies would want them:
- Stripe publishable keys (``pk_live_``) are public by design (they ship in web pages): in neither set.
- Twilio account SIDs (``AC`` + 32 hex) identify an account, they do not grant access: not listed;
  Twilio API key SIDs with their secret, and auth tokens named as such, are positive.
- ``sk_test_`` keys still grant API access to a test account: positive.
- UUIDs, git commit hashes and tracking numbers are the ids support replies quote: negative.
- ``name at example dot com`` without brackets is ordinary English too often: not listed; the
  bracketed and full-width disguises are positive.
- A card number that fails the Luhn check, or one quoted by its last four digits, is negative.
"""

from __future__ import annotations

import base64
import json
import string

import pytest

from brandvoice.store.redact import Redactor
from tests.store.random_text import ALNUM, RandomText

_text = RandomText(20261130)
rand, digits, hexs = _text.rand, _text.digits, _text.hexs
UPPER_DIGITS = string.ascii_uppercase + string.digits


def aws_secret() -> str:
    while True:
        value = rand(40, ALNUM + "/+")
        if any(c.isdigit() for c in value) and any(c.isupper() for c in value):
            return value


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def jwt() -> str:
    header = b64url({"alg": "HS256", "typ": "JWT"})
    payload = b64url({"sub": digits(8), "name": "Ana Ruiz", "iat": 1700000000})
    return f"{header}.{payload}.{rand(43, ALNUM + '-_')}"


def pem(label: str, end: bool) -> tuple[str, str]:
    lines = [rand(64, ALNUM + "+/") for _ in range(5)]
    text = f"-----BEGIN {label}-----\n" + "\n".join(lines)
    if end:
        text += f"\n-----END {label}-----"
    return text, lines[2]


AKIA = "AKIA" + rand(16, UPPER_DIGITS)
ASIA = "ASIA" + rand(16, UPPER_DIGITS)
SECRETS = [aws_secret() for _ in range(7)]
SLACK_BOT = f"xoxb-{digits(11)}-{digits(13)}-{rand(24)}"
SLACK_USER = f"xoxp-{digits(12)}-{digits(12)}-{digits(13)}-{hexs(32)}"
SLACK_APP = f"xapp-1-A{rand(10, UPPER_DIGITS)}-{digits(13)}-{hexs(64)}"
SLACK_REFRESH = f"xoxe-1-{rand(140, ALNUM + '-')}"
SLACK_ROTATED = f"xoxe.xoxp-1-{rand(150, ALNUM + '-')}"
HOOK = f"https://hooks.slack.com/services/T{rand(10, UPPER_DIGITS)}/B{rand(11, UPPER_DIGITS)}/{rand(24)}"
HOOK_WORKFLOW = (
    f"https://hooks.slack.com/workflows/T{rand(9, UPPER_DIGITS)}/A{rand(11, UPPER_DIGITS)}"
    f"/{digits(18)}/{rand(24)}"
)
GHP = "ghp_" + rand(36)
GHO = "gho_" + rand(36)
GHS = "ghs_" + rand(36)
GHU = "ghu_" + rand(36)
GH_PAT = f"github_pat_{rand(22, UPPER_DIGITS)}_{rand(59)}"
GLPAT = "glpat-" + rand(20, ALNUM + "-_")
SK_LIVE = "sk_live_" + rand(99)
SK_LIVE_SHORT = "sk_live_" + rand(24)
RK_LIVE = "rk_live_" + rand(99)
SK_TEST = "sk_test_" + rand(24)
AIZA = "AIza" + rand(35, ALNUM + "-_")
OPENAI_LEGACY = f"sk-{rand(20)}T3BlbkFJ{rand(20)}"
OPENAI_PROJ = f"sk-proj-{rand(156, ALNUM + '-_')}"
OPENAI_SVC = f"sk-svcacct-{rand(120, ALNUM + '-_')}"
ANTHROPIC = f"sk-ant-api03-{rand(93, ALNUM + '-_')}AA"
ANTHROPIC_ADMIN = f"sk-ant-admin01-{rand(93, ALNUM + '-_')}AA"
TWILIO_KEY = "SK" + hexs(32)
TWILIO_TOKEN = hexs(32)
SENDGRID = f"SG.{rand(22, ALNUM + '-_')}.{rand(43, ALNUM + '-_')}"
NPM = "npm_" + rand(36)
JWT = jwt()
PEM_RSA, PEM_RSA_LINE = pem("RSA PRIVATE KEY", end=True)
PEM_OPENSSH, PEM_OPENSSH_LINE = pem("OPENSSH PRIVATE KEY", end=True)
PEM_PKCS8_CUT, PEM_PKCS8_LINE = pem("PRIVATE KEY", end=False)
PEM_EC_CUT, PEM_EC_LINE = pem("EC PRIVATE KEY", end=False)
URL_PASSWORDS = [rand(14) for _ in range(7)]
NAMED = [rand(12) + digits(2) for _ in range(3)]
HEX32 = hexs(32)
BASIC = base64.b64encode(f"deploy:{rand(12)}".encode()).decode()
BEARER = rand(40, ALNUM + "-._~")

# (text, the part that must disappear)
POSITIVE: list[tuple[str, str]] = [
    # Slack
    (f"Set SLACK_BOT_TOKEN={SLACK_BOT} in the dashboard", SLACK_BOT),
    (f"my user token is {SLACK_USER}, can you check why it fails?", SLACK_USER),
    (f'{{"app_token": "{SLACK_APP}"}}', SLACK_APP),
    (f"refresh_token: {SLACK_REFRESH}", SLACK_REFRESH),
    (f"rotated token {SLACK_ROTATED} expired yesterday", SLACK_ROTATED),
    (f"Our alerts post to {HOOK} every hour.", HOOK.rsplit("/", 1)[1]),
    (f"webhook_url: '{HOOK_WORKFLOW}'", HOOK_WORKFLOW.rsplit("/", 1)[1]),
    (f"curl -X POST -d @payload.json <{HOOK}>", HOOK.rsplit("/", 1)[1]),
    # AWS
    (f"aws_access_key_id = {AKIA}", AKIA),
    (f"temporary creds {ASIA} from STS", ASIA),
    (f"aws_secret_access_key = {SECRETS[0]}", SECRETS[0]),
    (f'{{"AccessKeyId": "{AKIA}", "SecretAccessKey": "{SECRETS[1]}"}}', SECRETS[1]),
    (f"AWS_SECRET_ACCESS_KEY={SECRETS[2]}", SECRETS[2]),
    (f"  aws_secret_access_key: {SECRETS[3]}\n  region: eu-west-1", SECRETS[3]),
    (f"export AWS_SECRET_ACCESS_KEY='{SECRETS[4]}'", SECRETS[4]),
    (f"key {AKIA} secret {SECRETS[5]}", SECRETS[5]),
    (f'secret_key = "{SECRETS[6]}"  # do not commit', SECRETS[6]),
    # GitHub, GitLab
    (f"git clone https://{GHP}@github.com/acme/site.git", GHP),
    (f"GITHUB_TOKEN: {GHO}", GHO),
    (f"the app installation token {GHS} expires in an hour", GHS),
    (f"user-to-server {GHU}", GHU),
    (f"fine-grained token: {GH_PAT}", GH_PAT),
    (f"CI_JOB uses {GLPAT} to push", GLPAT),
    # Stripe
    (f"STRIPE_SECRET_KEY={SK_LIVE}", SK_LIVE),
    (f"Stripe key {SK_LIVE_SHORT} was rolled", SK_LIVE_SHORT),
    (f'"restricted": "{RK_LIVE}"', RK_LIVE),
    (f"test mode works with {SK_TEST}", SK_TEST),
    # Google, OpenAI, Anthropic
    (f"maps?key={AIZA}&q=store", AIZA),
    (f"OPENAI_API_KEY={OPENAI_LEGACY}", OPENAI_LEGACY),
    (f"client = OpenAI(api_key='{OPENAI_PROJ}')", OPENAI_PROJ),
    (f"service account key {OPENAI_SVC}", OPENAI_SVC),
    (f"x-api-key: {ANTHROPIC}", ANTHROPIC),
    (f"admin key {ANTHROPIC_ADMIN} for the org", ANTHROPIC_ADMIN),
    # Twilio, SendGrid, npm
    (f"Twilio API key {TWILIO_KEY}", TWILIO_KEY),
    (f"TWILIO_AUTH_TOKEN={TWILIO_TOKEN}", TWILIO_TOKEN),
    (f"SENDGRID_API_KEY='{SENDGRID}'", SENDGRID),
    (f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    # JWT
    (f"Authorization: Bearer {JWT}", JWT.split(".")[1]),
    (f"the session cookie was {JWT}; is that normal?", JWT.split(".")[1]),
    # PEM
    (f"here is the key:\n{PEM_RSA}\nthanks", PEM_RSA_LINE),
    (f"{PEM_OPENSSH}", PEM_OPENSSH_LINE),
    (f"pasted half of it: {PEM_PKCS8_CUT}", PEM_PKCS8_LINE),
    (f"{PEM_EC_CUT}\n(the rest got cut off)", PEM_EC_LINE),
    # Passwords in URLs
    (f"DATABASE_URL=postgres://app:{URL_PASSWORDS[0]}@db.internal:5432/shop", URL_PASSWORDS[0]),
    (f"mysql://root:{URL_PASSWORDS[1]}@10.0.0.5/orders", URL_PASSWORDS[1]),
    (f"REDIS_URL=redis://:{URL_PASSWORDS[2]}@cache:6379/0", URL_PASSWORDS[2]),
    (f"fetch from https://deploy:{URL_PASSWORDS[3]}@registry.acme.io/v2/", URL_PASSWORDS[3]),
    (f"amqp://guest:{URL_PASSWORDS[4]}@rabbit.local:5672/", URL_PASSWORDS[4]),
    (f"mongodb+srv://admin:{URL_PASSWORDS[5]}@cluster0.mongodb.net/db", URL_PASSWORDS[5]),
    (f"ssh://git:{URL_PASSWORDS[6]}@git.acme.io:2222/site", URL_PASSWORDS[6]),
    # Secrets named as such
    (f'"client_secret": "{NAMED[0]}"', NAMED[0]),
    ("password=Summer2024!", "Summer2024!"),
    (f"DB_PASSWORD: {NAMED[1]}", NAMED[1]),
    (f"api_key={HEX32}", HEX32),
    (f"webhook?token={SLACK_BOT}&channel=C1", SLACK_BOT),
    (f"Authorization: Basic {BASIC}", BASIC),
    (f"-H 'Authorization: Bearer {BEARER}'", BEARER),
    (f"SECRET_KEY = '{NAMED[2]}'", NAMED[2]),
    # Emails
    ("Contact maria.gonzalez@gmail.com for the refund", "maria.gonzalez"),
    ("cc: Tom.O'Neil+orders@outlook.co.uk", "Tom.O'Neil+orders"),
    ("reach priya_k [at] yahoo [dot] com after 5pm", "priya_k"),
    ("jdoe1987 (at) proton (dot) me", "jdoe1987"),
    ("send it to liam.fox @ example.org please", "liam.fox"),
    ("email: kenji．tanaka＠example．jp", "kenji．tanaka"),
    ("write to ol\u200bga@mail\u200b.example.com", "ol\u200bga"),
    ("<a href='mailto:ines.silva@empresa.pt'>Ines</a>", "ines.silva"),
    ("FROM: ROBERT.SMITH@CORP.EXAMPLE.COM", "ROBERT.SMITH"),
    # Phones
    ("call me on +14155550123", "+14155550123"),
    ("my cell is (415) 555-0134", "555-0134"),
    ("text 415-555-0177 when you arrive", "415-555-0177"),
    ("phone: 415.555.0188", "415.555.0188"),
    ("ring +1 415 555 0199 tomorrow", "415 555 0199"),
    ("UK office +44 20 7946 0958", "7946 0958"),
    ("mobile 07700 900123", "07700 900123"),
    ("+44 7700 900456 (WhatsApp)", "7700 900456"),
    ("Berlin: +49 30 12345678", "12345678"),
    ("reach me at 415-555-0145 ext. 23", "415-555-0145"),
    ("tel. +33 1 42 68 53 00", "42 68 53 00"),
    ("call 1-800-555-0111", "800-555-0111"),
    ("+1-415-555-0162 is my direct line", "555-0162"),
    ("+1 (415) 555-0100 x204", "555-0100"),
    ("Sydney +61 2 9374 4000", "9374 4000"),
    ("(020) 7946 0321 after six", "7946 0321"),
    # Cards (Luhn-valid test numbers)
    ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("charged 5555-5555-5555-4444 twice", "5555-5555-5555-4444"),
    ("Amex 3782 822463 10005", "822463"),
    ("number 6011111111111117 cvv 123", "6011111111111117"),
    ("visa: 4012888888881881", "4012888888881881"),
    # IBAN
    ("refund to IBAN GB82 WEST 1234 5698 7654 32", "1234 5698 7654 32"),
    ("IBAN: DE89370400440532013000", "370400440532013000"),
]

NEGATIVE: list[str] = [
    "Your order 1234-5678-9012 ships tomorrow.",
    "SKU 123-456-789 is back in stock",
    "Order #100234567 was refunded",
    "Ticket ZD-482913 is closed",
    "Invoice INV-2024-000123 is attached",
    "Update to version 2.14.3 or v1.2.3-rc.1",
    "The server at 192.168.10.254 answered",
    "connect to 10.0.0.1:8080 then 172.16.254.1",
    "IPv6 2001:db8:85a3::8a2e:370:7334 works",
    "Delivered on 2024-03-15 at 12:30:45",
    "Due 15/03/2024, or 03/15/2024 in the US",
    "timestamp 2024-03-15T12:30:45.123Z",
    "Brand colors: #1a2b3c and #FFAA00",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    "Use icon@2x.png and logo@3x.webp for retina",
    "Thanks @maria and @support-team!",
    "Follow us on Twitter @yourbrand",
    ".btn { margin: 0 auto; color: #fff; padding: 4px 8px; }",
    "The sk-trailrunner-2024-blue is our best seller",
    "See sk-hiking-boots-mens-10-wide-waterproof-2024 for sizes",
    "Price: $1,299.99, now €49,90",
    "Ship to 94105-1234 or SW1A 1AA",
    "UPS tracking 1Z999AA10123456784",
    "USPS tracking 9400111899223197428490",
    "FedEx 7489 1234 5678",
    "fixed in commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "unix time 1700000000",
    "ISBN 978-0-306-40615-7",
    "npm install left-pad@1.3.0",
    "pip install requests==2.31.0",
    "Size 10.5 US / 44 EU, 1-2 business days",
    "Open 9-5, Mon-Fri, room 404",
    "Flight UA 1234 lands at 18:45",
    "Use code SAVE20 at checkout",
    "Lot 2024-11-30-0042 passed QA",
    "Store at 37.7749, -122.4194",
    "We sold 1,234,567 pairs",
    "Screen 1080x1920",
    "MAC 00:1A:2B:3C:4D:5E",
    "Pantone 19-4052 Classic Blue",
    "Your password reset link expires in 24 hours",
    "card ending in 4242",
    "reference 4111 1111 1111 1112",
    "Serial SN-8842-1190-3321",
    "postgres://localhost/shop has no password",
    "https://shop.example.com/@brand/posts",
    '{"id": 123456789012, "qty": 3}',
    "Kakiage and akia rolls on the menu",
    "Model AKIA-7 skateboard deck",
    "the sk-8 board",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Meet at noon, look for the blue sign",
    "token: expired, please log in again",
    "password: see the reset email we sent",
    "api_key: YOUR_API_KEY",
    "token=<your-token>",
    "secret: ********",
    "The key to success is comfort",
    "Set SLACK_BOT_TOKEN in your .env file",
    "tokenizer=gpt2-medium",
    "max_tokens: 1024, tokens_used: 987",
    "password_hint: favourite2 colour",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "class AbstractSingletonProxyFactoryBean2Helper",
    "Postcode 10115 Berlin, open 08:00-20:00",
    "Between 2019-2024 we grew 300%",
    "call ext. 4567 at the front desk",
    "tracking 1Z 999 AA1 01 2345 6784",
    "Reach us at @yourbrand on X",
]


REDACTOR = Redactor()


def _caught(text: str, secret: str) -> bool:
    redacted, counts = REDACTOR.redact_text(text)
    return secret not in redacted and bool(counts)


def _left_alone(text: str) -> bool:
    return REDACTOR.redact_text(text)[0] == text


@pytest.mark.parametrize(("text", "secret"), POSITIVE, ids=[str(i) for i in range(len(POSITIVE))])
def test_secret_is_redacted(text: str, secret: str) -> None:
    redacted, counts = REDACTOR.redact_text(text)
    assert secret not in redacted and counts, f"{redacted!r} {dict(counts)}"


@pytest.mark.parametrize("text", NEGATIVE, ids=[str(i) for i in range(len(NEGATIVE))])
def test_clean_text_is_left_alone(text: str) -> None:
    redacted, counts = REDACTOR.redact_text(text)
    assert redacted == text, f"{redacted!r} {dict(counts)}"


def test_independent_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(POSITIVE) >= 60 and len(NEGATIVE) >= 40
    caught = sum(_caught(text, secret) for text, secret in POSITIVE)
    false_alarms = sum(not _left_alone(text) for text in NEGATIVE)
    precision = caught / (caught + false_alarms)
    recall = caught / len(POSITIVE)
    with capsys.disabled():
        print(
            f"\nindependent redaction table: {len(POSITIVE)} positive, {len(NEGATIVE)} negative; "
            f"precision {precision:.3f}, recall {recall:.3f}"
        )
    assert precision >= 0.98 and recall >= 0.98
