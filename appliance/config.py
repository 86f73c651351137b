"""Load and validate the TOML configuration and its APPLIANCE_SECTION__KEY environment overrides.

Validation is strict on purpose (as in Frigate): an unknown key, a wrong type or a bad value stops
start-up with one line that names the key and the file, because a typo in a facility's config must
never silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.core.egress import EgressSettings
from appliance.core.settings import setting

ENV_PREFIX = "APPLIANCE_"
SYSTEM_CONFIG = Path("/etc/appliance/appliance.toml")
LOCAL_CONFIG = Path("appliance.toml")
MASK = "********"


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming the key and where it came from."""


# --------------------------------------------------------------------------- core sections


def _check_host(value: str) -> str | None:
    return None if value and " " not in value else "must be a host name or address"


def _check_origin(value: str) -> str | None:
    if not value:
        return None
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest or " " in rest:
        return "must be an origin like https://content.example.lan (scheme and host, optional port, no path)"
    return None


@dataclass(frozen=True)
class HttpSettings:
    """[http]: the listening socket and request handling."""

    host: str = setting("127.0.0.1", help="address to listen on (0.0.0.0 for the whole LAN)", check=_check_host)
    port: int = setting(8080, help="TCP port to listen on (0 picks a free port)", min=0, max=65535)
    workers: int = setting(0, help="HTTP worker processes sharing the port (0 = number of CPUs)", min=0, max=64)
    max_body_bytes: int = setting(
        1_048_576, help="largest request body accepted on JSON/form routes (413 beyond)", min=1024
    )
    shutdown_timeout_s: float = setting(
        15.0, help="seconds in-flight requests may take to finish at shutdown", min=0, max=600
    )
    secure_cookies: bool = setting(False, help="mark cookies Secure even when the daemon itself serves plain HTTP")
    event_loop: str = setting(
        "uvloop", help="event loop of the daemon's processes: uvloop (libuv, less CPU per request) or asyncio",
        choices=("uvloop", "asyncio"))
    trusted_proxies: list[str] = setting(
        [], help="CIDRs of reverse proxies whose X-Forwarded-For is believed (empty: none)"
    )
    content_port: int = setting(
        -1, help="port of the content origin that serves archive pages (-1: http.port + 1; 0: a free port)",
        min=-1, max=65535,
    )
    content_host: str = setting(
        "", help="host name browsers use for the content origin (empty: the host name they use for the app)",
        check=lambda v: None if " " not in v and "/" not in v and ":" not in v else "must be a bare host name",
    )
    content_url: str = setting(
        "", help="public origin of the content site behind a reverse proxy, e.g. https://content.school.lan "
                 "(empty: built from content_host and content_port)", check=_check_origin,
    )


@dataclass(frozen=True)
class PathsSettings:
    """[paths]: where data and content live."""

    data_dir: Path = setting(Path("/var/lib/appliance"), help="database, NATS store, keys and run files")
    content_root: Path = setting(
        Path("/var/lib/appliance/content-cache"), help="content root holding zim/ and videos/"
    )
    credentials_key_file: Path = setting(
        Path(""),
        help="AES key encrypting provider credentials and webhook secrets (empty: $CREDENTIALS_DIRECTORY/sync-key, "
        "else <data_dir>/secrets/sync.key, created 0600 on first start)",
    )


@dataclass(frozen=True)
class DatabaseSettings:
    """[database]: SQLite."""

    path: Path = setting(Path(""), help="SQLite file (empty: <data_dir>/appliance.db)")
    read_pool_size: int = setting(4, help="read-only connections per process", min=1, max=32)
    busy_timeout_ms: int = setting(5000, help="how long a writer waits for the lock across processes", min=0)
    backup_keep: int = setting(3, help="pre-migration backups kept in <data_dir>/backups", min=1, max=100)


@dataclass(frozen=True)
class BusSettings:
    """[bus]: the embedded NATS server with JetStream, or an external one."""

    url: str = setting("", help="external NATS URL; empty runs the embedded nats-server", secret=True)
    credentials_file: Path = setting(
        Path(""), help="user/password JSON for an external NATS (empty: none)"
    )
    port: int = setting(0, help="embedded server client port on 127.0.0.1 (0 picks a free one)", min=0, max=65535)
    binary: Path = setting(Path(""), help="nats-server binary (empty: the one beside the Python interpreter)")
    max_memory_bytes: int = setting(64 * 1024 * 1024, help="JetStream memory store limit", min=1024 * 1024)
    max_file_bytes: int = setting(2 * 1024**3, help="JetStream file store limit", min=1024 * 1024)
    monitor_port: int = setting(0, help="embedded server HTTP monitoring port on 127.0.0.1 (0: off)", min=0)
    leaf_remote_url: str = setting(
        "", help="hub leaf-node URL (nats-leaf://host:port) this appliance joins; empty: none", secret=True
    )
    leaf_credentials_file: Path = setting(Path(""), help="credentials file for the leaf-node link")
    jetstream_domain: str = setting("", help="JetStream domain of this appliance (needed with a leaf link)")
    restart_backoff_max_s: float = setting(
        30.0, help="longest wait between restarts of a crashed nats-server", min=0.1
    )


