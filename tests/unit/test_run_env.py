"""`secrets run`'s environment rules on their own (the processes are in tests/e2e/test_cli_run_hijack.py)."""

from __future__ import annotations

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.entrypoints.cli.run_env import env_name, is_hook, variables_for


@pytest.mark.parametrize("name", [
    "LD_PRELOAD", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "BASH_ENV", "ENV", "BASH_FUNC_X%%", "PATH", "IFS", "PS4",
    "PS0", "PS1", "PS2", "PS3",
    "SHELLOPTS", "PYTHONPATH", "PYTHONSTARTUP", "PYTHON_CONFIG", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB", "RUBYOPT",
    "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "SPRONGUS_TOKEN", "SPRONGUS_API_URL", "GCONV_PATH",
    "GLIBC_TUNABLES", "PERLLIB", "PERL5DB", "JDK_JAVA_OPTIONS", "NODE_PATH", "PROMPT_COMMAND", "ZDOTDIR",
    "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_SSH_COMMAND", "NPM_CONFIG_SCRIPT_SHELL", "PAGER", "EDITOR",
    "LESSOPEN", "LUA_INIT_5_4", "DOTNET_STARTUP_HOOKS", "OPENSSL_CONF", "KUBECONFIG", "HTTPS_PROXY",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "PGSSLMODE", "VAULT_CACERT", "VAULT_SKIP_VERIFY",
    "BAO_CACERT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "PIP_INDEX_URL",
    "PIP_TRUSTED_HOST", "UV_INSECURE_HOST", "UV_INDEX_URL", "GOINSECURE", "GOFLAGS", "GOSUMDB", "CARGO_HOME",
    "CARGO_BUILD_RUSTC_WRAPPER", "RUSTC_WRAPPER", "BUNDLE_GEMFILE", "MAVEN_OPTS",
])
def test_every_denied_family_is_a_hook(name: str) -> None:
    assert is_hook(name)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "NOTION_API_TOKEN", "ENVIRONMENT", "MYPATH", "PATHS", "LDAP_URL",
                                  "PS5", "NODE_ENV", "RUBY_VERSION", "DATABASE_URL", "SPRONGUSX",
                                  "SSL_KEY_PASSWORD", "STRIPE_CA_TOKEN", "VAULT_TOKEN", "AWS_ACCESS_KEY_ID",
                                  "GOOGLE_API_KEY", "PIPELINE_TOKEN", "UVICORN_PORT", "CARGO_REGISTRY_TOKEN",
                                  "UV_PUBLISH_TOKEN", "CARGO_API_KEY", "NPM_TOKEN"])
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_hook(name)


def test_keys_map_to_upper_case_names() -> None:
    assert [env_name(k) for k in ("notion.api_token", "gdocs.service-account", "ld.preload")] == [
        "NOTION_API_TOKEN", "GDOCS_SERVICE_ACCOUNT", "LD_PRELOAD"]


def test_rules_apply_in_order_clash_hook_then_already_set() -> None:
    with pytest.raises(ValidationError, match=r"^key: a.b and a-b both map to \$A_B$"):
        variables_for(["a.b", "a-b", "path"], {}, override=False, allowed=())
    with pytest.raises(ValidationError, match=r"^key: path maps to \$PATH, .* refused unless --allow-env PATH$"):
        variables_for(["greeting", "path"], {"GREETING": "x"}, override=False, allowed=())
    with pytest.raises(ValidationError, match=r"^key: greeting maps to \$GREETING, .* refused unless --override$"):
        variables_for(["greeting", "path"], {"GREETING": "x"}, override=False, allowed={"PATH"})


def test_allow_env_and_override_let_each_through() -> None:
    names = variables_for(["path", "greeting"], {"PATH": "/bin", "GREETING": "x"}, override=True,
                          allowed={"PATH"})
    assert names == {"PATH": "path", "GREETING": "greeting"}
    assert variables_for(["greeting"], {}, override=False, allowed=()) == {"GREETING": "greeting"}
