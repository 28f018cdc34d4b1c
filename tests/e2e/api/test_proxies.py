"""Behind SPRONGUS_TRUSTED_PROXIES reverse proxies, rate limits and audit rows use the client's address."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.api.conftest import ApiClient


def _redeem_from(api: ApiClient, forwarded_for: str) -> int:
    response = api.client.post("/v1/secrets:redeem", json={"token": "sprr_unknown"},
                               environ_base={"REMOTE_ADDR": "10.0.0.1"},
                               headers={"X-Forwarded-For": forwarded_for})
    return response.status_code


def test_trusted_proxy_gives_each_client_its_own_redeem_bucket(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REDEEM="2/minute", SPRONGUS_TRUSTED_PROXIES="1")
    assert [_redeem_from(api, "198.51.100.7") for _ in range(3)] == [410, 410, 429]
    assert _redeem_from(api, "198.51.100.8") == 410  # another client behind the same proxy
    assert {e.client_address for e in api.events()} >= {"198.51.100.7", "198.51.100.8"}


def test_without_trusted_proxies_the_header_is_ignored(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REDEEM="2/minute")
    codes = [_redeem_from(api, f"198.51.100.{i}") for i in range(3)]  # a client cannot pick its own bucket
    assert codes == [410, 410, 429]


def _redeem_at(api: ApiClient, address: str) -> int:
    response = api.client.post("/v1/secrets:redeem", json={"token": "sprr_unknown"},
                               environ_base={"REMOTE_ADDR": address})
    return response.status_code


def test_an_ipv6_client_gets_one_redeem_bucket_for_its_whole_64(make_api: Callable[..., ApiClient]) -> None:
    """A host given a /64 has 2**64 addresses: one budget each would be no limit at all."""
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REDEEM="2/minute")
    codes = [_redeem_at(api, f"2001:db8:aa:bb::{i:x}") for i in range(1, 4)]
    assert codes == [410, 410, 429]
    assert _redeem_at(api, "2001:db8:aa:bb:ffff:ffff:ffff:fffe") == 429  # the same /64
    assert _redeem_at(api, "2001:db8:aa:bc::1") == 410  # the next /64: another client
    assert {e.client_address for e in api.events()} >= {"2001:db8:aa:bb::1", "2001:db8:aa:bc::1"}  # full addresses


def test_an_ipv4_peer_seen_through_a_dual_stack_socket_shares_its_ipv4_bucket(
        make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REDEEM="2/minute")
    codes = [_redeem_at(api, "198.51.100.9"), _redeem_at(api, "::ffff:198.51.100.9"), _redeem_at(api, "198.51.100.9")]
    assert codes == [410, 410, 429]


def test_where_many_workloads_share_a_64_a_longer_prefix_gives_each_its_own_bucket(
        make_api: Callable[..., ApiClient]) -> None:
    """Pods on one IPv6 subnet share its /64: SPRONGUS_RATE_LIMIT_IPV6_PREFIX=128 counts each address alone."""
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_REDEEM="2/minute", SPRONGUS_RATE_LIMIT_IPV6_PREFIX="128")
    assert [_redeem_at(api, "2001:db8:aa:bb::1") for _ in range(3)] == [410, 410, 429]
    assert _redeem_at(api, "2001:db8:aa:bb::2") == 410
