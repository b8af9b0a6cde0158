"""The OpenAPI document, fuzzed against the local server (schemathesis).

Schemathesis generates requests for every operation from the document -
valid and invalid bodies, odd ids, query strings - sends them with a
proctor's and a student's token, and checks each answer: no 5xx, a documented
status code, content type and headers, a body that matches the documented
schema, and auth that is not ignored. ``positive_data_acceptance`` is left out:
schema-valid ids of exams that do not exist rightly get 404.
"""

from __future__ import annotations

import hypothesis
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lambdas.api.openapi import document
from tests.lambdas.api.conftest import Service

pytestmark = pytest.mark.slow
_EXAMPLES = 25


def test_the_document_is_valid_openapi_and_served_without_a_token(service: Service) -> None:
    served = requests.get(f"{service.url}/openapi.json", timeout=10).json()
    validate(served)
    assert served["openapi"] == "3.1.0"
    assert set(served["paths"]) == set(document()["paths"])


@pytest.mark.parametrize("who", ["proctor", "student"])
def test_every_answer_matches_the_document_and_none_is_a_server_error(
    service: Service, who: str
) -> None:
    service.exam("proctor", start=True)  # something to find for list routes
    schema = schemathesis.openapi.from_dict(document(server_url=service.url))
    headers = {"Authorization": f"Bearer {service.tokens[who]}"}
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(document()["paths"]) + 3  # paths with two methods

    for operation in operations:

        @hypothesis.settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=service.url,
                session=session,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
                timeout=20,
            )

        fuzz()
