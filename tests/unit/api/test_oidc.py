"""Pure rules of OIDC tokens: role mapping, claim paths, which keys and issuers are accepted."""

from __future__ import annotations

import pytest

from services.api.oidc import (
    OidcVerifier,
    check_issuer_url,
    claim,
    key_algorithm,
    parse_algorithms,
    parse_roles,
    role_of,
)

ALLOWED = ("RS256", "ES256")


def test_roles_map_claim_values_and_the_highest_wins():
    mapping = parse_roles("staff=viewer, finops-approvers=approver,finops-admins=admin")
    assert role_of(["staff"], mapping) == "viewer"
    assert role_of(["staff", "finops-admins", "finops-approvers"], mapping) == "admin"
    assert role_of("staff finops-approvers", mapping) == "approver"  # space-separated string
    assert role_of(["admin"], mapping) is None  # with a mapping, only mapped values count
    assert role_of(["admin", "viewer"], {}) == "admin"  # without one, role names as they are
    assert role_of(None, mapping) is None and role_of(7, mapping) is None
    with pytest.raises(ValueError, match="root"):
        parse_roles("staff=root")
    with pytest.raises(ValueError, match="claim-value=role"):
        parse_roles("staff")


def test_a_dotted_claim_path_reads_nested_claims():
    payload = {"realm_access": {"roles": ["a", "b"]}, "roles": "x"}
    assert claim(payload, "realm_access.roles") == ["a", "b"]
    assert claim(payload, "roles") == "x"
    assert claim(payload, "roles.deeper") is None and claim(payload, "missing") is None


def test_only_asymmetric_algorithms_and_matching_keys_are_accepted():
    assert parse_algorithms("RS256, ES256") == ("RS256", "ES256")
    for bad in ("none", "HS256", "RS256,HS512", ""):
        with pytest.raises(ValueError):
            parse_algorithms(bad)
    rsa = {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"}
    assert key_algorithm(rsa, ALLOWED) == "RS256"
    assert key_algorithm({**rsa, "alg": "RS512"}, ALLOWED) is None  # not allowed here
    assert key_algorithm({**rsa, "alg": "ES256"}, ALLOWED) is None  # key type disagrees
    assert key_algorithm({**rsa, "use": "enc"}, ALLOWED) is None
    assert key_algorithm({"kty": "EC", "crv": "P-256"}, ALLOWED) == "ES256"
    assert key_algorithm({"kty": "EC", "crv": "P-384", "alg": "ES256"}, ALLOWED) is None
    assert key_algorithm({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, ALLOWED) is None


def test_the_issuer_must_be_https_except_on_loopback():
    assert check_issuer_url("https://id.example.com/realms/x") == "https://id.example.com/realms/x"
    assert check_issuer_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert check_issuer_url("http://localhost:8080/") == "http://localhost:8080/"
    for bad in ("http://id.example.com", "ftp://127.0.0.1", "id.example.com", "https://"):
        with pytest.raises(ValueError, match="https"):
            check_issuer_url(bad)
    with pytest.raises(ValueError, match="AUDIENCE"):
        OidcVerifier(issuer="https://id.example.com", audience="")
