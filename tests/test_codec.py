"""Unit tests of the payload codec: sealing, key rotation, and the errors ops will read."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from mentorflow.codec import (
    ENCODING,
    EncryptionCodec,
    PayloadKeyError,
    codec_for,
    compact_data_converter,
    data_converter,
    parse_key,
)
from mentorflow.models import EmailFacts, PairRef, ProgramPhase, ProgramState, program_dates
from mentorflow.settings import Settings
from tests.programs import fast_program, mentorflow

WHEN = datetime(2027, 9, 1, 9, 0, tzinfo=ZoneInfo("Europe/Stockholm"))


def key() -> bytes:
    return os.urandom(32)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_payloads_are_sealed_and_come_back_whole() -> None:
    codec = EncryptionCodec("k1", key())
    original = [plain('{"email": "anna@example.org"}'), plain('"x"')]
    sealed = await codec.encode(original)
    assert [p.metadata["encoding"] for p in sealed] == [ENCODING, ENCODING]
    assert all(b"anna" not in p.data for p in sealed)
    # A fresh nonce each time: the same payload never looks the same twice.
    assert (await codec.encode(original[:1]))[0].data != sealed[0].data
    assert await codec.decode(sealed) == original


async def test_a_rotated_key_still_reads_older_payloads() -> None:
    old, new = key(), key()
    before = await EncryptionCodec("2026-01", old).encode([plain("1")])
    rotated = EncryptionCodec("2026-11", new, {"2026-01": old})
    after = await rotated.encode([plain("2")])
    assert after[0].metadata["encryption-key-id"] == b"2026-11"
    assert await rotated.decode(before + after) == [plain("1"), plain("2")]
    # Unencrypted payloads (written before encryption was on) pass as they are.
    assert await rotated.decode([plain("3")]) == [plain("3")]
    with pytest.raises(PayloadKeyError, match="sealed with key '2026-01'"):
        await EncryptionCodec("2026-11", new).decode(before)
    with pytest.raises(PayloadKeyError, match="does not open with key '2026-01'"):
        await EncryptionCodec("2026-01", new).decode(before)
    sealed = before[0].data
    tampered = Payload(metadata=before[0].metadata, data=sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="altered"):
        await EncryptionCodec("2026-01", old).decode([tampered])


def test_a_malformed_key_says_how_to_make_one() -> None:
    for text in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(
            PayloadKeyError, match=r"MENTORFLOW_PAYLOAD_KEY must be .*urandom\(32\)"
        ):
            parse_key("MENTORFLOW_PAYLOAD_KEY", text)


def test_settings_switch_encryption_on_and_seal_failures_too() -> None:
    off = Settings()
    assert codec_for(off) is None and data_converter(off).payload_codec is None
    on = Settings(
        payload_key=SecretStr(base64.b64encode(key()).decode()),
        previous_payload_keys={"old": SecretStr(base64.b64encode(key()).decode())},
    )
    converter = data_converter(on)
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    broken = Settings(previous_payload_keys={"old": SecretStr("x")}, payload_key=on.payload_key)
    with pytest.raises(PayloadKeyError, match=r"MENTORFLOW_PREVIOUS_PAYLOAD_KEYS\['old'\]"):
        codec_for(broken)


def test_the_cli_names_a_bad_key_instead_of_a_traceback() -> None:
    done = mentorflow("program", "list", env={"MENTORFLOW_PAYLOAD_KEY": "not-a-key"})
    assert done.returncode == 1
    assert done.stderr.startswith("error: MENTORFLOW_PAYLOAD_KEY must be the base64 of 32")
    assert "Traceback" not in done.stderr


def round_trip(value: Any, hint: type) -> tuple[Payload, Any]:
    converter = compact_data_converter.payload_converter
    (payload,) = converter.to_payloads([value])
    (back,) = converter.from_payloads([payload], [hint])
    return payload, back


def test_payloads_leave_out_what_holds_its_default_and_read_back_the_same() -> None:
    facts = EmailFacts(
        program_name="Omvänt mentorskap",
        language="sv",
        timezone="Europe/Stockholm",
        opens=WHEN,
        deadline=WHEN + timedelta(days=10),
        start=WHEN + timedelta(days=30),
        end=WHEN + timedelta(days=200),
        time_left=timedelta(hours=3),
        answer_by=None,  # given, but its default: left out all the same
    )
    payload, back = round_trip(facts, EmailFacts)
    assert back == facts
    written = json.loads(payload.data)
    assert set(written) == {
        "program_name",
        "language",
        "timezone",
        "opens",
        "deadline",
        "start",
        "end",
        "time_left",
    }
    (full,) = pydantic_data_converter.payload_converter.to_payloads([facts])
    assert len(payload.data) * 3 < len(full.data)
    # What the SDK's converter wrote (histories of earlier runs) reads the same.
    (earlier,) = compact_data_converter.payload_converter.from_payloads([full], [EmailFacts])
    assert earlier == facts


def test_a_state_changed_in_place_is_written_whole(tmp_path: Path) -> None:
    """Only values equal to their default are left out: a set, a list or a nested model
    filled after the model was made (as workflows change their state) is written."""
    state = ProgramState(dates=program_dates(fast_program(tmp_path)))
    state.reminders_done.add("window-P1D")
    state.matching.proposals += 1
    state.matching.locks.append(PairRef(mentor_id="a1", adept_id="a2"))
    state.phase = ProgramPhase.SCHEDULED  # set, but to its default
    payload, back = round_trip(state, ProgramState)
    assert back == state
    written = json.loads(payload.data)
    assert written["reminders_done"] == ["window-P1D"]
    assert written["matching"] == {"proposals": 1, "locks": [{"mentor_id": "a1", "adept_id": "a2"}]}
    assert "phase" not in written and "tally" not in written
