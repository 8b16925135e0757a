"""The errors of the probes and the metrics, referenced by name, beside what OpenAPI says of them."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer, Unauthorized

WRONG_METRICS_TOKEN = ProblemAnswer(401, "METRICS_TOKEN is set and the bearer token is not it")
METRICS_NOT_SERVED = ProblemAnswer(404, "production without METRICS_TOKEN: the metrics are not served")


def wrong_metrics_token() -> Unauthorized:
    return Unauthorized("invalid_token", "The metrics token is missing or wrong.")


def metrics_not_served() -> AppError:
    # As if the route did not exist: the answer of any unknown path.
    return AppError(404, "not_found", "Not Found")
