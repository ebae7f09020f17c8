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
    # /analyze answers within this budget: a batch still running then gets 503, and while the model has been busy
    # on one batch for longer than this, new requests fail fast instead of queueing behind it.
    deadline_seconds: float = Field(10.0, validation_alias="FINGPT_DEADLINE_SECONDS", gt=0, le=600)
    max_request_bytes: int = Field(1024 * 1024, validation_alias="MAX_REQUEST_BYTES", ge=256,
                                   le=64 * 1024 * 1024)

    @model_validator(mode="after")
    def _model_needs_base(self):
        if self.mode == "model" and not self.base_model:
            raise ValueError("FINGPT_MODE=model needs FINGPT_BASE_MODEL (a hub id or a local path)")
        return self

    @model_validator(mode="after")
    def _limit_fits_a_full_batch(self):
        # a full batch of the longest headlines, each character written as a 12-byte surrogate-pair escape
        need = self.max_batch * (self.max_chars * 12 + 8) + 64
        if self.max_request_bytes < need:
            raise ValueError(f"MAX_REQUEST_BYTES={self.max_request_bytes} is below {need}, the size of a valid "
                             f"request of FINGPT_MAX_BATCH={self.max_batch} headlines of FINGPT_MAX_CHARS="
                             f"{self.max_chars} characters: raise it or lower those")
        return self
