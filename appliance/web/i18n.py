"""Message catalogues (Babel) and the language of a request: a `lang` cookie, else Accept-Language.

One catalogue (domain `messages`) holds every string of every template and page; features add no
catalogue of their own, so translators work in one place. The compiled `.mo` files are committed next to
their `.po` (a test checks they match), so an install needs no build step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from aiohttp import web
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
SUPPORTED = ("en", "es")
NAMES = {"en": "English", "es": "Español"}
LANG_COOKIE = "lang"
LOCALE_KEY = web.RequestKey("locale", str)
_current: contextvars.ContextVar[NullTranslations] = contextvars.ContextVar("translations")


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of a supported locale (English is the source language: no catalogue)."""
    if locale == DEFAULT or locale not in SUPPORTED:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [locale], domain=DOMAIN)


def parse_accept_language(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first (q=0 dropped, malformed parts ignored)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or len(tag) > 35 or tag == "*":
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose(cookie: str | None, accept_language: str) -> str:
    """The cookie's language if supported, else the best supported match of Accept-Language, else English."""
    if cookie in SUPPORTED:
        return cookie
    for tag in parse_accept_language(accept_language):
        primary = tag.split("-", 1)[0]
        if primary in SUPPORTED:
            return primary
    return DEFAULT


def locale_of(request: web.Request) -> str:
    """The request's language, chosen once."""
    found = request.get(LOCALE_KEY)
    if found is None:
        found = choose(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language", ""))
        request[LOCALE_KEY] = found
    return found


@contextlib.contextmanager
def active(locale: str) -> Iterator[None]:
    """Make `locale` the catalogue of gettext() inside the block (rendering is synchronous), then restore."""
    token = _current.set(translations(locale))
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    """Translate with the active catalogue (English when none is active)."""
    return _current.get(NullTranslations()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Plural-aware translation with the active catalogue."""
    return _current.get(NullTranslations()).ngettext(singular, plural, n)


def translate(request: web.Request, message: str) -> str:
    """Translate one message into the request's language (for flash messages built in handlers)."""
    return translations(locale_of(request)).gettext(message)


def N_(message: str) -> str:  # noqa: N802 - the conventional name the extractor looks for
    """Mark a string for extraction without translating it now."""
    return message


def set_language_cookie(response: web.StreamResponse, locale: str) -> None:
    """Remember a chosen language in this browser for a year (not a secret: readable by scripts is fine)."""
    if locale in SUPPORTED:
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, path="/", samesite="Lax", httponly=True)
