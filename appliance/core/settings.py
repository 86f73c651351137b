"""How a config key is declared: `setting(default, help=...)` on a frozen dataclass field.

Lives in the core, apart from the loader in `appliance.config`, so that a feature can declare its
settings section without importing the module that assembles every section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any


def setting(
    default: Any,
    *,
    help: str,  # noqa: A002 - the word operators see in --describe
    secret: bool = False,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """Declare one config key with its default, one-line help and constraints."""
    meta = {"help": help, "secret": secret, "min": min, "max": max, "choices": choices, "check": check}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
