"""Every test starts with a cold Lambda container: nothing kept from another test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas import container


@pytest.fixture(autouse=True)
def cold_container() -> Iterator[None]:
    container.close()
    yield
    container.close()  # closes the clients a handler kept, and their loop
