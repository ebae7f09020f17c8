"""Feast definitions: entity ``instrument`` and the hourly market feature view.

The batch source is the silver parquet that the pipeline writes under ``$FX_DATA_DIR``;
``feast apply`` records that path in the registry, so apply where the worker's data dir is mounted.
"""

import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

from fx_pipeline.feature_defs import (
    ENTITY_NAME,
    FEATURE_TTL_HOURS,
    FEATURE_VIEW,
    FLOAT_FEATURES,
    INT_FEATURES,
    JOIN_KEY,
    SILVER_FILE,
    TIMESTAMP_FIELD,
)

instrument = Entity(
    name=ENTITY_NAME,
    join_keys=[JOIN_KEY],
    value_type=ValueType.STRING,
    description="OANDA instrument such as USD_SGD",
)

market_source = FileSource(
    name="market_features_silver",
    path=os.path.join(os.environ.get("FX_DATA_DIR", "/data"), SILVER_FILE),
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
