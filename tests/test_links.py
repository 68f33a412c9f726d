"""Signed links: each way a token can fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mentorflow.links import LinkError, LinkSigner, Purpose

NOW = datetime(2027, 4, 10, 12, 0, tzinfo=UTC)


def make(signer: LinkSigner, purpose: Purpose = Purpose.APPROVAL, email: str = "boss@x.se") -> str:
    return signer.make(
        program_id="p1",
        application_id="a1",
        purpose=purpose,
        email=email,
        expires_at=NOW + timedelta(days=5),
    )


def test_a_token_names_its_application_purpose_and_addressee() -> None:
    signer = LinkSigner(["k1"])
    link = signer.check(make(signer), Purpose.APPROVAL, now=NOW)
    assert (link.program_id, link.application_id, link.purpose) == ("p1", "a1", Purpose.APPROVAL)
    assert signer.is_for(link, "Boss@X.se ") and not signer.is_for(link, "other@x.se")
    assert "boss" not in make(signer)  # no personal data in the URL


def test_forged_tampered_and_garbage_tokens() -> None:
    signer = LinkSigner(["k1"])
    token = make(signer)
    with pytest.raises(LinkError, match="forged"):
        LinkSigner(["another key"]).check(token, Purpose.APPROVAL, now=NOW)
    with pytest.raises(LinkError, match="forged"):
        signer.check(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], Purpose.APPROVAL)
    with pytest.raises(LinkError, match="forged"):
        signer.check("not-a-token", Purpose.APPROVAL)


def test_wrong_purpose_and_expired() -> None:
    signer = LinkSigner(["k1"])
    with pytest.raises(LinkError, match="wrong_purpose"):
        signer.check(make(signer, Purpose.WITHDRAWAL), Purpose.APPROVAL, now=NOW)
    with pytest.raises(LinkError, match="expired") as expired:
        signer.check(make(signer), Purpose.APPROVAL, now=NOW + timedelta(days=5))
    # An expired link still says which application it was for: a fresh one can be offered.
    assert expired.value.link is not None and expired.value.link.application_id == "a1"


def test_key_rotation_keeps_old_links_working() -> None:
    old = LinkSigner(["k-old"])
    token = make(old)
    rotated = LinkSigner(["k-new", "k-old"])
    link = rotated.check(token, Purpose.APPROVAL, now=NOW)
    assert rotated.is_for(link, "boss@x.se")
    # New links are signed with the new key only.
    with pytest.raises(LinkError, match="forged"):
        old.check(make(rotated), Purpose.APPROVAL, now=NOW)
