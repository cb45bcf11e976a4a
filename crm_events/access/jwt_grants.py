"""The grant a JWT carries (`SSE_JWT_GRANT_CLAIM`), or the one derived from its ordinary claims
(`SSE_JWT_GRANT_TEMPLATE`), checked as `access.grants` checks every grant.

A template is a grant whose strings may name claims in braces, e.g.
`{"where": ["tenant_id:{tenant}"]}`: each `{name}` is replaced by that claim, which must be a
non-empty string or a whole number; a token without it, or with anything else there, is
refused (401), never granted the template's unfilled or widened form. A token that carries
the grant claim while a template is configured is refused too: two grants would have to be
intersected, and refusing is the choice that cannot widen either. Without a template, a token
without the claim is limited by its topics and kinds claims only, unless `SSE_JWT_GRANT_REQUIRED`.
"""

from __future__ import annotations

import re
from typing import Any

from crm_events.access.grants import StreamGrant, grant_parse
from crm_events.config import AuthConfig
from crm_events.exceptions import AuthenticationFailed, GrantMalformed

# `{claim}`: anything but braces, so namespaced claims (`https://example.com/tenant`) can be named.
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

TOKEN_GRANT_MALFORMED = "the token's grant claim is not a grant the stream accepts"
TOKEN_GRANT_MISSING = "these credentials must carry a grant, and the token has none"
TOKEN_GRANT_TWICE = "the token carries a grant claim, but this service derives grants from its claims"
TOKEN_GRANT_SOURCE_INVALID = (
    "the token lacks a claim the grant is made from, or it is not a non-empty string or a whole number"
)


def token_grant(claims: dict[str, Any], config: AuthConfig) -> StreamGrant | None:
    """The token's grant (None: none, and none required); raise `AuthenticationFailed` (401)."""
    carried = bool(config.grant_claim) and config.grant_claim in claims
    if config.grant_template is not None:
        if carried:
            raise AuthenticationFailed(TOKEN_GRANT_TWICE, reason="claim_malformed", claim=config.grant_claim)
        return _parsed(_filled(config.grant_template, claims))
    if carried:
        return _parsed(claims[config.grant_claim])
    if config.grant_required:
        raise AuthenticationFailed(TOKEN_GRANT_MISSING, reason="claim_missing", claim=config.grant_claim)
    return None


def _parsed(value: object) -> StreamGrant:
    try:
        return grant_parse(value)
    except GrantMalformed as error:
        detail = error.message
        raise AuthenticationFailed(TOKEN_GRANT_MALFORMED, reason="claim_malformed", detail=detail) from None


def _filled(template: dict[str, tuple[str, ...]], claims: dict[str, Any]) -> dict[str, list[str]]:
    return {name: [PLACEHOLDER.sub(lambda m: _claim_text(claims, m[1]), v) for v in values]
            for name, values in template.items()}


def _claim_text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise AuthenticationFailed(TOKEN_GRANT_SOURCE_INVALID, reason="claim_malformed", claim=name)
