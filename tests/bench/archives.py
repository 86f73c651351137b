"""The benchmarks' real archives, built once from Debian documentation packages and cached.

- `pgdocs`: PostgreSQL 15's HTML manual (Debian `postgresql-doc-15`), 1,169 pages, median ~6.9 KB: the
  small-page archive, typical of reference docs and of many encyclopedia articles.
- `pydocs`: Python 3.11's documentation (Debian `python3.11-doc`), ~530 pages, median ~54 KB.

Both are packed with shared/tools/zim_from_html.py (full-text indexed) into CACHE_DIR
(/var/cache/appliance-tests, or $APPLIANCE_BENCH_CACHE), or taken from shared/testdata/zim/ when a copy
is there. A missing documentation package is installed with apt-get when running as root.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TOOL = SHARED / "tools" / "zim_from_html.py"
CACHE_DIR = Path(os.environ.get("APPLIANCE_BENCH_CACHE", "/var/cache/appliance-tests"))


@dataclass(frozen=True)
class Source:
    """A documentation package and the archive made from it."""

    name: str  # the book name (kiwix-serve) and slug (appliance): the file's stem
    docs: Path
    package: str
    title: str
    queries: tuple[str, ...]  # repeated search queries (result cache hits after the first)


PGDOCS = Source("pgdocs", Path("/usr/share/doc/postgresql-doc-15/html"), "postgresql-doc-15",
                "PostgreSQL 15 documentation",
                ("select", "create index", "vacuum", "transaction isolation", "foreign key", "json",
                 "trigger", "replication", "window function", "sequence", "partition", "explain", "role",
                 "extension", "backup", "locale", "full text search", "cursor", "constraint", "timestamp"))
PYDOCS = Source("pydocs", Path("/usr/share/doc/python3.11/html"), "python3.11-doc", "Python 3.11 docs",
                ("list comprehension", "asyncio task", "dictionary", "unicode string", "exception handling",
                 "decorator", "generator", "import system", "socket", "thread", "regular expression", "class",
                 "iterator", "context manager", "subprocess", "json", "datetime", "logging", "unittest",
                 "pathlib"))
SOURCES = {s.name: s for s in (PGDOCS, PYDOCS)}


def build(source: Source, cache: Path = CACHE_DIR) -> Path:
    """The archive's path, built on first use (about 20 s for pgdocs, a minute for pydocs)."""
    shared = SHARED / "testdata" / "zim" / f"{source.name}.zim"
    if shared.exists():
        return shared
    target = cache / f"{source.name}.zim"
    if target.exists():
        return target
    if not source.docs.is_dir():
        if os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "-q", source.package], check=True, capture_output=True)
        if not source.docs.is_dir():
            raise SystemExit(f"{source.docs} is missing: apt-get install {source.package}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{source.name}.building-{os.getpid()}.zim"
    try:
        subprocess.run([sys.executable, str(TOOL), str(source.docs), str(tmp), "--title", source.title],
                       check=True, capture_output=True)
        tmp.rename(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class Page:
    """An HTML article, its size, the same-archive assets it loads and the articles it links to."""

    path: str
    size: int
    assets: tuple[str, ...]
    links: tuple[str, ...]


_REF = re.compile(rb"""(?:href|src)\s*=\s*["']([^"'#?]+)""", re.I)


def pages(zim: Path) -> list[Page]:
    """Every HTML article with what a browser would fetch from it (resolved inside the archive)."""
    from posixpath import dirname, normpath

    from libzim.reader import Archive

    archive = Archive(zim)
    out = []
    for i in range(archive.all_entry_count):
        entry = archive._get_entry_by_id(i)  # noqa: SLF001 - the only way to enumerate entries
        if entry.is_redirect:
            continue
        item = entry.get_item()
        if not item.mimetype.startswith("text/html"):
            continue
        assets, links = [], []
        for ref in _REF.findall(bytes(item.content)):
            text = ref.decode("utf-8", "replace")
            if ":" in text or text.startswith("/"):
                continue
            target = normpath(f"{dirname(entry.path)}/{text}".lstrip("/"))
            if not archive.has_entry_by_path(target):
                continue
            (links if target.endswith((".html", ".htm")) else assets).append(target)
        out.append(Page(entry.path, item.size, tuple(dict.fromkeys(assets)), tuple(dict.fromkeys(links))))
    return out


def article_paths(zim: Path, n: int) -> list[str]:
    """n random HTML article paths (same seed, same list for both servers)."""
    paths = [p.path for p in pages(zim)]
    random.Random(42).shuffle(paths)
    return paths[:n]


def distinct_queries(zim: Path, n: int) -> list[str]:
    """n different queries made of words from the archive's titles (so each finds something, none repeats)."""
    from libzim.reader import Archive

    archive = Archive(zim)
    words: set[str] = set()
    for i in range(archive.all_entry_count):
        entry = archive._get_entry_by_id(i)  # noqa: SLF001
        words.update(w.lower() for w in re.findall(r"[A-Za-z]{4,}", entry.title))
    vocab = sorted(words)
    rng = random.Random(7)
    queries = list(vocab)
    rng.shuffle(queries)
    seen = set(queries)
    while len(queries) < n and len(vocab) > 1:
        q = " ".join(rng.sample(vocab, 2))
        if q not in seen:
            seen.add(q)
            queries.append(q)
    return queries[:n]


def rotate_lua(prefix: str, paths: list[str]) -> str:
    """wrk script cycling through the URLs."""
    items = ",".join(json.dumps(prefix + quote(p, safe="/")) for p in paths)
    return (f"local urls = {{{items}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n  return wrk.format(\"GET\", urls[(i % #urls) + 1])\nend\n")
