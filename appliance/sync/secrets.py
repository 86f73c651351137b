"""Provider credentials at rest: the vault now lives in the core (appliance.core.vault); kept for imports."""

from appliance.core.vault import AAD, PREFIX, SYSTEMD_NAME, CredentialsError, Vault, key_path, load_or_create_key

__all__ = ["AAD", "PREFIX", "SYSTEMD_NAME", "CredentialsError", "Vault", "key_path", "load_or_create_key"]
