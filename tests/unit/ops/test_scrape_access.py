"""Who may read /metrics and /status: the socket peer's network or the token, never a forwarded address."""

from __future__ import annotations

from ipaddress import ip_network

from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from crm_events.access.client_address import client_address
from crm_events.config import MetricsConfig, networks_parse
from crm_events.ops.scrape_access import scrape_access_allowed

factory = RequestFactory()
LOOPBACK_ONLY = MetricsConfig(token="scrape-token-123", allowed_networks=(ip_network("127.0.0.0/8"),))


def test_access_by_network_or_token():
    local = factory.get("/metrics", REMOTE_ADDR="127.0.0.1")
    remote = factory.get("/metrics", REMOTE_ADDR="203.0.113.9")
    with_token = factory.get("/metrics", REMOTE_ADDR="203.0.113.9",
                             headers={"Authorization": "Bearer scrape-token-123"})
    wrong_token = factory.get("/metrics", REMOTE_ADDR="203.0.113.9",
                              headers={"Authorization": "Bearer scrape-token-124"})
    assert scrape_access_allowed(local, LOOPBACK_ONLY)
    assert not scrape_access_allowed(remote, LOOPBACK_ONLY)
    assert scrape_access_allowed(with_token, LOOPBACK_ONLY)
    assert not scrape_access_allowed(wrong_token, LOOPBACK_ONLY)
    assert not scrape_access_allowed(local, MetricsConfig())
    assert not scrape_access_allowed(factory.get("/metrics", REMOTE_ADDR="127.0.0.1",
                                                 headers={"Authorization": "Bearer "}), MetricsConfig())


def test_a_forwarded_loopback_through_a_trusted_proxy_is_refused():
    """The issue's case: TRUSTED_PROXIES=10.0.0.0/8, and a proxy at 10.8.0.12 passing on what its
    client wrote. The stream limits take the client to be 127.0.0.1; the scrape is still refused."""
    forged = factory.get("/metrics", REMOTE_ADDR="10.8.0.12",
                         headers={"X-Forwarded-For": "127.0.0.1, 10.8.0.12"})
    assert client_address(forged, networks_parse(["10.0.0.0/8"])) == "127.0.0.1"
    assert not scrape_access_allowed(forged, LOOPBACK_ONLY)


@given(forwarded=st.lists(st.ip_addresses().map(str), max_size=4), peer=st.ip_addresses(v=4))
def test_no_forwarded_header_changes_the_answer(forwarded, peer):
    config = MetricsConfig(allowed_networks=networks_parse(["10.0.0.0/8", "127.0.0.0/8"]))
    plain = factory.get("/metrics", REMOTE_ADDR=str(peer))
    with_header = factory.get("/metrics", REMOTE_ADDR=str(peer),
                              headers={"X-Forwarded-For": ", ".join(forwarded)})
    assert scrape_access_allowed(with_header, config) == scrape_access_allowed(plain, config)
