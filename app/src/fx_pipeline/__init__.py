"""FX ML pipeline: OANDA H1 candles -> features -> Feast online store -> XGBoost model in MLflow."""

__version__ = "0.1.0"