@dataclass(frozen=True)
class LoggingSettings:
    """[logging]: log level and format."""

    level: str = setting("info", help="debug, info, warning or error", choices=("debug", "info", "warning", "error"))
    format: str = setting(
        "auto", help="json, text, or auto (text on a terminal or in --dev, json otherwise)",
        choices=("auto", "json", "text"),
    )
    access_log: bool = setting(True, help="log one line per HTTP request")


@dataclass(frozen=True)
class HealthSettings:
    """[health]: readiness thresholds."""

    min_free_disk_bytes: int = setting(
        512 * 1024 * 1024, help="/readyz fails when the data or content disk has less free space", min=0
    )
    watchdog: bool = setting(True, help="send WATCHDOG=1 to systemd when WatchdogSec is set")
    metrics_token: str = setting("", help="if set, /metrics needs Authorization: Bearer <token>", secret=True)


def _feature_sections() -> dict[str, type]:
    # The registry loads only each feature's manifest and settings classes, never its routes or services.
    from appliance.core.feature import features

    found: dict[str, type] = {}
    for feature in features():
        for name, cls in feature.sections.items():
            if name in CORE_SECTIONS:
                raise ConfigError(f"feature {feature.name} declares the core section [{name}]")
            found[name] = cls
    return found


CORE_SECTIONS: dict[str, type] = {
    "http": HttpSettings,
    "paths": PathsSettings,
    "database": DatabaseSettings,
    "bus": BusSettings,
    "logging": LoggingSettings,
    "health": HealthSettings,
    "egress": EgressSettings,
}


def sections() -> dict[str, type]:
    """Every known section, core first, in the order they are documented."""
    return {**CORE_SECTIONS, **_feature_sections()}


