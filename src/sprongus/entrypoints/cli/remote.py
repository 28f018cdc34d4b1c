"""`--remote`: the same `secrets` commands through the REST API, with the same output and exit codes.

RemoteSecretsService mirrors the SecretsService methods the CLI uses and turns problem+json answers back into
the domain's errors, so the CLI's one exit-code table serves both modes. stdlib HTTP only: it keeps start-up fast.
"""

from __future__ import annotations

import builtins
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sprongus.domain import errors as e
from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretView
from sprongus.domain.scope import Scope
from sprongus.domain.service import ExportResult, ImportItem, ImportReport, Page, RotationReport, SetResult
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings

TIMEOUT = 30.0
_POLICY = re.compile(r'\s*"(?P<name>[^"]+)";q=(?P<q>\d+);w=(?P<w>\d+)')


class RemoteUnavailable(e.SprongusError):
    """The API could not be reached or answered with a server error."""


def view_from_dict(data: dict[str, Any]) -> SecretView:
    def when(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    value = None if data.get("masked", True) else SecretValue(data["value"])
    return SecretView(Scope.of(data["ownerType"], data.get("ownerId")), data["keyName"], data["version"],
                      when(data["createdAt"]) or datetime.min, when(data["updatedAt"]) or datetime.min,
                      when(data.get("lastRotatedAt")), dict(data.get("meta") or {}), "", value)


def error_from_problem(status: int, body: dict[str, Any],
                       headers: Mapping[str, str] | None = None) -> e.SprongusError:
    kind = str(body.get("type", "")).rpartition(":")[2]
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    if kind == "validation" or status in (400, 422):
        errors = body.get("errors") or {}
        field, rules = next(iter(errors.items()), ("request", [detail]))
        return e.ValidationError(field, "; ".join(rules) if isinstance(rules, list) else str(rules))
    if status in (401, 403):
        return e.PermissionDenied(detail)
    if status in (404, 410):
        return e.NotFound(detail)
    if status in (409, 412):
        return e.Conflict(detail)
    if status == 429:
        return _rate_limited(headers or {})
    if kind == "integrity":
        return e.IntegrityError(detail)
    return RemoteUnavailable(f"the API answered {status}: {detail}")


def _rate_limited(headers: Mapping[str, str]) -> e.RateLimited:
    """The policy and delay the server named (RateLimit-Policy, Retry-After; lower-case names)."""
    policy = _POLICY.match(headers.get("ratelimit-policy") or "")
    retry = (headers.get("retry-after") or "").strip()
    return e.RateLimited(policy["name"] if policy else "api", limit=int(policy["q"]) if policy else 0,
                         window_seconds=int(policy["w"]) if policy else 0,
                         retry_after=int(retry) if retry.isdigit() else 1)


class ApiClient:
    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url.rstrip("/") + "/v1"
        self._token = token

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        return self.send(method, path, body, query)[1]

    def send(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None); a problem answer raises its domain error."""
        url = self._base + urllib.parse.quote(path, safe="/:.-_@")
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 - scheme checked
            "Authorization": f"Bearer {self._token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the configured API
                raw, status = response.read(), response.status
        except urllib.error.HTTPError as exc:
            try:
                problem = json.loads(exc.read() or b"{}")
            except ValueError:
                problem = {}
            raise error_from_problem(exc.code, problem, {k.lower(): v for k, v in exc.headers.items()}) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteUnavailable(f"cannot reach the API at {self._base}: {reason}") from None
        return status, json.loads(raw) if raw else None


def _path(scope: Scope, key: str) -> str:
    return f"/secrets/{scope.owner_type.value}/{scope.url_owner_id}/{key}"


class RemoteSecretsService:
    """The subset of SecretsService the CLI uses; the principal is the token's, so it is ignored here."""

    def __init__(self, client: ApiClient) -> None:
        self._api = client

    def set(self, principal: Principal, scope: Scope, key: str, value: SecretValue, meta: object = None,
            expected_version: int | None = None) -> SetResult:
        body: dict[str, Any] = {"value": value.reveal()}
        if meta is not None:
            body["meta"] = meta
        status, data = self._api.send("PUT", _path(scope, key), body)
        return SetResult(view_from_dict(data), status == 201)  # 201 created, 200 updated

    def get(self, principal: Principal, scope: Scope, key: str, reveal: bool = False) -> SecretView:
        if reveal:
            return view_from_dict(self._api.call("POST", _path(scope, key) + ":reveal", {}))
        return view_from_dict(self._api.call("GET", _path(scope, key)))

    def unset(self, principal: Principal, scope: Scope, key: str) -> None:
        self._api.call("DELETE", _path(scope, key))

    def list(self, principal: Principal, scope: Scope, prefix: str = "", with_meta: bool = False,
             cursor: str | None = None, limit: int = 50) -> Page:
        page = self._api.call("GET", "/secrets", query={
            "ownerType": scope.owner_type.value, "ownerId": scope.owner_id, "prefix": prefix or None,
            "withMeta": "true" if with_meta else "false", "limit": limit, "cursor": cursor})
        return Page([view_from_dict(item) for item in page["items"]], page["nextCursor"])

    def import_(self, principal: Principal, items: builtins.list[ImportItem] | None = None,
                bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
                passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False,
                progress: Any = None) -> ImportReport:
        body: dict[str, Any] = {"mode": mode, "allowPlaintext": allow_plaintext, "prefix": prefix,
                                "dryRun": dry_run}
        if items is not None:
            body["items"] = [{"scope": str(i.scope), "key": i.key, "value": i.value.reveal(), "meta": i.meta}
                             for i in items]
        if bundle is not None:
            body["bundle"] = bundle
        if passphrase is not None:
            body["passphrase"] = passphrase.reveal()
        result = self._api.call("POST", "/secrets:import", body)
        changes = result["changes"]

        def pairs(name: str) -> list[tuple[str, str]]:
            return [(c["scope"], c["keyName"]) for c in changes[name]]

        return ImportReport(pairs("added"), pairs("updated"), pairs("removed"), result["dryRun"])

    def export(self, principal: Principal, scope: Scope, prefix: str = "", bundle: bool = False,
               passphrase: SecretValue | None = None, progress: Any = None) -> ExportResult:
        if passphrase is not None:
            raise e.ValidationError("passphrase-file", "passphrase bundles are exported locally, not via --remote")
        doc = self._api.call("GET", "/secrets:export", query={
            "ownerType": scope.owner_type.value, "ownerId": scope.owner_id, "prefix": prefix or None,
            "bundle": "true" if bundle else "false"})
        if bundle:
            epoch = datetime.fromtimestamp(0, UTC)
            return ExportResult([SecretView(Scope.parse(i["scope"]), i["key"], i["version"], epoch, epoch, None,
                                            dict(i.get("meta") or {}), i["masterKeyId"]) for i in doc["items"]], doc)
        return ExportResult([view_from_dict({**item, "value": "********", "masked": True}) for item in doc["items"]])

    def rotate(self, principal: Principal, scope: Scope, key: str | None = None, prefix: str = "",
               rotated_before: datetime | None = None, progress: Any = None) -> RotationReport:
        keys = [key] if key else [v.key for v in self._all(scope, prefix)]
        for name in keys:
            self._api.call("POST", _path(scope, name) + ":rotate")
        return RotationReport(rotated=len(keys))

    def _all(self, scope: Scope, prefix: str) -> builtins.list[SecretView]:
        views: builtins.list[SecretView] = []
        cursor = None
        while True:
            page = self.list(Principal("remote"), scope, prefix, False, cursor, 500)
            views += page.items
            if page.next_cursor is None:
                return views
            cursor = page.next_cursor


def remote_service(settings: Settings) -> RemoteSecretsService:
    if not settings.api_url or urllib.parse.urlsplit(settings.api_url).scheme not in ("http", "https"):
        raise e.ConfigError("SPRONGUS_API_URL: set it to the API's http(s) base URL (e.g. http://127.0.0.1:8000)")
    token = settings.api_token or stored_token(settings.api_url)
    if not token:
        raise e.PermissionDenied("no API token: set SPRONGUS_TOKEN or run `sprongus login`")
    return RemoteSecretsService(ApiClient(settings.api_url, token))


def keychain_item(api_url: str) -> str:
    return f"api-token:{api_url.rstrip('/')}"


def stored_token(api_url: str) -> str | None:
    """The token `sprongus login` kept in the OS keychain, if any (bounded wait, like every keychain call)."""
    from sprongus.adapters.keys_keychain import SERVICE, call_with_timeout, has_real_backend

    def read() -> str | None:
        import keyring

        backend = keyring.get_keyring()
        if not has_real_backend(backend):
            return None
        value = backend.get_password(SERVICE, keychain_item(api_url))
        return value if isinstance(value, str) else None

    return call_with_timeout(read, 5.0, "read token")
