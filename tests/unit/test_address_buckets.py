"""What the per-address limits (redeem, exchange) count by: an IPv6 client's /64, an IPv4 address itself."""

from __future__ import annotations

import pytest

from sprongus.service.throttle import address_bucket


@pytest.mark.parametrize(("address", "bucket"), [
    ("192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:1", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),  # any spelling of an address in the /64
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.1", "192.0.2.1"),  # an IPv4 peer on a dual-stack socket
    ("fe80::1%eth0", "fe80::/64"),
    (None, "unknown"),
    ("", "unknown"),
    ("proxy-said-this", "proxy-said-this"),  # not an address: counted as given
])
def test_address_bucket(address: str | None, bucket: str) -> None:
    assert address_bucket(address) == bucket


@pytest.mark.parametrize(("prefix", "bucket"), [(128, "2001:db8:1:2:aaaa:bbbb:cccc:1/128"),
                                                (80, "2001:db8:1:2:aaaa::/80"), (48, "2001:db8:1::/48")])
def test_the_ipv6_prefix_is_a_setting(prefix: int, bucket: str) -> None:
    assert address_bucket("2001:db8:1:2:aaaa:bbbb:cccc:1", prefix) == bucket
    assert address_bucket("192.0.2.1", prefix) == "192.0.2.1"
