"""How workflow payloads are written: compact pydantic JSON, optionally encrypted.

Payloads are pydantic's JSON without the fields that hold their default
(:class:`CompactJSONPayloadConverter`): the reading side's model fills them in.

Workflows keep ids and counts rather than names (README, "Privacy"), but the
program's own texts (its name, description, questions) and the ids still pass
through Temporal. With
``MENTORFLOW_PAYLOAD_KEY`` set, every payload is sealed with AES-256-GCM before
it leaves the process; the key's id travels in the payload's metadata, so a key
can be rotated while earlier histories stay readable with
``MENTORFLOW_PREVIOUS_PAYLOAD_KEYS``. Search attributes and memos are not
payload-encoded, which is why they never hold personal data.

The same codec serves the Temporal UI and CLI through the web app's ``/codec``
endpoint (:mod:`mentorflow.web.codec`), for authorised people only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import SchemaSerializer, core_schema
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

from mentorflow.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12


class PayloadKeyError(ValueError):
    """A payload key is malformed, or a payload was sealed with a key we do not have."""


def parse_key(name: str, text: str) -> bytes:
    """A 32-byte key from its base64 text, or :class:`PayloadKeyError` saying how to make one."""
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise PayloadKeyError(
            f"{name} must be the base64 of 32 random bytes; make one with"
            ' python3 -c "import os,base64; print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return key


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload; decodes with the current or an earlier key."""

    def __init__(self, key_id: str, key: bytes, previous: Mapping[str, bytes] | None = None):
        self._key_id = key_id
        self._current = AESGCM(key)
        self._keys = {name: AESGCM(k) for name, k in (previous or {}).items()}
        self._keys[key_id] = self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(
                metadata={"encoding": ENCODING, KEY_ID: self._key_id.encode()},
                data=self._seal(payload.SerializeToString()),
            )
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                # Written before encryption was switched on: still readable as it is.
                decoded.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._keys.get(key_id)
            if cipher is None:
                raise PayloadKeyError(
                    f"payload sealed with key {key_id!r}, which is neither"
                    " MENTORFLOW_PAYLOAD_KEY_ID nor in MENTORFLOW_PREVIOUS_PAYLOAD_KEYS"
                )
            data = payload.data
            try:
                opened = cipher.decrypt(data[:_NONCE], data[_NONCE:], None)
            except InvalidTag:
                raise PayloadKeyError(
                    f"payload does not open with key {key_id!r}: altered, or a different key"
                    " under the same id"
                ) from None
            decoded.append(Payload.FromString(opened))
        return decoded

    def _seal(self, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._current.encrypt(nonce, data, None)


def codec_for(settings: Settings) -> EncryptionCodec | None:
    """The settings' codec, or None when payload encryption is off."""
    if settings.payload_key is None:
        return None
    return EncryptionCodec(
        settings.payload_key_id,
        parse_key("MENTORFLOW_PAYLOAD_KEY", settings.payload_key.get_secret_value()),
        {
            name: parse_key(f"MENTORFLOW_PREVIOUS_PAYLOAD_KEYS[{name!r}]", key.get_secret_value())
            for name, key in settings.previous_payload_keys.items()
        },
    )


_ANY = SchemaSerializer(core_schema.any_schema())


class CompactJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic's JSON without the fields that hold their default value.

    The reading side's model puts them back, so a payload means what it did. The
    models workflows pass around have dozens of optional fields that are mostly
    empty (an email's facts alone about fifty), and every byte goes into the
    history, is written by the server and read again with the history: the SDK's
    pydantic converter wrote them all, 8.7 KB of history per application in
    ``bench/program_scale.py`` against the bare baseline's 2.5 KB (5.9 KB with
    this one). Left out are
    values equal to their default, not merely unset ones, so a list filled in
    place or a nested model changed after it was made is always written.
    """

    def to_payload(self, value: Any) -> Payload | None:
        return Payload(
            metadata={"encoding": self.encoding.encode()},
            data=_ANY.to_json(value, exclude_defaults=True),
        )


class CompactPayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with JSON as :class:`CompactJSONPayloadConverter`."""

    def __init__(self) -> None:
        compact = CompactJSONPayloadConverter()
        super().__init__(
            *(
                compact if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# What every client and worker of the project uses (and the tests' environments).
compact_data_converter = DataConverter(payload_converter_class=CompactPayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """Compact pydantic payloads; sealed, with failure messages sealed too, when a key is set."""
    codec = codec_for(settings)
    if codec is None:
        return compact_data_converter
    return dataclasses.replace(
        compact_data_converter,
        payload_codec=codec,
        # Error messages can quote what a person typed: encode them as well.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
