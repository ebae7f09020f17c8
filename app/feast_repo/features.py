"""Feast definitions: entity ``instrument`` and the hourly market feature view.

The batch source is the feature table the pipeline writes into the ``feast`` database (fx_pipeline.datastore), read
through the Postgres offline store of feature_store.yaml: any worker, on any node, materializes from the same rows.
"""

from datetime import timedelta

from feast import Entity, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Float64, Int64

from fx_pipeline.feature_defs import (
    ENTITY_NAME,
    FEATURE_TTL_HOURS,
    FEATURE_VIEW,
    FEATURES_TABLE,
    FLOAT_FEATURES,
    INT_FEATURES,
    JOIN_KEY,
    TIMESTAMP_FIELD,
)

instrument = Entity(
    name=ENTITY_NAME,
    join_keys=[JOIN_KEY],
    value_type=ValueType.STRING,
    description="OANDA instrument such as USD_SGD",
)

market_source = PostgreSQLSource(
    name="market_features_silver",
    table=FEATURES_TABLE,
    timestamp_field=TIMESTAMP_FIELD,
)

market_features = FeatureView(
    name=FEATURE_VIEW,
    entities=[instrument],
    ttl=timedelta(hours=FEATURE_TTL_HOURS),
    schema=[Field(name=f, dtype=Float64) for f in FLOAT_FEATURES]
    + [Field(name=f, dtype=Int64) for f in INT_FEATURES],
    online=True,
    source=market_source,
    tags={"team": "fx", "granularity": "H1"},
)
