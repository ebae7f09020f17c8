"""The HTTP contract shared by fx-fastapi and fx-fingpt (installed into both images; see dockerfiles/README.md).

- every error is JSON ``{"detail": ...}``; 422 adds ``errors``, 503 adds ``dependency`` (errors.py)
- 404/405/422/503 handlers, 405 with ``Allow`` (errors.py)
- request bodies over a configured size answer 413 naming the limit (body.py)
- JSON bodies are strict RFC 8259: no NaN/Infinity, no lone surrogates, bounded nesting (body.py)
- a dependency that fails or does not answer within its deadline trips a breaker: requests fail fast with 503
  naming it while one probe at a time finds out when it is back (breaker.py)
- per-request timing without BaseHTTPMiddleware (timing.py)
- all of the above on an app in one call (contract.py)
"""

from .body import BodyLimitMiddleware, StrictJSONRoute, check_json
from .breaker import Breaker
from .contract import apply_contract
from .errors import (
    DependencyUnavailable,
    ErrorBody,
    FieldError,
    UnavailableBody,
    ValidationErrorBody,
    error_responses,
    install_error_handlers,
    invalid,
)
from .timing import TimingMiddleware

__all__ = [
    "apply_contract", "BodyLimitMiddleware", "Breaker", "DependencyUnavailable", "ErrorBody", "FieldError", "StrictJSONRoute",
    "TimingMiddleware", "UnavailableBody", "ValidationErrorBody", "check_json", "error_responses",
    "install_error_handlers", "invalid",
]
