"""Names shared by feast_repo/, the pipeline and the online reader: no Feast, pandas or numpy import here (the
serving image imports this module and carries none of them)."""

FLOAT_FEATURES = [
    "ret_1h",
    "ret_4h",
    "ret_24h",
    "vol_24h",
    "zscore_24h",
    "ewma_12_ratio",
    "ewma_48_ratio",
    "spread_bps",
    "range_bps",
]
INT_FEATURES = ["session_asia", "session_london", "session_ny"]
FEATURE_COLUMNS = FLOAT_FEATURES + INT_FEATURES

FEAST_PROJECT = "fx_pipeline"
ENTITY_NAME = "instrument"
JOIN_KEY = "instrument"
FEATURE_VIEW = "market_features_h1"
TIMESTAMP_FIELD = "event_timestamp"
FEATURE_TTL_HOURS = 24 * 7
# Tables of the `feast` database (fx_pipeline.datastore): the candles (bronze) and the feature table (silver), which
# is also the Feast offline store's source of the feature view.
CANDLES_TABLE = "fx_candles_h1"
FEATURES_TABLE = "fx_market_features_h1"

__all__ = [
    "CANDLES_TABLE", "ENTITY_NAME", "FEAST_PROJECT", "FEATURE_COLUMNS", "FEATURE_TTL_HOURS", "FEATURE_VIEW",
    "FEATURES_TABLE", "FLOAT_FEATURES", "INT_FEATURES", "JOIN_KEY", "TIMESTAMP_FIELD",
]
