"""What a KMS's answer may put in front of a person: its own words, only as far as they cannot be anything else.

A KMS (or whatever answers at its address: a proxy, a gateway, a hostile server) writes its error text itself, and
an error's message reaches the CLI's stderr and the API's log. A server that repeated the request back put there
the token the client had sent and the data key it had asked to wrap; escape codes and line breaks in it forged
lines on the user's terminal. So a message carries the server's plain words only (`server_words`), an error code
only if it is spelt like one (`code_word`), and nothing else the server chose.
"""

from __future__ import annotations

import re

# A word of an error message: letters, with an apostrophe or hyphen inside, or a lower-case name (`key_version`,
# `aes256-gcm96`, `base64`), with punctuation after. Anything else (tokens and base64, which mix cases or hold
# `.+/=`, URLs, paths, control characters) is not repeated, nor a word longer than a real one.
_WORD = re.compile(r"[(\"']?(?:[A-Za-z][A-Za-z'-]{0,23}|[a-z0-9][a-z0-9_-]{0,23})[,.:;)\"']{0,2}")
_CODE = re.compile(r"[A-Za-z]{1,64}")
ELIDED = "..."
MAX_WORDS = 200  # characters


def server_words(text: object) -> str:
    """`text` with only its plain words kept; each run of anything else becomes one `...`."""
    kept: list[str] = []
    for word in str(text).split():
        if _WORD.fullmatch(word):
            kept.append(word)
        elif not kept or kept[-1] != ELIDED:
            kept.append(ELIDED)
    shown = " ".join(kept)
    if len(shown) <= MAX_WORDS:
        return shown
    return shown[:MAX_WORDS - len(ELIDED)].rsplit(" ", 1)[0] + " " + ELIDED


def code_word(value: object) -> str | None:
    """An error code as vendors spell theirs (`AccessDeniedException`, `KeyDisabled`): letters only; else None."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None


class RedirectRefused(Exception):
    """The KMS answered with a redirect, which is not followed: the request carried the token (and, to wrap, the
    data key), and following would hand both to whichever address the answer named."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
