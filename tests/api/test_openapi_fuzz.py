"""Property test of the whole served API: whatever schemathesis sends, generated from the
OpenAPI document, the controller answers without a 5xx (but Octavia's deliberate 501s)."""

from __future__ import annotations

import os
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings

from shoal.controller.app import create_app
from shoal.controller.settings import load_settings

from .helpers import ADMIN_SECRET

_state = tempfile.mkdtemp(prefix="shoal-fuzz-")
APP = create_app(
    load_settings(
        database_url=f"sqlite:///{_state}/controller.db",
        state_dir=_state,
        bootstrap_token=ADMIN_SECRET,
        insecure_http=True,  # in-process plain HTTP; the transport guard has its own tests
    )
)
# The long poll may wait for minutes by design: everything else is fair game.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex="desired-state")
NEUTRON_VIEW = ("/v2.0/networks", "/v2.0/subnets", "/v2.0/ports")
EXAMPLES = int(os.environ.get("SHOAL_API_FUZZ_EXAMPLES", "20"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers={"X-Auth-Token": ADMIN_SECRET})
    # Octavia's 501 for what a provider does not do (or an unknown provider) is an answer,
    # not a failure of the server.
    deliberate = response.status_code == 501 and response.json()["faultstring"].startswith(
        "Provider '"
    )
    assert response.status_code < 500 or deliberate, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        body = response.json()
        if case.path.startswith(NEUTRON_VIEW) and response.status_code in (400, 404):
            assert set(body) == {"NeutronError"}, body  # Neutron's own fault body there
        else:
            assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
