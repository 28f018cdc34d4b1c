"""`secrets run`'s environment rules: which variables the scope's keys become, and which of them are refused.

A key name is chosen by whoever may write the scope, and `secrets run` is run by someone else, often with more
rights (a CI runner, an operator). So a key must not be able to turn into code execution in the runner's process:
no loader, shell or interpreter hook, and no silent replacement of what the runner's environment already says.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Iterable, Mapping

from sprongus.domain.errors import ValidationError

_ENV_UNSAFE = re.compile(r"[.\-]")

# Each of these makes a dynamic loader, a shell or an interpreter load or run code the variable names (LD_PRELOAD,
# BASH_ENV, PYTHONSTARTUP, NODE_OPTIONS=--require ...), or changes which program a command name runs (PATH) or
# how a shell splits and traces words (IFS, PS4, SHELLOPTS). SPRONGUS_* would redirect a `sprongus` run inside
# COMMAND (another API URL or token, --remote on).
HOOK_NAMES = frozenset({
    "BASH_ENV", "ENV", "PATH", "IFS", "PS4", "SHELLOPTS", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB", "RUBYOPT",
    "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    # Beyond the usual list, the same kind of hook: glibc's iconv modules and tunables, Perl's and Node's module
    # paths and debugger, the JDK launcher's options, an interactive shell's prompt command and zsh's startup dir.
    "GCONV_PATH", "GLIBC_TUNABLES", "PERLLIB", "PERL5DB", "JDK_JAVA_OPTIONS", "NODE_PATH", "PROMPT_COMMAND",
    "ZDOTDIR",
    # bash expands $(...) in every prompt string at each prompt (promptvars is on by default), as in PS4.
    "PS0", "PS1", "PS2", "PS3",
    # Commands that tools run on their own (pagers, editors, askpass helpers, less's input filter, Lua's init).
    "PAGER", "MANPAGER", "EDITOR", "VISUAL", "BROWSER", "SSH_ASKPASS", "SUDO_ASKPASS", "LESSOPEN", "LESSCLOSE",
    "LUA_INIT",
    # Files that tools then load as code or trusted configuration, and proxies that redirect their traffic.
    "DOTNET_STARTUP_HOOKS", "OPENSSL_CONF", "OPENSSL_ENGINES", "PHPRC", "PHP_INI_SCAN_DIR", "KUBECONFIG",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "DOCKER_CONFIG", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
    "NO_PROXY", "FTP_PROXY", "CURL_HOME", "WGETRC", "HOSTALIASES", "RES_OPTIONS",
    # Which certificate authorities COMMAND's TLS clients trust, whether they check at all, and where they write
    # their session keys: a writer's CA (its PEM in another key, the file /proc/self/environ) made COMMAND's HTTPS,
    # a `sprongus` inside it with the runner's token included, trust whoever holds the network path.
    "SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "PIP_CERT",
    "HTTPLIB2_CA_CERTS", "CARGO_HTTP_CAINFO", "DENO_CERT", "BUNDLE_SSL_CA_CERT", "PGSSLROOTCERT", "PGSSLMODE",
    # The same for the KMS clients a `sprongus` inside COMMAND would use (hvac reads VAULT_CACERT and VAULT_CAPATH
    # itself; boto3 sends its calls to AWS_ENDPOINT_URL*), and for package tools, which also run what they fetch.
    "VAULT_CACERT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY", "VAULT_ADDR", "BAO_CACERT", "BAO_CAPATH", "BAO_SKIP_VERIFY",
    "BAO_ADDR", "GOINSECURE", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GOTOOLCHAIN",
    "GOENV", "BUNDLE_SSL_VERIFY_MODE", "BUNDLE_GEMFILE", "CONDA_SSL_VERIFY", "YARN_CAFILE",
    "WEBSOCKET_CLIENT_CA_BUNDLE", "NIX_SSL_CERT_FILE", "HELM_KUBECAFILE", "MAVEN_OPTS", "GRADLE_OPTS",
    # uv's indexes and cargo's compiler wrappers and home (its config.toml runs commands); not their tokens
    # (UV_PUBLISH_TOKEN, CARGO_REGISTRY_TOKEN), which a CI job's `secrets run -- cargo publish` is for.
    "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_INSECURE_HOST", "UV_FIND_LINKS",
    "CARGO_HOME", "CARGO_BUILD_RUSTC", "CARGO_BUILD_RUSTC_WRAPPER", "CARGO_BUILD_RUSTDOC", "RUSTC", "RUSTC_WRAPPER",
    "RUSTDOC",
})
# git reads any setting from GIT_CONFIG_COUNT/KEY_n/VALUE_n (core.fsmonitor, core.pager, ... run commands), npm any
# config key (a script shell, a registry) from NPM_CONFIG_*, pip any (an index, a trusted host) from PIP_*, gcloud any
# property (a CA file, TLS checks off) from CLOUDSDK_*, and boto3 a service's endpoint from AWS_ENDPOINT_URL_*.
HOOK_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "PYTHON", "SPRONGUS_", "GIT_", "NPM_CONFIG_", "LUA_INIT", "PIP_",
                 "CLOUDSDK_", "AWS_ENDPOINT_URL")


# Raw key material: with the `env` key provider these open every secret of the vault, offline. COMMAND gets the
# scope's secrets, not the keys to all the others, nor does whatever records its environment (a crash report, an
# error tracker, a debug page, `env` in a CI log). A `sprongus` inside COMMAND keeps the token, the API URL and the
# database settings; on the `env` key provider it must be handed the keys another way (a key file).
WITHHELD = frozenset({"SPRONGUS_MASTER_KEYS", "SPRONGUS_HMAC_KEYS"})


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment as COMMAND gets it, before the secrets are added: without WITHHELD."""
    return {name: value for name, value in environ.items() if name not in WITHHELD}


