"""Thin reader of Feast's Redis online-store layout, with its own small key encoder and value decoder.

Feast (``RedisOnlineStore``) keeps one Redis hash per entity: key = serialized entity key + project;
fields = murmur3("<view>:<feature>") -> ValueProto bytes, and "_ts:<view>" -> Timestamp bytes.
Reading it with one HMGET keeps /predict well under a millisecond of Redis time. The encoders below write the same
bytes as Feast's (``serialize_entity_key`` v3, ``_mmh3``) and the decoder reads Feast's ``Value`` and protobuf's
``Timestamp`` messages without Feast or protobuf installed: the serving image carries neither. The suites that have
Feast installed prove byte identity against Feast itself (tests/fastapi/test_online_encoding.py) and read what
Feast's own write path stored (tests/pipeline/test_feast_online.py).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .feature_defs import FEAST_PROJECT, FEATURE_COLUMNS, FEATURE_VIEW, JOIN_KEY

_VALUE_TYPE_STRING = 2  # feast.types.ValueType.STRING
_U32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, unsigned: ``mmh3.hash(data, seed, signed=False)``, which Feast hashes field names with."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    n = len(data)
    tail = n - n % 4
    for i in range(0, tail, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    k = int.from_bytes(data[tail:], "little") if tail < n else 0
    if k:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def field_name(feature_view: str, feature: str) -> bytes:
    """The hash field of one feature: Feast's ``_mmh3(f"{view}:{feature}")`` (4 bytes, little-endian)."""
    return murmur3_32(f"{feature_view}:{feature}".encode()).to_bytes(4, "little")


def entity_key(join_key: str, value: str, project: str) -> bytes:
    """Feast's ``serialize_entity_key`` (version 3) of one string join key, plus the project: the Redis key."""
    k, v = join_key.encode(), value.encode()
    return b"".join((_U32.pack(1), _U32.pack(_VALUE_TYPE_STRING), _U32.pack(len(k)), k,
                     _U32.pack(_VALUE_TYPE_STRING), _U32.pack(len(v)), v, project.encode()))


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, raw value) of each field of a protobuf message, in order."""
    pos, n = 0, len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise ValueError("truncated fixed64")
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise ValueError("truncated length-delimited field")
            val, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > n:
                raise ValueError("truncated fixed32")
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if num == 0:
            raise ValueError("field number 0")
        yield num, wire, val


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


# Feast's Value message: its oneof ``val``; field number -> (wire type, decoder to float). Fields 9-18 and 20 and
# up are lists, sets, maps and the like: a feature the model reads is never one of them.
_SCALARS = {
    1: (2, float),                                  # bytes_val
    2: (2, lambda b: float(b.decode())),            # string_val
    3: (0, lambda v: float(_signed(v, 32))),        # int32_val
    4: (0, lambda v: float(_signed(v, 64))),        # int64_val
    5: (1, lambda b: _DOUBLE.unpack(b)[0]),         # double_val
    6: (5, lambda b: _FLOAT.unpack(b)[0]),          # float_val
    7: (0, lambda v: float(v != 0)),                # bool_val
    8: (0, lambda v: float(_signed(v, 64))),        # unix_timestamp_val
}
_NULL_VAL = 19


def decode_value(blob: bytes) -> float:
    """A Feast ``Value`` as a float: NaN when unset or null; ValueError/TypeError for a kind no model reads."""
    if len(blob) == 9 and blob[0] == 0x29:  # double_val, the common case: tag (5 << 3 | 1) + 8 bytes
        return _DOUBLE.unpack_from(blob, 1)[0]
    last = None
    for num, wire, val in _fields(blob):
        last = (num, wire, val)  # a oneof keeps its last field on the wire
    if last is None:
        return math.nan
    num, wire, val = last
    if num == _NULL_VAL:
        return math.nan
    kind = _SCALARS.get(num)
    if kind is None or kind[0] != wire:
        raise TypeError(f"Value field {num} (wire type {wire}) is not a scalar feature")
    return kind[1](val)


def decode_timestamp(blob: bytes) -> datetime:
    """A ``google.protobuf.Timestamp`` as an aware UTC datetime (as ``Timestamp.ToDatetime(tzinfo=utc)``)."""
    seconds = nanos = 0
    for num, wire, val in _fields(blob):
        if num == 1 and wire == 0:
            seconds = _signed(val, 64)
        elif num == 2 and wire == 0:
            nanos = _signed(val, 32)
    return _EPOCH + timedelta(seconds=seconds, microseconds=int(nanos / 1000))


@dataclass(frozen=True)
class OnlineFeatures:
    instrument: str
    values: dict[str, float]
    event_timestamp: datetime

    def age_seconds(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        return (now - self.event_timestamp).total_seconds()


class FeatureRowIncomplete(LookupError):
    pass


class OnlineFeatureReader:
    def __init__(
        self,
        redis_client,
        *,
        project: str = FEAST_PROJECT,
        feature_view: str = FEATURE_VIEW,
        features: list[str] | None = None,
        entity_key_serialization_version: int = 3,
    ) -> None:
        self.redis = redis_client
        self.project = project
        self.version = entity_key_serialization_version
        self.features = list(features or FEATURE_COLUMNS)
        if entity_key_serialization_version != 3:
            raise ValueError("only Feast's entity key serialization version 3 is supported")
        self._fields = [field_name(feature_view, f) for f in self.features] + [f"_ts:{feature_view}".encode()]
        self._keys: dict[str, bytes] = {}

    def key(self, instrument: str) -> bytes:
        k = self._keys.get(instrument)
        if k is None:
            k = entity_key(JOIN_KEY, instrument, self.project)
            self._keys[instrument] = k
        return k

    def read(self, instrument: str) -> OnlineFeatures | None:
        """Features for ``instrument``, or None if the store has no row for it."""
        raw = self.redis.hmget(self.key(instrument), self._fields)
        return self._decode(instrument, raw)

    async def aread(self, instrument: str) -> OnlineFeatures | None:
        """Same as :meth:`read` with a ``redis.asyncio`` client."""
        raw = await self.redis.hmget(self.key(instrument), self._fields)
        return self._decode(instrument, raw)

    def _decode(self, instrument: str, raw: list[bytes | None]) -> OnlineFeatures | None:
        if all(v is None for v in raw):
            return None
        *vals, ts_raw = raw
        missing = [f for f, v in zip(self.features, vals) if v is None]
        if ts_raw is None or missing:
            raise FeatureRowIncomplete(
                f"online row for {instrument} lacks {missing or ['_ts']}: re-materialize the feature view"
            )
        name = "_ts"
        try:  # a row another writer (or a Feast upgrade) left in a shape we cannot read is incomplete, not a crash
            stamp = decode_timestamp(ts_raw)
            values: dict[str, float] = {}
            for name, blob in zip(self.features, vals):
                values[name] = decode_value(blob)
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
            raise FeatureRowIncomplete(
                f"online row for {instrument} has an unreadable {name}: {type(exc).__name__}: {exc}"[:300]
            ) from None
        return OnlineFeatures(instrument, values, stamp)
