"""The fakes reproduce the behaviours read in Cachet's source (docs/cachet-versions.md)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_cachet import FakeCachet
from fake_cachet3 import FakeCachet3
from fake_ingest import FakeIngest
from fake_pingdom import FakePingdom

T0 = 1_700_000_040  # a whole minute


def v1(fake: FakeCachet, *, token: bool = True) -> httpx.Client:
    """A plain client on a 2.x fake, as statusbridge sends (Time-Zone: UTC)."""
    headers = {"Accept": "application/json", "Time-Zone": "UTC"}
    if token:
        headers["X-Cachet-Token"] = fake.token
    return httpx.Client(base_url=fake.base_url, headers=headers, trust_env=False)


def v3(fake: FakeCachet3, token: str | None = None) -> httpx.Client:
    """A plain client on the 3 fake with a Bearer token."""
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token or fake.token}"}
    return httpx.Client(base_url=fake.base_url, headers=headers, trust_env=False)


@pytest.fixture(params=["2.3", "2.4.1", "2.4"])
def fake2(request: pytest.FixtureRequest) -> Iterator[FakeCachet]:
    """Each 2.x flavour."""
    with FakeCachet(version=request.param) as fake:
        yield fake


def test_points_order_and_rounding_per_version(fake2: FakeCachet) -> None:
    """2.3 lists points as inserted and keeps times as sent; 2.4 lists newest first, rounded."""
    fake2.add_metric(1)
    with v1(fake2) as client:
        for offset, value in ((600, 1.0), (0, 2.0), (300, 3.0)):
            client.post("/metrics/1/points", json={"value": value, "timestamp": T0 + offset + 14})
        listed = [p["value"] for p in client.get("/metrics/1/points").json()["data"]]
    times = [row[0] for row in fake2.point_rows(1)]
    if fake2.version == "2.3":
        assert listed == [1.0, 2.0, 3.0]
        assert times == [T0 + 14, T0 + 314, T0 + 614]
    else:
        assert listed == [1.0, 3.0, 2.0]
        assert times == [T0, T0 + 300, T0 + 600]


def test_component_put_per_version(fake2: FakeCachet) -> None:
    """2.3 re-enables and mails on every PUT; 2.4 keeps `enabled` and honours `silent`."""
    fake2.add_component(1, enabled=False)
    with v1(fake2) as client:
        client.put("/components/1", json={"status": 4, "silent": True})
        client.put("/components/1", json={"status": 1})
    assert fake2.components[1]["enabled"] is (fake2.version == "2.3")
    assert fake2.component_mails() == (2 if fake2.version == "2.3" else 1)


def test_incident_component_link_per_version(fake2: FakeCachet) -> None:
    """An incident's component_status mails only on the 2.4 tags."""
    fake2.add_component(1)
    with v1(fake2) as client:
        body = {"name": "n", "message": "m", "status": 1, "component_id": 1, "component_status": 4}
        created = client.post("/incidents", json=body)
    assert created.status_code == 200
    assert fake2.components[1]["status"] == 4
    assert fake2.component_mails() == (1 if fake2.version == "2.4.1" else 0)
    assert fake2.incident_mails() == 1


def test_updates_route_and_put_resets(fake2: FakeCachet) -> None:
    """/updates is 2.4 only and mails even without notify; a PUT resets `visible`."""
    with v1(fake2) as client:
        body = {"name": "n", "message": "m", "status": 1, "visible": 0, "notify": False}
        incident = client.post("/incidents", json=body).json()["data"]
        path = f"/incidents/{incident['id']}"
        update = client.post(f"{path}/updates", json={"status": 2, "message": "x"})
        client.put(path, json={"status": 3})
        schedules = client.get("/schedules")
    assert update.status_code == (404 if fake2.version == "2.3" else 200)
    assert schedules.status_code == (404 if fake2.version == "2.3" else 200)
    assert fake2.incidents[incident["id"]]["visible"] == 1
    assert fake2.incident_mails() == 0  # invisible while the update was posted


def test_wrong_token_is_a_guest_on_reads() -> None:
    """A wrong token reads like a guest; only writes and /subscribers refuse it."""
    with FakeCachet() as fake, v1(fake, token=False) as client:
        fake.add_component(1)
        headers = {"X-Cachet-Token": "wrong"}
        assert client.get("/components/1", headers=headers).status_code == 200
        assert client.get("/subscribers", headers=headers).status_code == 401
        assert client.put("/components/1", json={"status": 2}, headers=headers).status_code == 401


