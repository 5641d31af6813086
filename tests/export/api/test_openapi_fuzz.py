"""A bounded schemathesis run of the export API's OpenAPI document, with a valid key.

Every operation the document lists gets property-based requests (valid and invalid inputs);
the server must never answer 5xx, and every answer must agree with the document: a documented
status code, the documented media type and a body that validates against its schema.
In-process (ASGI), a few hundred requests.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from eo_pipeline.export.api.server import create_app
from eo_pipeline.export.api.signing import state_dir
from tests.export.api.conftest import Published

pytestmark = pytest.mark.slow
EXAMPLES = 15
"""Examples per operation (about 20 operations: a few hundred requests)."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_answers_as_documented(published: Published) -> None:
    app = create_app(published.root, rebuild_index=False)
    schema = schemathesis.openapi.from_asgi("/api", app)
    headers = {"X-API-Key": published.keys["alice"]}
    log = state_dir(published.root) / "access.log"
    before = len(log.read_text().splitlines())
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except BaseException as err:  # schemathesis' FailureGroup: the checks that failed
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            failures[operation.label] = str(err)[:3000]
    requests = len(log.read_text().splitlines()) - before
    print(f"\nschemathesis: {operations} operations, {requests} requests")
    assert operations >= 15 and requests >= 5 * operations
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
