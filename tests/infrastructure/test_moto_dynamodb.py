"""The emulator's DynamoDB cuts (infrastructure/moto_dynamodb.py) answer exactly as moto's own
server, and what they cut no longer grows: a Query of a sort-key range with the partition, an
item's construction with its attributes."""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infrastructure.emulator import Emulator
from infrastructure.moto_server import STATS_PATH
from proctoring.aws import sync_client
from proctoring.settings import Settings


class _PlainMoto(Emulator):
    """moto's own server, none of the emulator's changes: what the answers must equal."""

    name = "moto's own server"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]


@pytest.fixture(scope="module")
def plain() -> Iterator[Emulator]:
    with _PlainMoto() as running:
        yield running


_TYPES = ("S", "N", "B")


def _clients(emulator: Emulator, plain: Emulator) -> tuple[Any, Any]:
    return (
        sync_client(Settings(endpoint_url=emulator.endpoint_url), "dynamodb"),
        sync_client(Settings(endpoint_url=plain.endpoint_url), "dynamodb"),
    )


@pytest.fixture(scope="module")
def tables(emulator: Emulator, plain: Emulator) -> dict[str, str]:
    """A table per sort-key type, the same on both servers."""
    names = {kind: f"cmp-{kind}-{uuid.uuid4().hex[:8]}" for kind in _TYPES}
    for client in _clients(emulator, plain):
        for kind, name in names.items():
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"},
                           {"AttributeName": "r", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                                      {"AttributeName": "r", "AttributeType": kind}],
                BillingMode="PAY_PER_REQUEST",
            )  # fmt: skip
    return names


def _answer(client: Any, request: dict[str, Any], pages: int = 40) -> list[Any]:
    """Every page of a query (following LastEvaluatedKey), or the error it ended with."""
    out: list[Any] = []
    request = dict(request)
    for _ in range(pages):
        try:
            page = client.query(**request)
        except ClientError as error:
            out.append(("error", error.response["Error"]["Code"]))
            return out
        page.pop("ResponseMetadata", None)
        out.append(page)
        if "LastEvaluatedKey" not in page:
            return out
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return out


