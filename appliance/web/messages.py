"""API error codes as plain sentences for people (the JSON API keeps its codes; pages show these)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.web import i18n
from appliance.web.i18n import N_, gettext

if TYPE_CHECKING:
    from aiohttp import web

    from appliance.core.errors import ApiError

SENTENCES = {
    "invalid_credentials": N_("The username or password is not right. Check them and try again."),
    "account_locked": N_("Too many failed sign-ins. Wait a few minutes, then try again."),
    "rate_limited": N_("Too many requests at once. Wait a moment, then try again."),
    "csrf_failed": N_("This form had expired. Reload the page and send it again."),
    "password_change_required": N_("Choose your own password before you continue."),
    "wrong_password": N_("The current password is not right."),
    "weak_password": N_("Choose a password of at least 8 characters that mixes letters with digits or symbols."),
    "invalid_password": N_("Choose a password of at least 8 characters that mixes letters with digits or symbols."),
    "password_too_long": N_("That password is too long."),
    "invalid_username": N_("A username may hold only letters, digits and . _ @ -"),
    "username_taken": N_("That username is already in use."),
    "directory_unavailable": N_("The directory cannot be reached right now; local accounts still work."),
    "not_local_account": N_("This account's password is managed by the directory."),
    "search_busy": N_("Search is busy right now. Try again in a moment."),
    "query_too_long": N_("That search is too long. Use fewer words."),
    "unknown_books": N_("Some of those books are not available to you."),
    "upstream_unreachable": N_("The online catalog cannot be reached right now (no internet?). Try again later."),
    "invalid_url": N_("That address cannot be used: give the http(s) address of a .zim file."),
    "unauthorized": N_("Please sign in to see this page."),
    "forbidden": N_("You do not have permission to see this page."),
    "not_found": N_("We could not find that page."),
    "internal_error": N_("Something went wrong on the appliance. Staff can find the details in the log."),
    "invalid_parameter": N_("Part of that request was not valid."),
    "invalid_body": N_("Part of that form was not valid."),
    "conflict": N_("That clashes with what is already there."),
    "payload_too_large": N_("That is too large to send."),
    "method_not_allowed": N_("That action is not possible here."),
}


def sentence(code: str, fallback: str = "") -> str:
    """The translated sentence for an error code (the API message, capitalised, when there is none)."""
    found = SENTENCES.get(code)
    if found is not None:
        return gettext(found)
    text = fallback or code.replace("_", " ")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def error_sentence(request: web.Request, exc: ApiError) -> str:
    """An API error as a sentence in the request's language (what a page shows instead of the code)."""
    with i18n.active(i18n.locale_of(request)):
        return sentence(exc.code, exc.message)
