"""The fake Slack answers the streaming and assistant methods as Slack documents them, and refuses
what Slack would refuse, so the bot's tests cannot pass on requests real Slack would reject."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlackAPI

pytestmark = pytest.mark.anyio
DM, CHANNEL, THREAD = "D0ALICE", "C0GENERAL", "1700000000.000100"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client(slack_api: FakeSlackAPI) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-1-test", base_url=slack_api.api_url)


async def error_of(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SlackApiError) as refused:
        await call
    return str(refused.value.response["error"])


async def test_a_stream_starts_appends_and_stops_once(client, slack_api):
    started = await client.chat_startStream(channel=DM, thread_ts=THREAD, markdown_text="Hel")
    ts = started["ts"]
    await client.chat_appendStream(
        channel=DM, ts=ts, chunks=[{"type": "markdown_text", "text": "lo"}]
    )
    await client.chat_stopStream(channel=DM, ts=ts, markdown_text="!")
    assert slack_api.streams[ts]["text"] == "Hello!"
    late = client.chat_appendStream(channel=DM, ts=ts, markdown_text="more")
    assert await error_of(late) == "message_not_in_streaming_state"


@pytest.mark.parametrize(
    "chunks",
    [
        [{"type": "markdown_text", "text": ""}],
        [{"type": "markdown_text"}],
        [{"type": "markdown_text", "text": "x" * 12_001}],
        [{"type": "html", "text": "<b>hi</b>"}],
        ["just a string"],
    ],
    ids=["empty", "no_text", "too_long", "unknown_type", "not_an_object"],
)
async def test_malformed_chunks_are_refused(client, chunks):
    started = await client.chat_startStream(channel=DM, thread_ts=THREAD, markdown_text="Hi")
    append = client.chat_appendStream(channel=DM, ts=started["ts"], chunks=chunks)
    assert await error_of(append) == "invalid_chunks"


async def test_streaming_in_a_channel_needs_the_recipient(client):
    refused = client.chat_startStream(channel=CHANNEL, thread_ts=THREAD, markdown_text="Hi")
    assert await error_of(refused) == "invalid_arguments"
    await client.chat_startStream(
        channel=CHANNEL,
        thread_ts=THREAD,
        markdown_text="Hi",
        recipient_user_id="U0ALICE",
        recipient_team_id="T1",
    )


@pytest.mark.parametrize(
    "element",
    [
        {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": "a"},
        {"type": "icon_button", "icon": "pencil", "text": {"type": "plain_text", "text": "Edit"}},
        {
            "type": "feedback_buttons",
            "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "+1"},
        },
    ],
    ids=["plain_button", "unknown_icon", "one_sided_feedback"],
)
async def test_context_actions_outside_block_kits_rules_are_refused(client, element):
    started = await client.chat_startStream(channel=DM, thread_ts=THREAD, markdown_text="Hi")
    blocks = [{"type": "context_actions", "elements": [element]}]
    stop = client.chat_stopStream(channel=DM, ts=started["ts"], blocks=blocks)
    assert await error_of(stop) == "invalid_blocks"


async def test_assistant_methods_check_their_arguments(client, slack_api):
    await client.assistant_threads_setStatus(
        channel_id=DM, thread_ts=THREAD, status="is thinking…", loading_messages=["One", "Two"]
    )
    too_many = client.assistant_threads_setStatus(
        channel_id=DM, thread_ts=THREAD, status="x", loading_messages=[str(i) for i in range(11)]
    )
    assert await error_of(too_many) == "invalid_arguments"
    no_prompts = client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=[])
    assert await error_of(no_prompts) == "invalid_arguments"
    await client.assistant_threads_setTitle(channel_id=DM, thread_ts=THREAD, title="Returns")
    assert slack_api.titles == {(DM, THREAD): "Returns"}
