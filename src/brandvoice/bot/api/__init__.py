"""The REST API (bearer-token auth), health checks and the OpenAI-compatible chat endpoint."""
