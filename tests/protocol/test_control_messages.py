from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import (
    MAX_CONTROL_MESSAGE_BYTES,
    MESSAGE_TYPES,
    AgentHello,
    EndReason,
    ErrorMessage,
    Party,
    SessionEnd,
    SessionOffer,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import SignedDocument

KEY = "A" * 43
SIGNATURE = "B" * 86
AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def _offer() -> SessionOffer:
    return SessionOffer(
        id="m-1",
        support_session_id="ss-1001",
        grant=SignedDocument(body="eyJ4IjoxfQ", signature=SIGNATURE),
    )


def test_a_message_survives_encode_then_parse() -> None:
    offer = _offer()
    assert parse_message(encode_message(offer)) == offer
    assert parse_message(encode_message(offer).encode()) == offer


def test_the_wire_form_has_the_dotted_type_and_the_id() -> None:
    wire = orjson.loads(encode_message(_offer()))
    assert wire["type"] == "session.offer"
    assert wire["id"] == "m-1"


def test_an_offer_carries_nothing_outside_the_signed_grant() -> None:
    # What the person is shown lives inside the grant's signature; an unsigned field beside it
    # (the old prompt, its timeout and default) is refused rather than ignored.
    wire = orjson.loads(encode_message(_offer()))
    assert set(wire) == {"type", "id", "support_session_id", "grant"}
    wire["prompt"] = {"timeout_seconds": 2, "timeout_default": "granted"}
    with pytest.raises(ProtocolError) as caught:
        parse_message(orjson.dumps(wire))
    assert caught.value.code == "protocol.invalid_field"
    assert caught.value.message.startswith("prompt")


def test_every_type_name_is_dotted_lowercase() -> None:
    for name in MESSAGE_TYPES:
        assert name == name.lower()
        assert name == "error" or "." in name


def test_an_agent_hello_parses_with_its_version_range() -> None:
    text = encode_message(
        AgentHello(
            id="1",
            device_public_key=KEY,
            agent_version="0.1.0",
            platform="linux-x86_64",
            protocol_version=1,
            min_protocol_version=1,
        )
    )
    message = parse_message(text)
    assert isinstance(message, AgentHello)
    assert message.device_id is None


def test_a_session_end_names_who_and_why() -> None:
    end = SessionEnd(
        id="9", support_session_id="ss-1", ended_by=Party.END_USER, reason=EndReason.USER_ENDED
    )
    parsed = parse_message(encode_message(end))
    assert isinstance(parsed, SessionEnd)
    assert parsed.ended_by is Party.END_USER


@pytest.mark.parametrize(
    "data",
    ["", "{", "not json", "[1, 2]", '"session.offer"', "null", b"\xff\xfe", '{"id": "1"}'],
)
def test_it_rejects_malformed_input(data: str | bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(data)
    assert caught.value.code == "protocol.malformed"


@pytest.mark.parametrize("type_value", [1, None, ["session.offer"]])
def test_it_rejects_a_type_that_is_not_a_string(type_value: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(orjson.dumps({"type": type_value, "id": "1"}))
    assert caught.value.code == "protocol.malformed"


@pytest.mark.parametrize("type_name", ["session.offr", "Session.Offer", "file.chunk", ""])
def test_it_rejects_an_unknown_type(type_name: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(orjson.dumps({"type": type_name, "id": "1"}))
    assert caught.value.code == "protocol.unknown_type"


def test_it_rejects_an_oversized_message_before_parsing_it() -> None:
    data = b'{"type":"error","id":"1","code":"a.b","message":"' + b"x" * MAX_CONTROL_MESSAGE_BYTES
    with pytest.raises(ProtocolError) as caught:
        parse_message(data)
    assert caught.value.code == "protocol.too_large"


def _mutated(path: list[str | int], value: object) -> bytes:
    wire: Any = orjson.loads(encode_message(_offer()))
    target = wire
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(wire)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["support_session_id"], _DELETE, "support_session_id"),
        (["support_session_id"], "has spaces", "support_session_id"),
        (["grant", "signature"], "short", "grant.signature"),
        (["grant", "body"], "not base64!", "grant.body"),
        (["grant", "unexpected"], True, "grant.unexpected"),
        (["id"], "", "id"),
    ],
)
def test_it_rejects_an_invalid_field_and_names_it(
    path: list[str | int], value: object, field: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(_mutated(path, value))
    assert caught.value.code == "protocol.invalid_field"
    assert caught.value.message.startswith(field)


def test_it_rejects_a_naive_timestamp() -> None:
    data = orjson.dumps(
        {
            "type": "session.warning",
            "id": "1",
            "support_session_id": "s",
            "ends_at": "2025-03-14T10:30:00",
            "remaining_seconds": 300,
        }
    )
    with pytest.raises(ProtocolError) as caught:
        parse_message(data)
    assert caught.value.code == "protocol.invalid_field"


def test_an_error_message_carries_a_stable_code_and_the_id_it_answers() -> None:
    error = ErrorMessage(id="2", code="protocol.unknown_type", message="nope", ref="1")
    parsed = parse_message(encode_message(error))
    assert isinstance(parsed, ErrorMessage)
    assert (parsed.code, parsed.ref) == ("protocol.unknown_type", "1")
    with pytest.raises(ProtocolError):
        parse_message(orjson.dumps({"type": "error", "id": "3", "code": "Bad Code", "message": ""}))
