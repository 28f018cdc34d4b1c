"""What the `secrets run` hijack tests share, local (`test_cli_run_hijack.py`) and remote
(`gunicorn/test_run_hijack_remote.py`): keys that a writer of a scope could store to run code as whoever runs
`secrets run` for that scope, and the checks that the attempt was refused before anything ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.e2e.conftest import Proc, one_error_line
from tests.harness import CANARY

# (key as a scope's writer would store it, the variable `secrets run` would make of it): one per denied family,
# spelled as the product maps keys (upper-cased, `.` and `-` to `_`). `_JAVA_OPTIONS` cannot come from a key name
# (keys start with a letter); tests/unit/test_run_env.py covers it.
HOOK_KEYS = [
    ("LD_PRELOAD", "LD_PRELOAD"),
    ("ld.library_path", "LD_LIBRARY_PATH"),
    ("DYLD_INSERT_LIBRARIES", "DYLD_INSERT_LIBRARIES"),
    ("BASH_ENV", "BASH_ENV"),
    ("env", "ENV"),
    ("bash_func_greet", "BASH_FUNC_GREET"),
    ("path", "PATH"),
    ("IFS", "IFS"),
    ("ps4", "PS4"),
    ("SHELLOPTS", "SHELLOPTS"),
    ("PYTHONSTARTUP", "PYTHONSTARTUP"),
    ("python.path", "PYTHON_PATH"),
    ("node-options", "NODE_OPTIONS"),
    ("PERL5OPT", "PERL5OPT"),
    ("perl5lib", "PERL5LIB"),
    ("RUBYOPT", "RUBYOPT"),
    ("rubylib", "RUBYLIB"),
    ("JAVA_TOOL_OPTIONS", "JAVA_TOOL_OPTIONS"),
    ("sprongus.api_url", "SPRONGUS_API_URL"),
    ("git.config_count", "GIT_CONFIG_COUNT"),
    ("GIT_SSH_COMMAND", "GIT_SSH_COMMAND"),
    ("npm_config_script_shell", "NPM_CONFIG_SCRIPT_SHELL"),
    ("pager", "PAGER"),
    ("https_proxy", "HTTPS_PROXY"),
    ("ssl.cert_file", "SSL_CERT_FILE"),  # a CA the writer chose; runner and tests often set it: the hook rule is first
    ("requests-ca-bundle", "REQUESTS_CA_BUNDLE"),
    ("node.tls_reject_unauthorized", "NODE_TLS_REJECT_UNAUTHORIZED"),
    ("sslkeylogfile", "SSLKEYLOGFILE"),
    ("vault.cacert", "VAULT_CACERT"),  # what a `sprongus` inside COMMAND would trust for Vault transit
    ("aws.endpoint_url_kms", "AWS_ENDPOINT_URL_KMS"),
]
# The child `secrets run` would start: it leaves a marker, so a test can tell whether anything ran.
TOUCH = "import sys; open(sys.argv[1], 'w').write('ran')"


def hook_value(variable: str) -> str:
    return f"{CANARY}-{variable}"


def hook_items(directory: Path, scope: str) -> str:
    """A JSON import file with every hook key in `scope` (each value holds the canary)."""
    path = directory / "hooks.json"
    path.write_text(json.dumps({"items": [{"scope": scope, "key": key, "value": hook_value(variable)}
                                          for key, variable in HOOK_KEYS]}))
    return str(path)


def bash_env_script(directory: Path) -> tuple[Path, Path]:
    """(script, marker): a BASH_ENV script that writes the marker when bash sources it."""
    script, marker = directory / "hook.sh", directory / "hooked"
    script.write_text(f"echo hooked > '{marker}'\n")
    return script, marker


def run_argv(scope: str, key: str, marker: Path, *options: str) -> list[str]:
    """`secrets run` of one key (as its own prefix: no other hook key starts with it) with the marker child."""
    return ["secrets", "run", scope, "--prefix", key, *options, "--", sys.executable, "-c", TOUCH, str(marker)]


def assert_refused(proc: Proc, marker: Path, *naming: str) -> str:
    """Exit 2 with one error line naming each of `naming`, no value anywhere, and nothing started."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = one_error_line(proc.stderr)
    for text in naming:
        assert text in line, line
    assert CANARY not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert not marker.exists()
    return line
