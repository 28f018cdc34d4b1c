"""sprongus: an envelope-encrypted secrets store (SecretKV) with a CLI and a REST API."""

__version__ = "0.1.0"
