"""The grant a JWT carries, or one made from its claims; every flaw is a 401 that says which."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_events.access import jwt_grants
from crm_events.access.auth import jwt_principal
from crm_events.access.grants import GRANT_EMPTY, grant_parse
from crm_events.config import AuthConfig
from crm_events.exceptions import AuthenticationFailed
from crm_events.responses import error_response
from tests.support.grant_strategies import grant_objects

SECRET = "a-jwt-grants-unit-secret-of-32-bytes-or-more"
CLAIM = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0)
TEMPLATE = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0,
                      grant_template={"where": ("tenant_id:{tenant}", "region:{https://idp.example/region}")})
REQUIRED = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0, grant_required=True)


def signed(**claims) -> str:
    return jwt.encode({"sub": "rep-7", "exp": int(time.time()) + 600, **claims}, SECRET, algorithm="HS256")


def refusal(token: str, config: AuthConfig) -> dict:
    with pytest.raises(AuthenticationFailed) as caught:
        jwt_principal(token, config)
    response = error_response(caught.value)
    assert response.status_code == 401
    return json.loads(response.content)


@given(grant_objects)
def test_the_grant_claim_becomes_the_principal_s_grant(value):
    assert jwt_principal(signed(grant=value), CLAIM).grant == grant_parse(value)


def test_its_name_is_a_setting_and_without_it_a_token_is_limited_as_before():
    config = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0, grant_claim="crm_grant")
    principal = jwt_principal(signed(crm_grant={"kind": ["deal"]}, grant={"kind": ["ticket"]}), config)
    assert principal.grant == grant_parse({"kind": ["deal"]})
    assert jwt_principal(signed(), CLAIM).grant is None
    unread = AuthConfig(mode="jwt", jwt_key=SECRET, grant_claim="")
    assert jwt_principal(signed(grant={"kind": ["x"]}), unread).grant is None


@pytest.mark.parametrize("value", [{}, [], None, "kind=deal", {"where": []}, {"tenant": ["acme"]}])
def test_a_malformed_or_empty_grant_claim_is_refused(value):
    body = refusal(signed(grant=value), CLAIM)
    assert (body["error"], body["reason"]) == (jwt_grants.TOKEN_GRANT_MALFORMED, "claim_malformed")
    if value == {}:
        assert body["detail"] == GRANT_EMPTY


def test_a_required_grant_refuses_tokens_without_one():
    body = refusal(signed(), REQUIRED)
    assert (body["error"], body["reason"], body["claim"]) == (
        jwt_grants.TOKEN_GRANT_MISSING, "claim_missing", "grant")
    assert jwt_principal(signed(grant={"kind": ["deal"]}), REQUIRED).grant == grant_parse({"kind": ["deal"]})


def test_a_template_is_filled_from_the_token_s_claims():
    principal = jwt_principal(signed(tenant="acme", **{"https://idp.example/region": "eu"}), TEMPLATE)
    assert principal.grant == grant_parse({"where": ["tenant_id:acme", "region:eu"]})
    numbered = jwt_principal(signed(tenant=42, **{"https://idp.example/region": "{tenant}"}), TEMPLATE)
    # Filled once: a claim's own braces are text, never another placeholder.
    assert numbered.grant == grant_parse({"where": ["tenant_id:42", "region:{tenant}"]})


@pytest.mark.parametrize("tenant", [None, "", True, 4.5, ["acme"], {"id": "acme"}])
def test_a_template_whose_claim_is_missing_or_odd_refuses_the_token(tenant):
    claims = {"https://idp.example/region": "eu"} | ({} if tenant is None else {"tenant": tenant})
    body = refusal(signed(**claims), TEMPLATE)
    assert (body["error"], body["reason"], body["claim"]) == (
        jwt_grants.TOKEN_GRANT_SOURCE_INVALID, "claim_malformed", "tenant")


@given(st.text(min_size=1, max_size=20))
def test_a_filled_template_is_checked_like_any_grant(text):
    config = AuthConfig(mode="jwt", jwt_key=SECRET, jwt_leeway=0, grant_template={"partition": ("{p}",)})
    try:
        expected = grant_parse({"partition": [text]})
    except Exception:  # noqa: BLE001 - whatever grant_parse refuses, the token is refused
        assert refusal(signed(p=text), config)["error"] == jwt_grants.TOKEN_GRANT_MALFORMED
        return
    assert jwt_principal(signed(p=text), config).grant == expected


def test_a_token_carrying_a_grant_where_grants_are_made_from_claims_is_refused():
    body = refusal(signed(tenant="acme", grant={"where": ["tenant_id:beta"]}), TEMPLATE)
    assert (body["error"], body["claim"]) == (jwt_grants.TOKEN_GRANT_TWICE, "grant")
