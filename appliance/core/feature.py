"""The feature contract: what a feature package declares, and the registry that finds them.

A feature (auth, content, media, sync, ...) ships a `manifest.py` with one `Feature` and registers it
under the `appliance.features` entry-point group in pyproject.toml. The core reads only these
declarations: the settings sections for the configuration, a `setup(app)` to wire routes and contexts,
and a `register(subparsers)` for command-line sub-commands. As in Home Assistant, the core never imports
an integration by name; an installed package can add a feature without editing the core.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)
FEATURES_GROUP = "appliance.features"


class FeatureError(Exception):
    """A feature declaration that cannot be used (bad reference, clashing name or section)."""


@dataclass(frozen=True)
class Feature:
    """One feature package's declaration.

    `setup` and `cli` are "module:function" references, resolved only when used, so that reading the
    configuration never imports a feature's routes, services or their heavy dependencies.
    """

    name: str
    order: int
    sections: Mapping[str, type] = field(default_factory=dict)
    setup: str | None = None
    cli: str | None = None
    description: str = ""

    def setup_function(self) -> Callable[[Any], None] | None:
        """The resolved `setup(app)` callable, if the feature has one."""
        return resolve(self.setup) if self.setup else None

    def cli_function(self) -> Callable[[Any], None] | None:
        """The resolved `register(subparsers)` callable, if the feature has sub-commands."""
        return resolve(self.cli) if self.cli else None


def resolve(reference: str) -> Any:
    """Import "package.module:attribute" and return the attribute."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise FeatureError(f"{reference!r} is not a 'module:attribute' reference")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise FeatureError(f"{reference!r}: {module_name} has no attribute {attribute}") from None


@cache
def features() -> tuple[Feature, ...]:
    """Every registered feature, in setup order (lower `order` first, then name)."""
    found: list[Feature] = []
    for ep in entry_points(group=FEATURES_GROUP):
        declared = ep.load()
        if not isinstance(declared, Feature):
            raise FeatureError(f"entry point {ep.name} = {ep.value} is not an appliance Feature")
        if declared.name != ep.name:
            raise FeatureError(f"entry point {ep.name} declares a feature named {declared.name!r}")
        found.append(declared)
    return check(found)


def check(found: list[Feature]) -> tuple[Feature, ...]:
    """Refuse two features with one name or one settings section; return them in setup order."""
    names: set[str] = set()
    sections: dict[str, str] = {}
    for feature in found:
        if feature.name in names:
            raise FeatureError(f"two features are named {feature.name!r}")
        names.add(feature.name)
        for section in feature.sections:
            if section in sections:
                raise FeatureError(
                    f"settings section [{section}] is declared by {sections[section]} and {feature.name}"
                )
            sections[section] = feature.name
    return tuple(sorted(found, key=lambda f: (f.order, f.name)))
