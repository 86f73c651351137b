"""Strict config: unknown keys, wrong types and bad values name the key and the file; env overrides; masking."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import MASK, ConfigError, describe, load_config
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={}, cwd=tmp_path)
    assert config.http.port == 8080
    assert config.database_path == Path("/var/lib/appliance/appliance.db")


def test_dev_puts_everything_under_the_start_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), dev=True, env={}, cwd=tmp_path)
    assert config.paths.data_dir == tmp_path / "var"
    assert config.paths.content_root == tmp_path / "content-cache"
    assert config.database_path == tmp_path / "var" / "appliance.db"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nprot = 80\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={}, cwd=tmp_path)
    assert str(err.value) == f"{path}: unknown key http.prot"


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[htp]\nport = 80\n")
    with pytest.raises(ConfigError, match=r"unknown section \[htp\]"):
        load_config(path, env={}, cwd=tmp_path)


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env={}, cwd=tmp_path)
    assert str(err.value) == f"{path}: http.port must be an integer (got str)"


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = true\n")
    with pytest.raises(ConfigError, match="http.port must be an integer"):
        load_config(path, env={}, cwd=tmp_path)


def test_bad_value_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"http.port must be at most 65535 \(got 70000\)"):
        load_config(path, env={}, cwd=tmp_path)


def test_bad_choice(tmp_path: Path) -> None:
    path = write(tmp_path, '[logging]\nlevel = "loud"\n')
    with pytest.raises(ConfigError, match="logging.level must be one of"):
        load_config(path, env={}, cwd=tmp_path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http\nport=1")
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))}: not valid TOML"):
        load_config(path, env={}, cwd=tmp_path)


def test_env_override_wins_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 8081\n")
    config = load_config(path, env={"APPLIANCE_HTTP__PORT": "9090", "APPLIANCE_HTTP__SECURE_COOKIES": "yes"},
                         cwd=tmp_path)
    assert config.http.port == 9090
    assert config.http.secure_cookies is True


def test_env_override_bad_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), env={"APPLIANCE_HTTP__PORT": "x"}, cwd=tmp_path)
    assert str(err.value) == "APPLIANCE_HTTP__PORT: http.port must be an integer (got 'x')"


def test_env_override_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment: unknown key http.nope"):
        load_config(write(tmp_path, ""), env={"APPLIANCE_HTTP__NOPE": "1"}, cwd=tmp_path)


def test_env_list_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={"APPLIANCE_HTTP__TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16"},
                         cwd=tmp_path)
    assert config.http.trusted_proxies == ["10.0.0.0/8", "192.168.0.0/16"]


def test_relative_paths_are_relative_to_start_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[paths]\ndata_dir = "data"\n'), env={}, cwd=tmp_path)
    assert config.paths.data_dir == tmp_path / "data"


def test_secrets_are_masked(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "nats://u:hunter2@hub:4222"\n[health]\nmetrics_token = "s3cret-token"\n')
    config = load_config(path, env={}, cwd=tmp_path)
    shown = config.as_dict()
    assert shown["bus"]["url"] == MASK
    assert shown["health"]["metrics_token"] == MASK
    assert config.as_dict(mask_secrets=False)["bus"]["url"].endswith("@hub:4222")


def test_check_config_cli_masks_and_reports_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "nats://u:hunter2@hub:4222"\n')
    out = subprocess.run([sys.executable, "-m", "appliance", "check-config", "--config", str(path)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout
    assert f'url = "{MASK}"' in out.stdout
    bad = write(tmp_path, "[http]\nprot = 1\n")
    out = subprocess.run([sys.executable, "-m", "appliance", "check-config", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"appliance: config error: {bad}: unknown key http.prot"


def test_every_key_has_help_and_is_documented_in_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = []
    for section, key, _default, help_text, _secret in describe():
        assert help_text, f"{section}.{key} has no help text"
        if f"{section}.{key}" not in readme:
            missing.append(f"{section}.{key}")
    assert not missing, f"config keys not documented in README.md: {missing}"


def test_readme_config_reference_is_current() -> None:
    from appliance.config import markdown_reference

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- config-reference:start -->\n", 1)[1].split("<!-- config-reference:end -->", 1)[0]
    assert block == markdown_reference(), "README config reference is stale: run .ci/update-readme"
