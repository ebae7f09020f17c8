from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fx_pipeline.config import parse_instruments


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True,
                                      protected_namespaces=())

    redis_host: str = Field("localhost", validation_alias="REDIS_HOST")
    redis_port: int = Field(6379, validation_alias="REDIS_PORT", ge=1, le=65535)
    redis_password: SecretStr | None = Field(None, validation_alias="REDIS_PASSWORD")
    redis_db: int = Field(0, validation_alias="FEAST_REDIS_DB", ge=0)
    redis_timeout_seconds: float = Field(0.5, validation_alias="REDIS_TIMEOUT_SECONDS", gt=0)
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = Field("fx-usdsgd-predictor", validation_alias="MODEL_NAME", min_length=1)
    model_alias: str = Field("champion", validation_alias="MODEL_ALIAS", min_length=1)
    instruments: Annotated[list[str], NoDecode] = Field(["USD_SGD"], validation_alias="INSTRUMENTS")
    feature_max_age_seconds: float = Field(7200, validation_alias="FEATURE_MAX_AGE_SECONDS", gt=0)
    model_reload_seconds: float = Field(60, validation_alias="MODEL_RELOAD_SECONDS", gt=0)

    @field_validator("instruments", mode="before")
    @classmethod
    def _split(cls, v: object) -> list[str]:
        return parse_instruments(v)
