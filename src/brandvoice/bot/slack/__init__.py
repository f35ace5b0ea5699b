"""The Slack bot: Bolt app, listeners, Block Kit and the Web API helpers."""
