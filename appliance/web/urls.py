"""Safe redirect targets shared by the middlewares and the pages."""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit

_PROBE_ORIGIN = "http://appliance.invalid"


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (other hosts, schemes, //x) becomes /.

    Judged after the normalisation a browser applies before following it (WHATWG URL parsing): leading and
    trailing control characters and spaces dropped, tab and newline removed anywhere, backslash read as a
    slash. So `/\t/evil.example` (a browser reads `//evil.example`) and `/\\evil.example` both become `/`.
    The normalised path is what is returned, so the browser follows exactly what was checked.
    """
    if not value or len(value) > 2000:
        return "/"
    cleaned = "".join(ch for ch in value.strip("".join(map(chr, range(0x21)))) if ch not in "\t\n\r")
    cleaned = cleaned.replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//"):
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in cleaned):
        return "/"
    try:
        resolved = urlsplit(urljoin(_PROBE_ORIGIN + "/", cleaned))
    except ValueError:
        return "/"
    if f"{resolved.scheme}://{resolved.netloc}" != _PROBE_ORIGIN:
        return "/"
    return cleaned


def login_redirect(path_qs: str) -> str:
    """Where a browser without a session is sent for a page that needs one."""
    return "/login?next=" + quote(safe_next(path_qs), safe="/")
