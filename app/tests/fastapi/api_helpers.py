"""Helpers shared by the fastapi tests (importable: conftest puts this folder on sys.path)."""

from datetime import datetime, timezone


def sample_features(end: datetime | None = None, hours: int = 1500):
    from fx_pipeline.features import build_features
    from fx_pipeline.sample import sample_candles

    end = end or datetime.now(timezone.utc)
    return build_features(sample_candles("USD_SGD", hours, end=end))


def write_features(store, feats, event_timestamp=None):
    """Write the newest row through Feast's own online write path, optionally re-stamped."""
    from fx_pipeline import feast_store as fs
    from fx_pipeline.features import latest_rows

    latest = latest_rows(feats)
    if event_timestamp is not None:
        latest["event_timestamp"] = event_timestamp
    fs.write_online(store, latest)
    return latest


def train(uri, feats, **params):
    from fx_pipeline.train import train_and_register

    return train_and_register(feats, model_name="fx-usdsgd-predictor", tracking_uri=uri, params=params or None)
