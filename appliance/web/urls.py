"""Safe redirect targets shared by the middlewares and the pages."""

from __future__ import annotations

from urllib.parse import quote


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (other hosts, schemes, //x) becomes /."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


def login_redirect(path_qs: str) -> str:
    """Where a browser without a session is sent for a page that needs one."""
    return "/login?next=" + quote(safe_next(path_qs), safe="/")
