"""What of a KMS's own error text a message repeats: its plain words, never what the request carried."""

from __future__ import annotations

import base64

import pytest

from sprongus.adapters.kms_answers import code_word, server_words

DEK = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(("text", "shown"), [
    ("encryption key not found", "encryption key not found"),
    ("invalid key_version", "invalid key_version"),
    ("failed to decode plaintext as base64", "failed to decode plaintext as base64"),
    ("unknown key type aes256-gcm96", "unknown key type aes256-gcm96"),
    ("context must be provided for derived key; 'plaintext' is not set", "context must be provided for derived key; "
                                                                         "'plaintext' is not set"),
    (f"invalid request hvs.CAESICanaryVaultToken7f3e {DEK}", "invalid request ..."),
    ("\x1b[2J\x1b[31mFORGED\x1b[0m\r\nsee https://evil.example/x?t=1", "... see ..."),
])
def test_server_words(text: str, shown: str) -> None:
    assert server_words(text) == shown


def test_no_part_of_a_token_or_a_data_key_survives() -> None:
    for secret in ("hvs.CAESICanaryVaultToken7f3e", DEK, "s.AbCdEfGhIjKlMnOpQrStUvWx", "ya29.a0AfH6SMBx-Canary"):
        shown = server_words(f"error: {secret} was refused")
        assert secret not in shown and secret[:8] not in shown


def test_code_word() -> None:
    assert code_word("AccessDeniedException") == "AccessDeniedException"
    assert code_word("ForbiddenByRbac") == "ForbiddenByRbac"
    for bad in ("Bearer eyJ0eXAi", "Canary7f3e", "\x1b[2J", "", None, 5, "a" * 65):
        assert code_word(bad) is None


def test_a_long_text_is_cut_at_a_word_within_200_characters() -> None:
    shown = server_words("word " * 300)
    assert len(shown) <= 200 and shown.endswith(" word ...") and "wor ..." not in shown