class Config:
    """The effective configuration: one frozen dataclass per section, plus where it came from."""

    def __init__(self, values: Mapping[str, Any], *, source: str, dev: bool) -> None:
        self._sections = dict(values)
        self.source = source
        self.dev = dev

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with some keys of one section changed (used by tests and CLI flags)."""
        values = dict(self._sections)
        values[section] = dataclasses.replace(values[section], **changes)
        return Config(values, source=self.source, dev=self.dev)

    @property
    def database_path(self) -> Path:
        """The SQLite file, defaulting to <data_dir>/appliance.db."""
        configured: Path = self.database.path
        return configured if str(configured) not in ("", ".") else self.paths.data_dir / "appliance.db"

    def as_dict(self, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        """The effective config as plain data, secrets masked unless asked otherwise."""
        out: dict[str, dict[str, Any]] = {}
        for name, value in self._sections.items():
            section: dict[str, Any] = {}
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                if mask_secrets and f.metadata.get("secret") and item not in ("", None, [], {}):
                    item = MASK
                elif isinstance(item, Path):
                    item = "" if str(item) == "." else str(item)
                section[f.name] = item
            out[name] = section
        return out


# --------------------------------------------------------------------------- loading


def find_config_file(explicit: Path | None) -> Path | None:
    """The file to read: --config, else ./appliance.toml, else /etc/appliance/appliance.toml, else none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return explicit
    for candidate in (LOCAL_CONFIG, SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def dev_defaults(cwd: Path) -> dict[str, dict[str, Any]]:
    """What --dev changes: everything under the folder the daemon was started from."""
    return {
        "paths": {"data_dir": str(cwd / "var"), "content_root": str(cwd / "content-cache")},
        "logging": {"format": "text"},
    }


def load_config(
    path: Path | None = None,
    *,
    dev: bool = False,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Read defaults, --dev defaults, the TOML file, env overrides and explicit overrides, in that order."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    file = find_config_file(path)
    source = str(file) if file else "(defaults)"
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if dev:
        layers.append(("--dev", dev_defaults(cwd)))
    if file is not None:
        try:
            with file.open("rb") as fh:
                layers.append((str(file), tomllib.load(fh)))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    layers.append(("environment", _env_layer(env)))
    if overrides:
        layers.append(("overrides", overrides))

    known = sections()
    merged: dict[str, dict[str, tuple[str, Any]]] = {name: {} for name in known}
    for origin, layer in layers:
        for section_name, section_values in layer.items():
            if section_name not in known:
                raise ConfigError(f"{origin}: unknown section [{section_name}]")
            if not isinstance(section_values, Mapping):
                raise ConfigError(f"{origin}: [{section_name}] must be a table")
            for key, value in section_values.items():
                merged[section_name][key] = (origin, value)

    values = {name: _build_section(name, cls, merged[name], cwd) for name, cls in known.items()}
    return Config(values, source=source, dev=dev)


def _env_layer(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        layer.setdefault(section.lower(), {})[key.lower()] = _EnvValue(raw, name)
    return layer


@dataclass(frozen=True)
class _EnvValue:
    raw: str
    variable: str


def _build_section(name: str, cls: type, given: dict[str, tuple[str, Any]], cwd: Path) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, (origin, value) in given.items():
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {name}.{key}")
        where = value.variable if isinstance(value, _EnvValue) else origin
        try:
            converted = _convert(value, hints[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {name}.{key} {exc}") from None
        kwargs[key] = converted
        problem = _check(fields[key], converted)
        if problem:
            raise ConfigError(f"{where}: {name}.{key} {problem}")
    section = cls(**kwargs)
    # Relative paths are relative to the folder the daemon starts in, so that --dev and a checkout agree.
    changes = {}
    for key in fields:
        val = getattr(section, key)
        if hints[key] is Path and str(val) not in ("", ".") and not val.is_absolute():
            changes[key] = cwd / val
    return dataclasses.replace(section, **changes) if changes else section


def _check(f: dataclasses.Field[Any], value: Any) -> str | None:
    meta = f.metadata
    if meta.get("min") is not None and value < meta["min"]:
        return f"must be at least {meta['min']} (got {value})"
    if meta.get("max") is not None and value > meta["max"]:
        return f"must be at most {meta['max']} (got {value})"
    if meta.get("choices") and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])} (got {value!r})"
    check = meta.get("check")
    return check(value) if check else None


def _convert(value: Any, hint: Any) -> Any:
    """Coerce a TOML value (typed) or an env string (untyped) to the declared type, or raise."""
    from_env = isinstance(value, _EnvValue)
    raw = value.raw if isinstance(value, _EnvValue) else value
    origin = typing.get_origin(hint)
    if hint is bool:
        if from_env:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"must be true or false (got {raw!r})")
        if not isinstance(raw, bool):
            raise TypeError(f"must be true or false (got {type(raw).__name__})")
        return raw
    if hint is int:
        if from_env:
            try:
                return int(raw.strip())
            except ValueError:
                raise ValueError(f"must be an integer (got {raw!r})") from None
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError(f"must be an integer (got {type(raw).__name__})")
        return raw
    if hint is float:
        if from_env:
            try:
                return float(raw.strip())
            except ValueError:
                raise ValueError(f"must be a number (got {raw!r})") from None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise TypeError(f"must be a number (got {type(raw).__name__})")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise TypeError(f"must be a string (got {type(raw).__name__})")
        return raw
    if hint is Path:
        if not isinstance(raw, str):
            raise TypeError(f"must be a path string (got {type(raw).__name__})")
        if "\x00" in raw:
            raise ValueError("must not contain NUL")
        return Path(raw)
    if origin is list:
        if from_env:
            raw = _env_collection(raw, list)
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise TypeError("must be a list of strings")
        return list(raw)
    if origin is dict:
        if from_env:
            raw = _env_collection(raw, dict)
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise TypeError("must be a table of strings")
        return dict(raw)
    if isinstance(hint, types.UnionType):
        raise TypeError("has an unsupported type")
    raise TypeError(f"has an unsupported type {hint!r}")


def _env_collection(raw: str, kind: type) -> Any:
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("is not valid JSON") from None
    if kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ValueError("must be a JSON object")


def describe() -> list[tuple[str, str, Any, str, bool]]:
    """(section, key, default, help, secret) for every key, for docs and `check-config --describe`."""
    rows = []
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            rows.append((name, f.name, default, f.metadata.get("help", ""), bool(f.metadata.get("secret"))))
    return rows


def markdown_reference() -> str:
    """The README's configuration reference table, generated so that it cannot drift from the code."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for section, key, default, help_text, secret in describe():
        if isinstance(default, Path):
            default = "" if str(default) == "." else str(default)
        shown = "(secret)" if secret and default else json.dumps(default)
        lines.append(f"| `{section}.{key}` | `{shown}` | {help_text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
