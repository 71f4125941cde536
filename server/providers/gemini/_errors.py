"""What the API's failures mean: which are worth another try, which are quota refusals and how
long they ask us to wait, and the ProviderError for each failure that ends a call.
"""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any, TypeGuard

import httpx2
import pydantic
from google.genai import errors

from server.providers._base import ProviderError

# Statuses worth another try: timeouts and server errors (429s are the gate's, not an attempt's).
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# What the SDK raises when an answer is not the JSON it expects.
UNREADABLE = (errors.UnknownApiResponseError, json.JSONDecodeError, pydantic.ValidationError)
# How a quota that lasts the day names itself: "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
# "requests per day", "daily limit".
_DAILY = re.compile(r"per\s*day|daily", re.IGNORECASE)
# The sentence Gemini puts in a 429's message: "Please retry in 37.88s."
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)(ms|s)\b", re.IGNORECASE)


class AttemptTimedOut(Exception):
    """An attempt did not get its whole answer within ATELIER_GEMINI_ATTEMPT_SECONDS."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")


class IncompleteAnswer(Exception):
    """The stream ended before the model said it had finished (worth another try)."""


def is_quota_refusal(exc: BaseException) -> TypeGuard[errors.APIError]:
    """The model refused the request for quota (429 RESOURCE_EXHAUSTED)."""
    return isinstance(exc, errors.APIError) and exc.code == 429


def is_daily_quota(exc: errors.APIError) -> bool:
    """A 429 that says a quota for the whole day is used up: waiting minutes would not help.

    Gemini names the quota in a google.rpc.QuotaFailure (its quotaId, e.g.
    "GenerateRequestsPerDayPerProjectPerModel-FreeTier"). A daily 429 still carries a short
    RetryInfo, so this is asked before the delay is."""
    for detail in _error_details(exc):
        if not str(detail.get("@type", "")).endswith("QuotaFailure"):
            continue
        for violation in detail.get("violations") or []:
            if isinstance(violation, dict) and any(
                _DAILY.search(str(violation.get(key, ""))) for key in ("quotaId", "quotaMetric")
            ):
                return True
    return bool(_DAILY.search(exc.message or ""))


def requested_delay(exc: Exception) -> float | None:
    """The longest delay, in seconds, the answer asks for: google.rpc.RetryInfo, the Retry-After
    header (seconds or an HTTP date), or the message's "retry in" sentence; None if it asks none."""
    asked = [delay for delay in (_retry_info(exc), _retry_after(exc), _retry_in(exc)) if delay is not None]
    return max(asked) if asked else None


def _retry_info(exc: Exception) -> float | None:
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def _retry_after(exc: Exception) -> float | None:
    # The SDK keeps the HTTP response (httpx2's, or its own for an error in the stream).
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    value = next((str(v).strip() for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if not value:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _retry_in(exc: Exception) -> float | None:
    message = exc.message if isinstance(exc, errors.APIError) else None
    match = _RETRY_IN.search(message or "")
    if match is None:
        return None
    return float(match[1]) / (1000 if match[2].lower() == "ms" else 1)


def transient(exc: Exception) -> str | None:
    """A short description of a failure worth another attempt, or None."""
    if isinstance(exc, errors.APIError):
        if exc.code == 429:
            # Only in the middle of a stream: before the first chunk, a 429 is the gate's.
            return "model busy (429)"
        if exc.code == 408:
            return "model timed out (408)"
        if exc.code in _TRANSIENT_STATUS:
            return f"model unavailable ({exc.code})"
        return None
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return "model timed out"
    if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError, ConnectionError)):
        return f"connection to the model failed ({type(exc).__name__})"
    if isinstance(exc, IncompleteAnswer):
        return "the answer stopped before it finished"
    if isinstance(exc, AttemptTimedOut):
        return str(exc)
    return None


def refuses_thoughts(exc: Exception) -> bool:
    """The model rejected the request because it does not think (it has no thoughts to include):
    "Thinking is not enabled for models/…", "include_thoughts is only enabled when thinking is enabled"."""
    return (
        isinstance(exc, errors.APIError)
        and exc.code == 400
        and bool(re.search(r"thinking|include_?thoughts", exc.message or "", re.IGNORECASE))
    )


def _error_reason(exc: Exception) -> str:
    """The google.rpc.ErrorInfo reason of an API error, if it has one (e.g. API_KEY_INVALID)."""
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("ErrorInfo"):
            return str(detail.get("reason", ""))
    return ""


def _error_details(exc: Exception) -> list[dict[str, Any]]:
    """The `details` of a Google error body: [{"@type": ..., ...}, ...]."""
    body = exc.details if isinstance(exc, errors.APIError) else None
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [detail for detail in details or [] if isinstance(detail, dict)]


def daily_quota_error(exc: errors.APIError, model: str) -> ProviderError:
    said = f": {exc.message}" if exc.message else ""
    return ProviderError(
        f"{model} has used up its daily quota; it takes requests again tomorrow{said}",
        reason="MODEL_DAILY_QUOTA_EXHAUSTED",
        code="RESOURCE_EXHAUSTED",
    )


def provider_error(exc: Exception, model: str) -> ProviderError:
    """The ProviderError for a failure that another try would not fix."""
    if not isinstance(exc, errors.APIError):
        return ProviderError(
            f"the Gemini API gave an answer that could not be read ({type(exc).__name__}: {exc})",
            reason="MODEL_BAD_RESPONSE",
            code="UNAVAILABLE",
        )
    said = exc.message or exc.status or "no message"
    key_refused = exc.code in (401, 403) or _error_reason(exc) == "API_KEY_INVALID"
    if key_refused:
        return ProviderError(
            f"the Gemini API key was refused for model {model}: {said} "
            "\u2014 check that the key is valid and has access to this model",
            reason="MODEL_PERMISSION_DENIED",
            code="PERMISSION_DENIED",
        )
    if exc.code == 400:
        return ProviderError(
            f"the Gemini API rejected the request to {model}: {said}",
            reason="MODEL_INVALID_ARGUMENT",
            code="INVALID_ARGUMENT",
        )
    if exc.code == 404:
        return ProviderError(
            f"the Gemini API has no model {model!r} that can generate content: {said}",
            reason="MODEL_NOT_FOUND",
            code="FAILED_PRECONDITION",
        )
    if 400 <= exc.code < 500:
        return ProviderError(
            f"the Gemini API refused the request to {model} ({exc.code}): {said}",
            reason="MODEL_REQUEST_REJECTED",
            code="FAILED_PRECONDITION",
        )
    return ProviderError(
        f"the Gemini API failed on {model} ({exc.code}): {said}",
        reason="MODEL_UNAVAILABLE",
        code="UNAVAILABLE",
        retryable=True,
    )


def exhausted_error(exc: Exception, why: str, model: str, attempts: int) -> ProviderError:
    said = f": {exc.message}" if isinstance(exc, errors.APIError) and exc.message else ""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return ProviderError(
        f"{model} is unavailable, after {tries} ({why}){said}",
        reason="MODEL_UNAVAILABLE",
        code="UNAVAILABLE",
        retryable=True,
    )
