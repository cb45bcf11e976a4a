"""Who may read `/metrics` and `/status`: a peer in METRICS_ALLOWED_NETWORKS, or the token.

The peer is the socket's address (`REMOTE_ADDR`, which Daphne takes from the connection, never
from a header), not `crm_events.access.client_address`: that one believes X-Forwarded-For from
TRUSTED_PROXIES, and a proxy is trusted to say who its client is, not to grant that client
the scrape. Behind a trusted proxy, `X-Forwarded-For: 127.0.0.1, 10.8.0.12` would otherwise
read as loopback. Prometheus scrapes each web process directly (its pod IP), so the peer is
the scraper itself; the proxies (docker/nginx.conf, the Ingress) do not pass these paths on.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest

from crm_events.access.client_address import address_in
from crm_events.config import MetricsConfig

SCRAPE_FORBIDDEN = "metrics and status are only served to allowed networks or with the metrics token"


def scrape_access_allowed(request: HttpRequest, config: MetricsConfig) -> bool:
    """The bearer token, when one is configured and sent; else the socket peer's network."""
    if config.token:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), config.token.encode()):
            return True
    return address_in(request.META.get("REMOTE_ADDR") or "", config.allowed_networks)
