"""The content origin's answer to a plain read of a hot entry, made without aiohttp.

Most of what a class asks the content origin is the same few hundred pages and their assets, again and
again, with the same cookie. aiohttp spends about four times the CPU of the work itself on each such
request (request objects, routing, middleware, response preparation), so `connection.py` asks this lane
first and hands aiohttp only what the lane declines.

The lane makes the same decisions as `routes_content.entry` with the same functions — the pass, the
session it names (as last checked, in memory), anonymous browsing, visibility, block lists, ETags, gzip,
view recording — and sends the same headers. It declines (returns None) whenever the answer is not a
200 or 304 of an entry already held in the hot cache, or would need anything not in memory: a miss, an
error, a redirect, a Range, a session not checked lately, a gzip body not made yet. The full path then
answers, exactly as before, and usually makes the next such request a hit.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import NamedTuple
from urllib.parse import unquote

from aiohttp import web

from appliance.content import metrics
from appliance.content.directory import can_see
from appliance.content.hotcache import HotEntry
from appliance.content.httpcache import accepts_gzip, not_modified
from appliance.content.keys import CONTENT, MAIN_APP
from appliance.content.origin import cookie_value, page_policy
from appliance.content.passes import PassKind
from appliance.content.routes_content import MAX_PATH_BYTES, record_view
from appliance.keys import CLOCK, SESSION_PRINCIPAL

PREFIX = "/content/"
# What the content origin adds to every response (origin._content_headers), besides the CSP.
_ORIGIN_HEADERS = (b"X-Content-Type-Options: nosniff\r\nReferrer-Policy: same-origin\r\n"
                   b"Cross-Origin-Opener-Policy: same-origin\r\n")
_NOT_MODIFIED = metrics.ENTRIES_SERVED.labels("not_modified")


class Answer(NamedTuple):
    """A response ready to send: status, the head (without Content-Length, Date, request id and the blank
    line, which the connection adds), the body, and the path to log."""

    status: int
    head: bytes
    body: bytes
    path: str


def entry_path(target: str) -> tuple[str, str] | None:
    """(book, path) of a request target /content/{book}/{path}, decoded as aiohttp would; None when unsure.

    Only plain targets are taken: no query, no dot segments or empty segments, no encoded slash or
    percent sign (which aiohttp's router treats specially); the rest goes to aiohttp, which is the
    authority on what a path means.
    """
    if not target.startswith(PREFIX) or "?" in target or "//" in target:
        return None
    slug, sep, path = target[len(PREFIX):].partition("/")
    if not sep or not slug or not path:
        return None
    if "%" in target:
        low = target.lower()
        if "%2f" in low or "%25" in low:
            return None
        try:
            slug, path = unquote(slug, errors="strict"), unquote(path, errors="strict")
        except UnicodeDecodeError:
            return None
    if path.startswith(".") or "/." in path or "\x00" in path:
        return None
    # A character takes at most 4 bytes: only a long path needs encoding to be measured.
    if len(path) > MAX_PATH_BYTES // 4 and len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return None
    return slug, path


class HotLane:
    """Answers plain GETs of hot entries for one content-origin application (in one HTTP process)."""

    def __init__(self, site: web.Application) -> None:
        self._site = site
        self._csp: dict[str | None, bytes] = {}
        self._second = -1
        self._date = b""

    def date_line(self) -> bytes:
        """The Date header line, formatted once a second."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._date = b"Date: " + formatdate(second, usegmt=True).encode() + b"\r\n"
        return self._date

    def csp_line(self, app_origin: str | None) -> bytes:
        """The Content-Security-Policy line for pages framed by app_origin (None: framed by nobody)."""
        line = self._csp.get(app_origin)
        if line is None:
            if len(self._csp) > 64:  # origins come from signed passes, but keep the dict small regardless
                self._csp.clear()
            line = self._csp[app_origin] = ("Content-Security-Policy: " + page_policy(app_origin) + "\r\n").encode()
        return line

    def answer(self, target: str, cookie: str | None, accept_encoding: str | None,
               if_none_match: str | None) -> Answer | None:
        """The response to GET target with these headers, or None to let the full path answer."""
        site = self._site
        service = site.get(CONTENT)
        if service is None:
            return None
        where = entry_path(target)
        if where is None:
            return None
        slug, path = where
        # The principal, exactly as origin.pass_authenticator finds it, but only from memory.
        token = cookie_value(cookie)
        found = service.passes.verify(PassKind.COOKIE, token, site[CLOCK].now().timestamp()) if token else None
        p = None
        if found is not None and found.session_id != 0:
            lookup = site[MAIN_APP].get(SESSION_PRINCIPAL)
            if lookup is None:
                return None
            known, who = lookup.cached(found.session_id)
            if not known:
                return None
            if who is not None and who.user_id == found.user_id and not who.must_change_password:
                p = who
        # Access, exactly as ContentService.readable and routes_content.entry decide it.
        directory = service.directory
        if p is None and not directory.anonymous_allowed:
            return None
        lib = directory.by_slug.get(slug)
        if lib is None or lib.state.value != "ready" or not can_see(p, lib, directory.anonymous_facility()):
            return None
        blocklist = lib.blocklist
        if blocklist.blocks(path):
            return None
        hot = service.hot.peek(lib.uuid, path)
        if hot is None or (hot.path != path and blocklist.blocks(hot.path)):
            return None
        body = hot.body
        gzipped = False
        if hot.zippable and accepts_gzip(accept_encoding):
            packed = hot.packed or service.gzip.lookup(lib.uuid, hot.index)
            if packed is None:
                return None  # the full path compresses it (in a thread) and keeps it for next time
            body, gzipped = packed, True
        if hot.html:
            record_view(site, service, p, lib.id, hot.path, hot.title)
        csp = self.csp_line(found.app_origin if found is not None else None)
        signed_in = p is not None
        if if_none_match is not None and not_modified(if_none_match, hot.uuid, hot.index):
            _NOT_MODIFIED.inc()
            return Answer(304, _head(hot, 304, gzipped, signed_in) + csp, b"", f"{PREFIX}{slug}/{path}")
        metrics.SERVED_OK.count += 1
        return Answer(200, _head(hot, 200, gzipped, signed_in) + csp, body, f"{PREFIX}{slug}/{path}")


def _head(hot: HotEntry, status: int, gzipped: bool, signed_in: bool) -> bytes:
    """The status line and headers of an entry's 200 or 304 (the same as the full path sends), made once."""
    key = (status, gzipped and status == 200, signed_in)
    found = hot.wire.get(key)
    if found is None:
        if status == 200:
            headers = dict(hot.response_headers(gzipped, signed_in))
        else:  # as routes_content._respond answers a matching If-None-Match
            headers = dict(hot.response_headers(False, signed_in))
            del headers["Content-Type"]
            headers.pop("Content-Encoding", None)
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Modified'}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        found = hot.wire[key] = "".join(lines).encode("latin-1") + _ORIGIN_HEADERS
    return found
