"""An error line on the CLI's stderr is one line with nothing a terminal acts on: its text may come from a server
(a KMS's error code, an API's detail), and an escape code in it could clear the screen, recolour what follows,
write the clipboard (OSC 52) or start a forged line."""

from __future__ import annotations

import pytest

from sprongus.domain.errors import KeyProviderError
from sprongus.domain.text import one_printable_line
from sprongus.entrypoints.cli.errors import fail


def test_an_error_from_elsewhere_prints_as_one_line_of_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail(KeyProviderError("key \x1b[2Jgone\x1b]52;c;cHduZWQ=\x07\r\nerror: all fine \u202eevil"))
    err = capsys.readouterr().err
    assert err == "error: key \\x1b[2Jgone\\x1b]52;c;cHduZWQ=\\x07\\r\\nerror: all fine \\u202eevil\n"
    assert exit_.exit_code == 7


def test_plain_text_and_other_scripts_are_kept() -> None:
    assert one_printable_line("clé introuvable: 鍵") == "clé introuvable: 鍵"
