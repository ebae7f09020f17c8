"""Settings read from the environment (names fixed by docs/contracts.md)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .market import HOLIDAYS_ENV, parse_holidays

INSTRUMENT_RE = re.compile(r"^[A-Z]{3}_[A-Z]{3}$")


def parse_instruments(value: object) -> list[str]:
    """Parse a comma list such as ``USD_SGD,EUR_USD``; each item must look like ``XXX_YYY``."""
    if isinstance(value, str):
        items = [v.strip().upper() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip().upper() for v in value]
    else:
        raise ValueError(f"INSTRUMENTS must be a comma-separated list, got {type(value).__name__}")
    if not items:
        raise ValueError("INSTRUMENTS is empty: give at least one instrument such as USD_SGD")
    for item in items:
        if not INSTRUMENT_RE.match(item):
            raise ValueError(f"INSTRUMENTS item {item!r} is not an OANDA instrument like USD_SGD")
    return list(dict.fromkeys(items))


# MARKET_HOLIDAYS as a settings field: a comma list of ISO dates (fx_pipeline.market), read by the service and the tasks.
MarketHolidays = Annotated[frozenset[date], NoDecode, BeforeValidator(parse_holidays)]


def market_holidays_field():
    return Field(frozenset(), validation_alias=HOLIDAYS_ENV)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)


class OandaSettings(_Base):
    api_token: SecretStr = Field(validation_alias="OANDA_API_TOKEN")
    account_id: str = Field(validation_alias="OANDA_ACCOUNT_ID", min_length=1)
    environment: Literal["practice", "live"] = Field("practice", validation_alias="OANDA_ENVIRONMENT")


class RedisSettings(_Base):
    host: str = Field("localhost", validation_alias="REDIS_HOST")
    port: int = Field(6379, validation_alias="REDIS_PORT", ge=1, le=65535)
    password: SecretStr | None = Field(None, validation_alias="REDIS_PASSWORD")
    db: int = Field(0, validation_alias="FEAST_REDIS_DB", ge=0)


class PipelineSettings(_Base):
    data_source: Literal["oanda", "sample"] = Field("sample", validation_alias="FX_DATA_SOURCE")
    instruments: Annotated[list[str], NoDecode] = Field(["USD_SGD"], validation_alias="INSTRUMENTS")
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = Field("fx-usdsgd-predictor", validation_alias="MODEL_NAME", min_length=1)
    model_alias: str = Field("champion", validation_alias="MODEL_ALIAS", min_length=1)
    feast_repo_path: Path = Field(Path("/app/feast_repo"), validation_alias="FEAST_REPO_PATH")
    # How much history a collection run asks for (hours of H1 candles).
    history_hours: int = Field(24 * 365, validation_alias="FX_HISTORY_HOURS", ge=100, le=24 * 365 * 5)
    sample_seed: int = Field(42, validation_alias="FX_SAMPLE_SEED")
    # Days the sample source makes no candles besides weekends (the service does not age features on them either).
    market_holidays: MarketHolidays = market_holidays_field()

    @field_validator("instruments", mode="before")
    @classmethod
    def _split(cls, v: object) -> list[str]:
        return parse_instruments(v)
