"""Bad input never makes a 500: every operation of the OpenAPI document, fuzzed by schemathesis."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.clients import token

# Long-lived streams wait for events: they have their own tests.
STREAMING = {"/ws", "/events", "/poll"}
ROLES = ("admin", "service", "customer", "agent")


def test_no_input_makes_a_server_error(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    tokens = {role: token(f"fuzz-{role}", role) for role in ROLES}
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMING:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            for role in ROLES:
                headers = {**(case.headers or {}), "Authorization": f"Bearer {tokens[role]}"}
                response = case.call(headers=headers)
                assert response.status_code < 500, (role, case.method, case.formatted_path,
                                                    response.status_code, response.text[:300])
                if response.status_code >= 400 and "json" in response.headers.get("Content-Type", ""):
                    body = response.json()
                    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])

        fuzz()
        checked += 1
    assert checked >= 5  # the document really lists the API