def test_version_needs_github() -> None:
    """GET /version fails when the Cachet server cannot reach GitHub."""
    with FakeCachet(github_reachable=False) as fake, v1(fake) as client:
        assert client.get("/version").status_code == 500


def test_app_timezone_shifts_points_on_2_4_only() -> None:
    """With APP_TIMEZONE=Europe/Berlin a 2.4 point reads back an hour early (November)."""
    with FakeCachet(version="2.4.1", app_timezone="Europe/Berlin") as fake, v1(fake) as client:
        fake.add_metric(1)
        answer = client.post("/metrics/1/points", json={"value": 1, "timestamp": T0}).json()
    assert answer["data"]["created_at"] == "2023-11-14 21:14:00"  # T0 is 22:14 UTC
    assert fake.point_rows(1)[0][0] == T0 - 3600


def test_cachet3_points_dedup_auth_and_shapes(cachet3_fake: FakeCachet3) -> None:
    """Cachet 3: 201, JSON:API attributes, id order, the latest point absorbs a close one."""
    cachet3_fake.add_metric(1, threshold=5)
    with v3(cachet3_fake) as client:
        client.post("/metrics/1/points", json={"value": 2, "timestamp": T0 - 3600})
        first = client.post("/metrics/1/points", json={"value": 1, "timestamp": T0})
        folded = client.post("/metrics/1/points", json={"value": 9, "timestamp": T0 + 240})
        by_id = client.get("/metrics/1/points").json()["data"]
        newest = client.get("/metrics/1/points", params={"sort": "-created_at"}).json()["data"]
        refused = client.get("/subscribers")
        bad = client.post(
            "/metrics/1/points", json={"value": 1}, headers={"Authorization": "Bearer nope"}
        )
        invalid = client.post("/metrics/1/points", json={"value": "x"})
    assert first.status_code == 201
    assert folded.json()["data"]["attributes"]["counter"] == 2
    assert [p["attributes"]["value"] for p in by_id] == [2.0, 1.0]
    assert [p["attributes"]["value"] for p in newest] == [1.0, 2.0]
    assert newest[0]["attributes"]["created"]["string"] == "2023-11-14 22:14:00"
    assert (refused.status_code, bad.status_code, invalid.status_code) == (403, 401, 422)
    assert "errors" in invalid.json()


def test_cachet3_incidents_default_hidden_and_silent(cachet3_fake: FakeCachet3) -> None:
    """Cachet 3 creates incidents hidden and silent unless told otherwise."""
    with v3(cachet3_fake) as client:
        hidden = client.post("/incidents", json={"name": "n", "message": "m", "status": 1})
        loud = client.post(
            "/incidents",
            json={"name": "n", "message": "m", "status": 1, "visible": True, "notifications": True},
        )
        client.post(
            f"/incidents/{loud.json()['data']['id']}/updates", json={"status": 4, "message": "ok"}
        )
    assert hidden.json()["data"]["attributes"]["visible"] == 0
    assert cachet3_fake.notifications == [
        ("incident", int(loud.json()["data"]["id"])),
        ("incident_update", int(loud.json()["data"]["id"])),
    ]


def test_cachet3_rate_limit(cachet3_fake: FakeCachet3) -> None:
    """Past the per-minute limit Cachet 3 answers 429 with Retry-After."""
    cachet3_fake.rate_limit = 2
    with v3(cachet3_fake) as client:
        answers = [client.get("/ping") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1


def test_pingdom_proxy_429_has_no_quota_headers(pingdom_fake: FakePingdom) -> None:
    """A proxy's 429 carries Retry-After but no Req-Limit headers."""
    pingdom_fake.proxy_429_next = 1
    answer = httpx.get(f"{pingdom_fake.base_url}/checks", trust_env=False)
    assert answer.status_code == 429
    assert "Req-Limit-Short" not in answer.headers
    assert answer.headers["Retry-After"] == "2"


def test_ingest_script_and_accepted() -> None:
    """The ingest fake answers its script first and keeps only 2xx uploads as accepted."""
    with FakeIngest() as ingest:
        ingest.script = [401]
        url = f"{ingest.endpoint}/v2/datapoint"
        assert [httpx.post(url, content=b"", trust_env=False).status_code for _ in range(2)] == [
            401,
            200,
        ]
        assert ingest.statuses == [401, 200]
        assert ingest.accepted == []