def _value(kind: str, raw: int) -> dict[str, str]:
    # strings over a small alphabet (many shared prefixes); numbers with halves, some equal
    # to another spelling ("1.0", "1")
    if kind in ("S", "B"):
        text = "ab"[raw % 2] + "ab"[(raw // 2) % 2] * (raw % 3) + str(raw % 5)
        return {"S": text} if kind == "S" else {"B": text.encode()}
    return {"N": str(raw / 2) if raw % 3 else str(raw // 2)}


_CONDITIONS = ("", "=", "<", "<=", ">", ">=", "BETWEEN", "begins_with")


@st.composite
def _cases(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(_TYPES))
    keys = draw(st.lists(st.integers(-12, 12), min_size=5, max_size=16, unique=True))
    sizes = draw(st.lists(st.integers(0, 400), min_size=len(keys), max_size=len(keys)))
    return {
        "kind": kind,
        "items": list(zip(keys, sizes, strict=True)),
        "bounds": [draw(st.integers(-14, 14)) for _ in range(2)],
        "limit": draw(st.integers(1, 4)),
        "filter": draw(st.booleans()),
        "projection": draw(st.booleans()),
        "start": draw(st.one_of(st.none(), st.integers(-13, 13))),
    }


def _write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: requests})


def _key_condition(kind: str, condition: str, bounds: list[int]) -> tuple[str, dict[str, Any]]:
    low, high = (_value(kind, b) for b in bounds)
    if condition == "BETWEEN":
        return " AND r BETWEEN :a AND :b", {":a": low, ":b": high}
    if condition == "begins_with":
        ((kind, value),) = low.items()
        return " AND begins_with(r, :a)", {":a": {kind: value[: 1 + bounds[1] % 2]}}
    if condition:
        return f" AND r {condition} :a", {":a": low}
    return "", {}


@settings(
    max_examples=6,
    database=None,  # nothing written into the repository
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_cases())
def test_a_query_answers_as_moto_own_server(
    emulator: Emulator, plain: Emulator, tables: dict[str, str], case: dict[str, Any]
) -> None:
    """Any partition; every key condition on its sort key, both orders, with and without a
    limit, every page (ExclusiveStartKey from the last LastEvaluatedKey, or one made up, inside
    the partition or not), a filter and a projection: the emulator's pages (items, Count,
    ScannedCount, LastEvaluatedKey) are moto's, error for error. Other partitions of the table
    stay out."""
    kind, table = case["kind"], tables[case["kind"]]
    partition = uuid.uuid4().hex[:8]
    items = [
        {"k": {"S": partition}, "r": _value(kind, raw), "n": {"N": str(raw)},
         "p": {"M": {"pad": {"S": "x" * size}, "l": {"L": [{"N": str(size)}]}}}}
        for raw, size in case["items"]
    ]  # fmt: skip
    patched, own = _clients(emulator, plain)
    for client in (patched, own):
        _write(client, table, items)
    extra: dict[str, Any] = {}
    values: dict[str, Any] = {":k": {"S": partition}}
    if case["filter"]:
        extra["FilterExpression"] = "n > :f"
        values[":f"] = {"N": "0"}
    if case["projection"]:
        extra["ProjectionExpression"] = "r, p.l"
    if case["start"] is not None:
        extra["ExclusiveStartKey"] = {"k": {"S": partition}, "r": _value(kind, case["start"])}
    for condition in _CONDITIONS if kind != "N" else _CONDITIONS[:-1]:
        text, bounds = _key_condition(kind, condition, case["bounds"])
        for forward in (True, False):
            for limit in ({}, {"Limit": case["limit"]}):
                request: dict[str, Any] = {
                    "TableName": table,
                    "KeyConditionExpression": "k = :k" + text,
                    "ExpressionAttributeValues": {**values, **bounds},
                    "ScanIndexForward": forward,
                    **limit,
                    **extra,
                }
                assert _answer(patched, request) == _answer(own, request), request


def test_a_query_answers_as_moto_at_its_one_megabyte_page(
    emulator: Emulator, plain: Emulator, tables: dict[str, str]
) -> None:
    """moto ends a page at 1 MB, counting an item the key condition does not match when it
    comes after the matches (so a page of two 350 kB items ends with a LastEvaluatedKey when a
    third follows, matched or not): the emulator's pages are the same."""
    patched, own = _clients(emulator, plain)
    table = tables["N"]
    partition = uuid.uuid4().hex[:8]
    items = [
        {"k": {"S": partition}, "r": {"N": str(n)}, "p": {"S": chr(97 + n) * 350_000}}
        for n in range(6)
    ]
    for client in (patched, own):
        for item in items:
            client.put_item(TableName=table, Item=item)
    for condition, values in (
        ("", {}),
        (" AND r <= :a", {":a": {"N": "1"}}),
        (" AND r <= :a", {":a": {"N": "2"}}),
        (" AND r > :a", {":a": {"N": "3"}}),
        (" AND r BETWEEN :a AND :b", {":a": {"N": "1"}, ":b": {"N": "2"}}),
    ):
        for forward in (True, False):
            for limit in ({}, {"Limit": 2}, {"Limit": 1}):
                request = {
                    "TableName": table,
                    "KeyConditionExpression": "k = :k" + condition,
                    "ExpressionAttributeValues": {":k": {"S": partition}, **values},
                    "ScanIndexForward": forward,
                    "ProjectionExpression": "r",
                    **limit,
                }
                assert _answer(patched, request) == _answer(own, request), request


def _operations(emulator: Emulator) -> dict[str, dict[str, float]]:
    url = f"{emulator.endpoint_url}{STATS_PATH}"
    with urllib.request.urlopen(url, timeout=5) as answer:  # loopback, the emulator's own
        counts: dict[str, dict[str, float]] = json.loads(answer.read())
    return counts


def _cpu_per_call(emulator: Emulator, operation: str, calls: int, call: Any) -> float:
    before = _operations(emulator).get(operation, {"count": 0, "cpu_s": 0.0})
    for _ in range(calls):
        call()
    after = _operations(emulator)[operation]
    assert after["count"] - before["count"] == calls
    return (after["cpu_s"] - before["cpu_s"]) / calls


def _row(partition: str, n: int) -> dict[str, Any]:
    """A result-like row: ~2.5 kB, nested maps and lists."""
    face = {"M": {"box": {"M": {side: {"N": "0.25"} for side in ("l", "t", "w", "h")}},
                  "marks": {"L": [{"N": str(i / 10)} for i in range(20)]}}}  # fmt: skip
    return {
        "k": {"S": partition},
        "r": {"S": f"camera#{n:06d}"},
        "faces": {"L": [face, face]},
        "rules": {"L": [{"M": {"type": {"S": f"R{i}"}, "count": {"N": "0"}}} for i in range(6)]},
        **{f"field{i}": {"S": "2026-12-07T12:00:00.000000+00:00"} for i in range(20)},
    }


def test_following_a_partition_costs_the_same_however_long_it_is(
    emulator: Emulator, tables: dict[str, str]
) -> None:
    """The load generator follows each student's results with ``r > :after`` and a projection:
    moto sized every row of the partition for each such query (28 ms of the emulator's CPU a
    call at ~120 rows of ~2.3 kB, the soak's lag drifting up with it). The emulator finds the
    rows after ``:after`` by bisection: the same query costs about the same at 10 rows and at
    400 (moto's own: ~40 times more). CPU time, not wall."""
    dynamodb = sync_client(Settings(endpoint_url=emulator.endpoint_url), "dynamodb")
    table = tables["S"]
    partition = uuid.uuid4().hex[:8]

    def follow(after: int) -> None:
        rows = dynamodb.query(
            TableName=table,
            KeyConditionExpression="k = :k AND r > :after",
            ExpressionAttributeValues={":k": {"S": partition},
                                       ":after": {"S": f"camera#{after:06d}"}},
            ProjectionExpression="r, field1",
            ConsistentRead=True,
        )["Items"]  # fmt: skip
        assert [row["r"]["S"] for row in rows] == [f"camera#{after + 1:06d}"]

    _write(dynamodb, table, [_row(partition, n) for n in range(10)])
    short = _cpu_per_call(emulator, "dynamodb.Query", 15, lambda: follow(8))
    _write(dynamodb, table, [_row(partition, n) for n in range(10, 400)])
    long = _cpu_per_call(emulator, "dynamodb.Query", 15, lambda: follow(398))
    assert long < max(2 * short, short + 0.002), (short, long)


def test_an_items_cost_grows_with_its_attributes_not_their_square(emulator: Emulator) -> None:
    """moto checked the 400 kB item limit as each attribute went in by sizing every attribute
    already there: ~3 ms for a result row, most of a transaction's 4.3 ms an item. The emulator
    keeps a running total: a put of 400 attributes costs about ten times one of 40 (moto's
    own: ~100 times); and an item over the limit is still refused."""
    dynamodb = sync_client(Settings(endpoint_url=emulator.endpoint_url), "dynamodb")
    table = f"wide-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    attribute = {"M": {"a": {"S": "x" * 20}, "b": {"L": [{"N": "1"}, {"N": "2"}]}}}

    def put(width: int) -> None:
        item = {"k": {"S": "w"}, **{f"a{i}": attribute for i in range(width)}}
        dynamodb.put_item(TableName=table, Item=item)

    narrow = _cpu_per_call(emulator, "dynamodb.PutItem", 10, lambda: put(40))
    wide = _cpu_per_call(emulator, "dynamodb.PutItem", 10, lambda: put(400))
    assert wide < 25 * narrow, (narrow, wide)
    with pytest.raises(ClientError) as large:
        dynamodb.put_item(
            TableName=table,
            Item={"k": {"S": "big"}, **{f"a{i}": {"S": "y" * 100_000} for i in range(5)}},
        )
    assert large.value.response["Error"]["Code"] == "ValidationException"
    assert "size has exceeded" in large.value.response["Error"]["Message"]


def _unvalidated(emulator: Emulator) -> Any:
    """A DynamoDB client that sends what botocore would refuse (101 items), for the servers'
    own answer to it."""
    import boto3
    from botocore.config import Config

    from proctoring.aws import client_kwargs

    kwargs = client_kwargs(Settings(endpoint_url=emulator.endpoint_url), "dynamodb")
    kwargs["config"] = kwargs["config"].merge(Config(parameter_validation=False))
    return boto3.session.Session().client("dynamodb", **kwargs)


def test_transactions_answer_as_moto_own_server(emulator: Emulator, plain: Emulator) -> None:
    """The consumer's transaction (result rows with their condition, each student's session
    with its version) on the emulator and on moto's own server, step by step: written, then
    cancelled with its reasons in item order (ConditionalCheckFailed, the old item where asked
    for), the same item twice, 101 items, an item over 400 kB, an update and a delete. Every
    answer and every table afterwards is the same."""
    run = uuid.uuid4().hex[:8]
    results, sessions = f"tx-results-{run}", f"tx-sessions-{run}"
    clients = [_unvalidated(server) for server in (emulator, plain)]
    for client in clients:
        for name, key in ((results, ("k", "r")), (sessions, ("exam", "student"))):
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key[0], "KeyType": "HASH"},
                           {"AttributeName": key[1], "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": key[0], "AttributeType": "S"},
                                      {"AttributeName": key[1], "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )  # fmt: skip

    def row(student: int, n: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": results,
                "Item": _row(f"e#{student}", n),
                "ConditionExpression": "attribute_not_exists(r) OR (#s = :e AND why = :p)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":e": {"S": "error"}, ":p": {"S": "parked"}},
            }
        }

    def session(student: int, version: int, **extra: Any) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": sessions,
            "Item": {"exam": {"S": "e"}, "student": {"S": f"s{student:02d}"},
                     "version": {"N": str(version + 1)}, "state": {"B": bytes([student]) * 900}},
        }  # fmt: skip
        if version == 0:
            put["ConditionExpression"] = "attribute_not_exists(student)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
        put.update(extra)
        return {"Put": put}

    def batch(n: int, version: int, students: range = range(20)) -> list[dict[str, Any]]:
        return [item for s in students for item in (row(s, n), session(s, version))]

    stale = batch(2, 1)  # student 7's session moved on and student 9's row exists
    stale[15] = session(7, 0, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    stale[18] = row(9, 1)
    steps: list[list[dict[str, Any]]] = [
        batch(0, 0),  # 40 items: written
        batch(1, 1),
        stale,  # cancelled: reasons in item order, the old session of student 7
        [row(0, 5), row(0, 5)],  # the same item twice
        [{"Put": {"TableName": results, "Item": {"k": {"S": f"t{n}"}, "r": {"S": "x"}}}}
         for n in range(101)],  # 101 items
        [row(1, 6), {"Put": {"TableName": results,  # over 400 kB
                             "Item": {"k": {"S": "big"}, "r": {"S": "x"},
                                      **{f"a{i}": {"S": "y" * 100_000} for i in range(5)}}}}],
        [{"Update": {"TableName": sessions, "Key": {"exam": {"S": "e"}, "student": {"S": "s03"}},
                     "UpdateExpression": "SET risk = :r", "ConditionExpression": "version = :v",
                     "ExpressionAttributeValues": {":r": {"N": "0.5"}, ":v": {"N": "2"}}}},
         {"Delete": {"TableName": results,
                     "Key": {"k": {"S": "e#4"}, "r": {"S": "camera#000000"}}}},
         {"ConditionCheck": {"TableName": sessions,
                             "Key": {"exam": {"S": "e"}, "student": {"S": "s05"}},
                             "ConditionExpression": "attribute_exists(student)"}}],
    ]  # fmt: skip

    def answer(client: Any, items: list[dict[str, Any]]) -> Any:
        try:
            client.transact_write_items(TransactItems=items)
        except ClientError as error:
            response = error.response
            return (response["Error"], response.get("CancellationReasons"))
        return "written"

    def contents(client: Any) -> list[Any]:
        return [
            sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=repr)
            for name in (results, sessions)
        ]

    outcomes = []
    for number, items in enumerate(steps):
        patched, own = (answer(client, items) for client in clients)
        assert patched == own, number
        assert contents(clients[0]) == contents(clients[1]), number
        outcomes.append(patched if patched == "written" else patched[0]["Code"])
    assert outcomes == ["written", "written", "TransactionCanceledException",
                        "ValidationException", "ValidationException", "ValidationException",
                        "written"]  # fmt: skip


