from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FinGPTSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    mode: Literal["model", "lexicon"] = Field("lexicon", validation_alias="FINGPT_MODE")
    base_model: str | None = Field(None, validation_alias="FINGPT_BASE_MODEL")
    adapter: str | None = Field(None, validation_alias="FINGPT_ADAPTER")
    load_in_8bit: bool = Field(True, validation_alias="FINGPT_LOAD_IN_8BIT")
    max_batch: int = Field(32, validation_alias="FINGPT_MAX_BATCH", ge=1, le=512)
    max_chars: int = Field(2000, validation_alias="FINGPT_MAX_CHARS", ge=16)
    max_input_tokens: int = Field(512, validation_alias="FINGPT_MAX_INPUT_TOKENS", ge=16)

    @model_validator(mode="after")
    def _model_needs_base(self):
        if self.mode == "model" and not self.base_model:
            raise ValueError("FINGPT_MODE=model needs FINGPT_BASE_MODEL (a hub id or a local path)")
        return self
