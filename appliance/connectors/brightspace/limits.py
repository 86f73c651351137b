"""Reading an upstream answer without trusting its size."""

from __future__ import annotations

import aiohttp

from appliance.connectors.brightspace.mapping import BadAnswer

MAX_BODY = 4 * 1024 * 1024  # a page of 100 users is ~40 KB; anything near this is not an API answer


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes:
    """The whole body, or BadAnswer as soon as it (declared or actual) passes `limit` bytes."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BadAnswer(f"answer of {declared} bytes is larger than {limit} bytes", response.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BadAnswer(f"answer larger than {limit} bytes", response.status)
        chunks.append(chunk)
    return b"".join(chunks)
