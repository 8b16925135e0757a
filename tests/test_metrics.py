"""GET /metrics: Prometheus text, protected, with the figures operators alert on."""

from __future__ import annotations

from collections.abc import Callable

from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, new_email, serve, signup


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_failures_rejections_and_read_the_database(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(RATE_LIMIT_LOGIN_PER_ACCOUNT="2/minute")) as client:
        before = _samples((await client.get("/metrics")).text)
        email = new_email()
        await signup(client, email=email)
        for _ in range(3):
            await client.post("/auth/login", json={"email": email, "password": "not the password"})
        after = _samples((await client.get("/metrics")).text)

    route = {"method": "POST", "route": "/auth/signup", "status": "201"}
    assert (
        _value(after, "aisupport_http_requests_total", **route)
        == _value(before, "aisupport_http_requests_total", **route) + 1
    )
    assert (
        _value(after, "aisupport_login_failures_total") - _value(before, "aisupport_login_failures_total")
        == 2
    )
    rejected = {"limit": "login_account"}
    assert (
        _value(after, "aisupport_rate_limit_rejections_total", **rejected)
        - _value(before, "aisupport_rate_limit_rejections_total", **rejected)
        == 1
    )
    histogram = {"method": "POST", "route": "/auth/login", "le": "+Inf"}
    assert _value(after, "aisupport_http_request_duration_seconds_bucket", **histogram) >= 3
    assert _value(after, "aisupport_db_pool_size") == 2 * Settings().DATABASE_POOL_SIZE  # kept + overflow
    assert ("aisupport_jobs", (("status", "todo"),)) in after  # read from the queue at scrape time
    assert ("aisupport_job_oldest_todo_age_seconds", ()) in after
    assert ("aisupport_webhook_pending", ()) in after  # read across organizations at scrape time
    assert ("aisupport_webhook_oldest_pending_age_seconds", ()) in after
    assert ("aisupport_db_pool_connections", (("state", "waiting"),)) in after


async def test_unknown_paths_share_one_label(client: AsyncClient) -> None:
    await client.get("/no/such/path/a1")
    await client.get("/no/such/path/b2")
    text = (await client.get("/metrics")).text
    assert 'route="unmatched"' in text
    assert "/no/such/path" not in text


async def test_metrics_need_the_token_when_one_is_set_and_are_absent_in_production_without(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(METRICS_TOKEN="scrape-secret")) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
    production = make_settings(
        ENV="prod", SECRET_KEY="p" * 40, SMTP_HOST="127.0.0.1", APP_DATABASE_PASSWORD="a" * 16
    )
    async with serve(production) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert PASSWORD not in (await client.get("/metrics")).text
