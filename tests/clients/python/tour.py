"""The README's tour through a Python client that openapi-python-client generates from
openapi/openapi.json into the package `client` (run by tests/it/clients.rs; nothing generated
is edited). Reads CLIENT_PARENT (the directory holding `client`), BASE_URL and ADMIN_TOKEN;
prints "python client ok"."""

import json
import os
import sys

sys.path.insert(0, os.environ["CLIENT_PARENT"])

from client import AuthenticatedClient  # noqa: E402
from client.api.admin import create_organization, create_organization_key  # noqa: E402
from client.api.monitors import create_monitor, list_monitor_anomalies, send_monitor_points  # noqa: E402
from client.api.organization import get_own_organization  # noqa: E402
from client.api.streams import (  # noqa: E402
    ingest_stream_events,
    ingest_stream_events_ndjson,
    list_stream_anomalies,
)
from client.api.usage import get_usage  # noqa: E402
from client.models import (  # noqa: E402
    BatchResult,
    CreateKeyRequest,
    CreateMonitorRequest,
    CreateOrganizationRequest,
    IngestStreamEventsBodyItem,
    PointBatch,
    PointIn,
)
from client.types import File  # noqa: E402

USERS = ["ana", "ben", "chen", "dara", "eli"]
PATHS = ["/", "/search", "/cart", "/checkout"]


def event(i):
    return {"user": USERS[i % 5], "path": PATHS[(i // 5) % 4], "status": 200, "ms": 20 + (i * 7) % 21}


INTRUDER = {"user": "intruder", "path": "/admin/export?all=1", "status": 500, "ms": 98765}

base = os.environ["BASE_URL"]
admin = AuthenticatedClient(base_url=base, token=os.environ["ADMIN_TOKEN"])
org = create_organization.sync(
    client=admin, body=CreateOrganizationRequest(name="From Python", billing_email="py@example.com")
)
assert org.plan == "developer", org
key = create_organization_key.sync(client=admin, org_id=org.id, body=CreateKeyRequest(name="python"))
assert key.secret.startswith("dl_"), key
api = AuthenticatedClient(base_url=base, token=key.secret)
me = get_own_organization.sync(client=api)
assert me.id == org.id, (me, org)

# A JSON batch: 200 ordinary requests, then the intruder.
events = [IngestStreamEventsBodyItem.from_dict(event(i)) for i in range(200)]
events.append(IngestStreamEventsBodyItem.from_dict(INTRUDER))
batch = ingest_stream_events.sync("web-logs", client=api, body=events)
assert isinstance(batch, BatchResult), batch
assert len(batch.results) == 201
assert batch.results[200].anomaly, "the intruder is flagged"
detections = batch.detections_counted

# An NDJSON batch, as a log shipper sends it, then the same request again.
ndjson = "".join(json.dumps(event(i)) + "\n" for i in range(200, 203)).encode()
first = ingest_stream_events_ndjson.sync_detailed(
    "web-logs", client=api, body=File(payload=ndjson), idempotency_key="tour-ndjson-1"
)
assert first.status_code == 200, first
assert "idempotent-replayed" not in {k.lower() for k in first.headers}
assert len(first.parsed.results) == 3
detections += first.parsed.detections_counted
again = ingest_stream_events_ndjson.sync_detailed(
    "web-logs", client=api, body=File(payload=ndjson), idempotency_key="tour-ndjson-1"
)
assert again.headers.get("Idempotent-Replayed") == "true", again.headers
assert again.parsed.period_detections == first.parsed.period_detections

anomalies = list_stream_anomalies.sync("web-logs", client=api)
assert any(a.event["user"] == "intruder" for a in anomalies.items), anomalies

# A monitor and a series with one spike.
monitor = create_monitor.sync(client=api, body=CreateMonitorRequest(name="checkout latency"))
points = [
    PointIn(timestamp=1_800_000_000 + 60 * i, value=400.0 if i == 290 else 100.0 + (i * 37) % 11)
    for i in range(300)
]
sent = send_monitor_points.sync(monitor.id, client=api, body=PointBatch(points=points))
assert sent.accepted == 300, sent
detections += sent.detections_counted
listed = list_monitor_anomalies.sync(monitor.id, client=api)
assert len(listed.items) == sent.detections_counted, listed

usage = get_usage.sync(client=api)
assert usage.total_calls == detections, (usage, detections)
print("python client ok", org.id, detections)
