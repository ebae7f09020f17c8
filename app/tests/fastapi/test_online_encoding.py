"""The serving image's own Feast encoding (fx_pipeline.online) against Feast itself: byte-identical Redis keys and
fields, and the same values read back from what Feast's protobuf messages hold. Feast and protobuf are test-only
packages here (requirements/locks/fastapi-test.txt); the image carries neither."""

import math
from datetime import datetime, timezone

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Null
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from fx_pipeline.feature_defs import FEAST_PROJECT, FEATURE_COLUMNS, FEATURE_VIEW, JOIN_KEY
from fx_pipeline.online import (
    decode_timestamp,
    decode_value,
    entity_key,
    field_name,
    murmur3_32,
)

INSTRUMENTS = ["USD_SGD", "EUR_USD", "", "X", "ÜBER_€", "a" * 300]


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_entity_key_is_feasts_serialized_key_plus_project(instrument):
    ek = EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=instrument)])
    feast_key = serialize_entity_key(ek, entity_key_serialization_version=3) + FEAST_PROJECT.encode()
    assert entity_key(JOIN_KEY, instrument, FEAST_PROJECT) == feast_key


def test_field_names_are_feasts_mmh3_of_view_and_feature():
    names = [*FEATURE_COLUMNS, "", "a", "ab", "abc", "abcd", "abcde", "ünï€ødé", "x" * 1000]
    for feature in names:
        assert field_name(FEATURE_VIEW, feature) == _mmh3(f"{FEATURE_VIEW}:{feature}"), feature


def test_murmur3_known_vectors():
    # Published MurmurHash3 x86_32 vectors (seed 0 unless given).
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"", seed=1) == 0x514E28B7
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


FLOATS = [0.0, -0.0, 1.5, -2.25e-308, 1e308, math.pi, math.inf, -math.inf]


@pytest.mark.parametrize("proto", [
    *[ValueProto(double_val=v) for v in FLOATS],
    *[ValueProto(float_val=v) for v in (0.0, 1.5, -3.25, 1e30)],
    *[ValueProto(int64_val=v) for v in (0, 1, -1, 2**63 - 1, -(2**63), 300)],
    *[ValueProto(int32_val=v) for v in (0, 1, -1, 2**31 - 1, -(2**31))],
    ValueProto(bool_val=True), ValueProto(bool_val=False),
    ValueProto(unix_timestamp_val=1_767_225_600), ValueProto(string_val="1.25"), ValueProto(bytes_val=b"-7"),
], ids=lambda p: f"{p.WhichOneof('val')}={getattr(p, p.WhichOneof('val'))!r}")
def test_values_decode_as_feasts_protobuf_holds_them(proto):
    kind = proto.WhichOneof("val")
    want = float(getattr(proto, kind))
    got = decode_value(proto.SerializeToString())
    assert got == want and math.copysign(1, got) == math.copysign(1, want)


def test_unset_and_null_values_are_nan():
    assert math.isnan(decode_value(ValueProto().SerializeToString()))
    assert math.isnan(decode_value(ValueProto(null_val=Null.NULL).SerializeToString()))
    assert math.isnan(decode_value(ValueProto(double_val=math.nan).SerializeToString()))


def test_list_values_and_garbage_are_refused():
    with pytest.raises(TypeError):
        decode_value(ValueProto(double_list_val={"val": [1.0, 2.0]}).SerializeToString())
    for junk in (b"\x29\x00", b"\xff", b"\x2a\x05ab", b"\x0b"):
        with pytest.raises(ValueError):
            decode_value(junk)


@pytest.mark.parametrize("when", [
    datetime(2026, 12, 4, 18, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=timezone.utc),
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1960, 6, 1, 12, 30, 1, 999999, tzinfo=timezone.utc),
])
def test_timestamps_decode_as_protobuf_does(when):
    ts = Timestamp()
    ts.FromDatetime(when)
    blob = ts.SerializeToString()
    assert decode_timestamp(blob) == ts.ToDatetime(tzinfo=timezone.utc) == when


def test_nanoseconds_round_toward_zero_as_protobuf_does():
    ts = Timestamp(seconds=1_767_225_600, nanos=999_999_999)
    assert decode_timestamp(ts.SerializeToString()) == ts.ToDatetime(tzinfo=timezone.utc)


def test_feasts_redis_write_path_is_read_back_field_by_field(feast_store, redis_client):
    """Feast's own online write (the materialisation path) stores exactly the key and fields the reader asks for."""
    from api_helpers import sample_features, write_features

    latest = write_features(feast_store, sample_features(hours=200))
    key = entity_key(JOIN_KEY, "USD_SGD", FEAST_PROJECT)
    stored = redis_client.hgetall(key)
    fields = {field_name(FEATURE_VIEW, f): f for f in FEATURE_COLUMNS}
    assert set(fields) | {f"_ts:{FEATURE_VIEW}".encode()} == set(stored)
    for raw, feature in fields.items():
        proto = ValueProto()
        proto.ParseFromString(stored[raw])
        assert decode_value(stored[raw]) == float(getattr(proto, proto.WhichOneof("val")))
        assert decode_value(stored[raw]) == pytest.approx(float(latest[feature].iloc[0]))
    ts = Timestamp()
    ts.ParseFromString(stored[f"_ts:{FEATURE_VIEW}".encode()])
    assert decode_timestamp(stored[f"_ts:{FEATURE_VIEW}".encode()]) == ts.ToDatetime(tzinfo=timezone.utc)
