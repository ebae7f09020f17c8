"""Thin reader of Feast's Redis online-store layout, built on Feast's own key encoders.

Feast (``RedisOnlineStore``) keeps one Redis hash per entity: key = serialized entity key + project;
fields = murmur3("<view>:<feature>") -> ValueProto bytes, and "_ts:<view>" -> Timestamp bytes.
Reading it with one HMGET keeps /predict well under a millisecond of Redis time; the key and field
encoders are Feast's, so a change of layout in Feast shows up in the round-trip test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from .feature_defs import FEAST_PROJECT, FEATURE_COLUMNS, FEATURE_VIEW, JOIN_KEY


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
        self.project = project.encode()
        self.version = entity_key_serialization_version
        self.features = list(features or FEATURE_COLUMNS)
        self._fields = [_mmh3(f"{feature_view}:{f}") for f in self.features] + [f"_ts:{feature_view}".encode()]
        self._keys: dict[str, bytes] = {}

    def key(self, instrument: str) -> bytes:
        k = self._keys.get(instrument)
        if k is None:
            ek = EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=instrument)])
            k = serialize_entity_key(ek, entity_key_serialization_version=self.version) + self.project
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
            ts = Timestamp()
            ts.ParseFromString(ts_raw)
            stamp = ts.ToDatetime(tzinfo=timezone.utc)
            values: dict[str, float] = {}
            for name, blob in zip(self.features, vals):
                v = ValueProto()
                v.ParseFromString(blob)
                kind = v.WhichOneof("val")
                values[name] = float(getattr(v, kind)) if kind else float("nan")
        except (DecodeError, ValueError, TypeError, OverflowError) as exc:
            raise FeatureRowIncomplete(
                f"online row for {instrument} has an unreadable {name}: {type(exc).__name__}: {exc}"[:300]
            ) from None
        return OnlineFeatures(instrument, values, stamp)