def test_concurrent_writers_into_one_partition_lose_nothing(
    emulator: Emulator, tables: dict[str, str]
) -> None:
    """Every student's session lives in its exam's partition, and a consumer writes several
    batches' sessions at once: eight writers putting into one partition at the same time, then
    every item is there once, in sort-key order, page after page. A sorted partition changes in
    many interpreter steps where moto's dict changed in one, so the emulator holds a lock while
    one changes or a query reads positions in it. (The race is too narrow to hit through HTTP:
    this passed without the lock too; it guards what a user would see.)"""
    from concurrent.futures import ThreadPoolExecutor

    table = tables["S"]
    partition = uuid.uuid4().hex[:8]
    settings_ = Settings(endpoint_url=emulator.endpoint_url)

    def writer(thread: int) -> None:
        client = sync_client(settings_, "dynamodb")
        for n in range(40):
            client.put_item(
                TableName=table,
                Item={"k": {"S": partition}, "r": {"S": f"s{n:02d}-{thread}"}, "v": {"N": "1"}},
            )

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(writer, range(8)))
    dynamodb = sync_client(settings_, "dynamodb")
    request = {
        "TableName": table,
        "KeyConditionExpression": "k = :k AND r > :a",
        "ExpressionAttributeValues": {":k": {"S": partition}, ":a": {"S": "s"}},
        "Limit": 70,
    }
    keys = [item["r"]["S"] for page in _answer(dynamodb, request) for item in page["Items"]]
    assert keys == sorted(f"s{n:02d}-{thread}" for n in range(40) for thread in range(8))
