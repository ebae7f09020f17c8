from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fx_pipeline.config import MarketHolidays, market_holidays_field, parse_instruments


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True,
                                      protected_namespaces=())

    redis_host: str = Field("localhost", validation_alias="REDIS_HOST")
    redis_port: int = Field(6379, validation_alias="REDIS_PORT", ge=1, le=65535)
    redis_password: SecretStr | None = Field(None, validation_alias="REDIS_PASSWORD")
    redis_db: int = Field(0, validation_alias="FEAST_REDIS_DB", ge=0)
    redis_max_connections: int = Field(32, validation_alias="REDIS_MAX_CONNECTIONS", ge=1, le=10000)
    # Every /predict and /health answers within this budget: a Redis call that has not answered by then is abandoned
    # (503 naming Redis) and trips the breaker, so later requests fail fast instead of queueing on a stuck connection.
    request_deadline_seconds: float = Field(0.25, validation_alias="REQUEST_DEADLINE_SECONDS", gt=0, le=30)
    # How often, while Redis is down, one probe checks whether it is back (recovery takes at most this + deadline).
    redis_retry_seconds: float = Field(0.25, validation_alias="REDIS_RETRY_SECONDS", gt=0, le=30)
    max_request_bytes: int = Field(16384, validation_alias="MAX_REQUEST_BYTES", ge=256, le=16 * 1024 * 1024)
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = Field("fx-usdsgd-predictor", validation_alias="MODEL_NAME", min_length=1)
    model_alias: str = Field("champion", validation_alias="MODEL_ALIAS", min_length=1)
    instruments: Annotated[list[str], NoDecode] = Field(["USD_SGD"], validation_alias="INSTRUMENTS")
    # Counted in trading time (fx_pipeline.market): features from the last close stay current while the market is
    # closed (weekends by New York time, and the holidays below).
    feature_max_age_seconds: float = Field(7200, validation_alias="FEATURE_MAX_AGE_SECONDS", gt=0)
    market_holidays: MarketHolidays = market_holidays_field()
    model_reload_seconds: float = Field(60, validation_alias="MODEL_RELOAD_SECONDS", gt=0)

    @field_validator("instruments", mode="before")
    @classmethod
    def _split(cls, v: object) -> list[str]:
        return parse_instruments(v)