def keep_out_of_reach() -> str | None:
    """Linux: make this process undumpable before it starts COMMAND. COMMAND runs as the same user, and the kernel
    let it read this process's /proc/<pid>/environ (which still holds SPRONGUS_MASTER_KEYS when the `env` provider
    was given them: withholding them from COMMAND's own environment was not enough) and, where ptrace is allowed,
    its memory with the revealed values. An undumpable process's /proc files are the superuser's, and a crash
    leaves no core dump holding the values either. Elsewhere: nothing (macOS has no /proc).

    Returns why it could not (a Python without ctypes, a libc it cannot load): a warning for the caller, not a
    reason to refuse the run."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # only `secrets run` needs it

        pr_set_dumpable = 4  # <linux/prctl.h>
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
            return f"prctl failed (errno {ctypes.get_errno()})"
    except (ImportError, OSError, AttributeError) as exc:
        return type(exc).__name__
    return None


def env_name(key: str) -> str:
    """`notion.api_token` -> `NOTION_API_TOKEN`: upper-case, `.` and `-` become `_`."""
    return _ENV_UNSAFE.sub("_", key).upper()


def is_hook(name: str) -> bool:
    return name in HOOK_NAMES or name.startswith(HOOK_PREFIXES)


def variables_for(keys: Iterable[str], environ: Mapping[str, str], *, override: bool,
                  allowed: Collection[str]) -> dict[str, str]:
    """variable -> key for every key, or a ValidationError naming the first key that breaks a rule.

    Called with the key names only, before any value is revealed: a refused run reveals (and audits) nothing.
    """
    names: dict[str, str] = {}
    for key in keys:
        name = env_name(key)
        if name in names:
            raise ValidationError("key", f"{names[name]} and {key} both map to ${name}")
        names[name] = key
    for name, key in names.items():
        if is_hook(name) and name not in allowed:
            raise ValidationError("key", f"{key} maps to ${name}, a loader, shell or interpreter hook; "
                                         f"refused unless --allow-env {name}")
    for name, key in names.items():
        if name in environ and not override:
            raise ValidationError("key", f"{key} maps to ${name}, which is already set in the environment; "
                                         "refused unless --override")
    return names
