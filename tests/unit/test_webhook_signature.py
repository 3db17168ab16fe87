"""X-Hub-Signature-256: HMAC-SHA256 of the raw body under the webhook secret."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from provisioner.autoscale.signature import sign, verify_signature

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"


def test_matches_githubs_documented_example() -> None:
    # The example GitHub's webhook documentation gives for this secret and body.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(SECRET, BODY) == expected
    assert verify_signature(SECRET, BODY, expected)


def test_rejects_missing_unprefixed_and_other_algorithms() -> None:
    digest = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    sha1 = "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()
    assert not verify_signature(SECRET, BODY, None)
    assert not verify_signature(SECRET, BODY, "")
    assert not verify_signature(SECRET, BODY, digest)
    assert not verify_signature(SECRET, BODY, sha1)
    assert not verify_signature(SECRET, BODY, "sha256=")


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify_signature(b"", BODY, sign(b"", BODY))


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=512))
def test_own_signature_verifies(secret: bytes, body: bytes) -> None:
    assert verify_signature(secret, body, sign(secret, body))


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=256), st.binary(max_size=256))
def test_a_changed_body_fails(secret: bytes, body: bytes, other: bytes) -> None:
    assert verify_signature(secret, other, sign(secret, body)) == (body == other)


@given(st.binary(min_size=1, max_size=32), st.binary(min_size=1, max_size=32))
def test_a_different_secret_fails(secret: bytes, other: bytes) -> None:
    assert verify_signature(other, BODY, sign(secret, BODY)) == (secret == other)
