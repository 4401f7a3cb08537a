"""Roles, token hashing, passwords, CSRF and login throttling: the pure rules behind the api's
authentication."""

from __future__ import annotations

import pytest

from services.api.security import (
    ROLES,
    LoginThrottle,
    Principal,
    allows,
    csrf_ok,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)


def test_roles_are_ordered_viewer_approver_admin():
    assert ROLES == ("viewer", "approver", "admin")
    assert (
        allows("admin", "approver") and allows("approver", "viewer") and allows("viewer", "viewer")
    )
    assert not allows("viewer", "approver") and not allows("approver", "admin")
    assert not allows("nobody", "viewer")
    with pytest.raises(ValueError):
        allows("admin", "root")


def test_principal_actor_names_kind_and_name():
    assert Principal("user", "alice", "approver").actor == "user:alice"
    assert Principal("token", "1a2b", "viewer").may("viewer")
    assert not Principal("token", "1a2b", "viewer").may("approver")


def test_tokens_are_random_prefixed_and_only_their_sha256_is_kept():
    (id1, t1), (_id2, t2) = new_token(), new_token()
    assert t1 != t2 and t1.startswith(f"ffk_{id1}_") and len(t1) > 40
    assert (
        token_hash(t1) == token_hash(t1) and len(token_hash(t1)) == 64 and t1 not in token_hash(t1)
    )


def test_passwords_are_argon2_hashed_and_verified():
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything")  # unknown user: same work, always false
    assert not verify_password("not-a-hash", "x")


def test_csrf_needs_the_exact_session_token():
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd") and not csrf_ok("abc", None) and not csrf_ok(None, None)
    assert not csrf_ok("", "")


def test_failed_logins_block_per_user_and_per_address_until_they_age_out():
    now = [0.0]
    throttle = LoginThrottle(attempts=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert not throttle.blocked("alice", "10.0.0.1")
        throttle.failed("alice", "10.0.0.1")
    assert throttle.blocked("alice", "10.0.0.2")  # the user, from anywhere
    assert throttle.blocked("bob", "10.0.0.1")  # the address, for anyone
    assert not throttle.blocked("bob", "10.0.0.2")
    assert throttle.retry_after("alice", "10.0.0.9") >= 1
    now[0] = 61
    assert not throttle.blocked("alice", "10.0.0.1")


def test_a_success_clears_the_users_failures():
    throttle = LoginThrottle(attempts=2, window_s=60)
    throttle.failed("Carol", "a")
    throttle.succeeded("carol")
    throttle.failed("carol", "b")
    assert not throttle.blocked("carol", "c")


def test_a_users_token_is_held_to_the_lower_of_its_role_and_the_users():
    from services.api.security import lower_role

    assert lower_role("admin", "viewer") == "viewer"
    assert lower_role("viewer", "admin") == "viewer"
    assert lower_role("approver", "approver") == "approver"
    # an unknown role (a user row from a newer release) grants nothing above it
    assert lower_role("admin", "superuser") == "superuser"
    assert not Principal("user", "alice", lower_role("admin", "superuser")).may("viewer")
