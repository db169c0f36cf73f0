"""The Python types against the running server's API document (``GET /openapi.json``): a
field the server adds, drops, renames, retypes or makes nullable fails here, as does a route
or a parameter the client relies on that the server no longer has."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime
from typing import Any, Dict, List, Set, Tuple, Union, get_args, get_origin, get_type_hints

import pytest

from floodgate_client import (
    Accepted,
    AdmittedCall,
    BreakerState,
    BreakerView,
    CallOutcome,
    ClaimedJob,
    Client,
    CompleteBatch,
    FailurePolicy,
    Heartbeat,
    HeartbeatBatch,
    Job,
    JobPage,
    JobState,
    LimiterView,
    NewJob,
    PermitGrant,
    PermitLease,
    RateDecision,
    RateLimitView,
    Reported,
    Scope,
)

SCHEMA_NAMES: Dict[Any, str] = {Job: "JobView"}

LITERAL_NAMES: List[Tuple[Any, str]] = [(Scope, "Scope"), (FailurePolicy, "Policy")]
"""The server's schema name of a ``Literal`` alias (its enum)."""
"""The server's schema name of a Python type, where they differ."""

Shape = Tuple[str, bool]
"""A type as ``(kind, nullable)``: kind is int, str, bool, datetime, state, any, list[...]."""


@pytest.fixture
def document(client: Client) -> Dict[str, Any]:
    return client.openapi()


def _resolve(doc: Dict[str, Any], schema: Dict[str, Any]) -> Dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return _resolve(doc, doc["components"]["schemas"][ref.rsplit("/", 1)[1]])


def _object(doc: Dict[str, Any], name: str) -> Tuple[Dict[str, Any], Set[str]]:
    """The properties and required names of schema ``name`` (``allOf`` merged)."""
    schema = doc["components"]["schemas"][name]
    props: Dict[str, Any] = {}
    required: Set[str] = set()
    for part in schema.get("allOf", [schema]):
        part = _resolve(doc, part)
        props.update(part.get("properties", {}))
        required.update(part.get("required", []))
    return props, required


def _schema_shape(doc: Dict[str, Any], prop: Dict[str, Any]) -> Shape:
    if "$ref" in prop:
        target = prop["$ref"].rsplit("/", 1)[1]
        return ("state" if target == "ApiState" else target, False)
    if "oneOf" in prop:
        parts = [p for p in prop["oneOf"] if p.get("type") != "null"]
        assert len(parts) == 1, prop
        kind, _ = _schema_shape(doc, parts[0])
        return (kind, len(parts) < len(prop["oneOf"]))
    types = prop.get("type")
    if types is None:
        return ("any", True)
    names = [types] if isinstance(types, str) else list(types)
    nullable = "null" in names
    names = [n for n in names if n != "null"]
    assert len(names) == 1, prop
    kind = names[0]
    if kind == "integer":
        return ("int", nullable)
    if kind == "number":
        return ("float", nullable)
    if kind == "boolean":
        return ("bool", nullable)
    if kind == "string":
        return ("datetime" if prop.get("format") == "date-time" else "str", nullable)
    if kind == "array":
        item, _ = _schema_shape(doc, prop["items"])
        return (f"list[{item}]", nullable)
    if kind == "object":
        return ("object", nullable)
    raise AssertionError(f"unexpected schema {prop}")


def _python_shape(hint: Any) -> Shape:
    if hint is Any:
        return ("any", True)
    nullable = False
    if get_origin(hint) is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        nullable = len(args) < len(get_args(hint))
        assert len(args) == 1, hint
        hint = args[0]
    if hint is JobState:
        return ("state", nullable)
    for alias, name in LITERAL_NAMES:
        if hint == alias:
            return (name, nullable)
    if get_origin(hint) in (list, List):
        item, _ = _python_shape(get_args(hint)[0])
        return (f"list[{item}]", nullable)
    names = {int: "int", str: "str", bool: "bool", datetime: "datetime", float: "float"}
    if hint in names:
        return (names[hint], nullable)
    if dataclasses.is_dataclass(hint):
        return (SCHEMA_NAMES.get(hint, hint.__name__), nullable)
    raise AssertionError(f"unexpected Python type {hint}")


def _compare(
    doc: Dict[str, Any],
    schema: str,
    cls: type,
    client_only: Tuple[str, ...] = (),
    optional_here: Tuple[str, ...] = (),
) -> None:
    """Every property of ``schema`` is a field of ``cls`` of the same shape, and back (but
    the ``client_only`` fields, which the client fills in from elsewhere, and the
    ``optional_here`` ones, which the client also fills from an answer that lacks them)."""
    props, required = _object(doc, schema)
    hints = get_type_hints(cls)
    fields = {f.name: f.name for f in dataclasses.fields(cls) if f.name not in client_only}
    assert set(props) == set(fields), (
        f"{schema} vs {cls.__name__}: only on the server {sorted(set(props) - set(fields))}, "
        f"only in Python {sorted(set(fields) - set(props))}"
    )
    for name, prop in props.items():
        want_kind, want_null = _schema_shape(doc, prop)
        want_null = want_null or name not in required or name in optional_here
        got_kind, got_null = _python_shape(hints[fields[name]])
        if want_kind == "object":
            want_kind = "any"  # a JSON object is kept as a plain mapping
        assert got_kind == want_kind, f"{schema}.{name}: server {want_kind}, Python {got_kind}"
        assert got_null == want_null, (
            f"{schema}.{name}: server nullable={want_null}, Python Optional={got_null}"
        )


def test_job_types_match_the_server(document: Dict[str, Any]) -> None:
    _compare(document, "JobView", Job)
    _compare(document, "ClaimedJob", ClaimedJob)


def test_answer_types_match_the_server(document: Dict[str, Any]) -> None:
    _compare(document, "Accepted", Accepted)
    _compare(document, "Reported", Reported)
    _compare(document, "JobList", JobPage)
    _compare(document, "HeartbeatResponse", Heartbeat)


def test_batch_report_types_match_the_server(document: Dict[str, Any]) -> None:
    _compare(document, "HeartbeatMany", HeartbeatBatch)
    _compare(document, "CompletedMany", CompleteBatch)


def test_limits_types_match_the_server(document: Dict[str, Any]) -> None:
    _compare(document, "PermitGranted", PermitGrant)
    _compare(document, "PermitLease", PermitLease)
    _compare(document, "NamedLimiter", LimiterView)
    # retry_after comes from a refusal's Retry-After (a refusal is a 429 problem, which
    # carries no scope).
    _compare(
        document,
        "RateAllowed",
        RateDecision,
        client_only=("retry_after",),
        optional_here=("scope",),
    )
    _compare(document, "NamedRateLimit", RateLimitView)
    _compare(document, "CallAdmitted", AdmittedCall)
    _compare(document, "BreakerState", BreakerState)
    _compare(document, "NamedBreaker", BreakerView)


def test_limits_enums_match_the_server(document: Dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for alias, name in [*LITERAL_NAMES, (CallOutcome, "CallOutcome")]:
        assert set(schemas[name]["enum"]) == set(get_args(alias)), name


def test_job_states_match_the_server(document: Dict[str, Any]) -> None:
    assert set(document["components"]["schemas"]["ApiState"]["enum"]) == set(get_args(JobState))


def test_enqueue_arguments_match_the_request(document: Dict[str, Any]) -> None:
    one, _ = _object(document, "OneJobRequest")
    batch_item, _ = _object(document, "JobRequest")
    params = set(inspect.signature(Client.enqueue).parameters) - {"self"}
    # One job's idempotency key travels in the Idempotency-Key header.
    expected = set(one) | {"idempotency_key"}
    assert params == expected, sorted(params ^ expected)
    assert {f.name for f in dataclasses.fields(NewJob)} == set(batch_item)
    headers = {
        p["name"] for p in document["paths"]["/v1/jobs"]["post"].get("parameters", [])
        if p["in"] == "header"
    }
    assert "Idempotency-Key" in headers


def _query_names(doc: Dict[str, Any], path: str) -> Set[str]:
    """A route's query parameters; an object parameter (form style, exploded: OpenAPI's
    default) contributes its properties."""
    names: Set[str] = set()
    for param in doc["paths"][path]["get"]["parameters"]:
        if param["in"] != "query":
            continue
        schema = _resolve(doc, param["schema"])
        if schema.get("type") == "object" and param.get("explode", True):
            names.update(schema.get("properties", {}))
        else:
            names.add(param["name"])
    return names


def test_list_filters_match_the_server(document: Dict[str, Any]) -> None:
    server = _query_names(document, "/v1/jobs")
    for method in (Client.list, Client.iter_jobs):
        assert set(inspect.signature(method).parameters) - {"self"} == server


ROUTES = [
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/retry"),
    ("post", "/v1/queues/{queue}/claim"),
    ("post", "/v1/jobs/{id}/heartbeat"),
    ("post", "/v1/jobs/{id}/complete"),
    ("post", "/v1/jobs/{id}/fail"),
    ("post", "/v1/jobs/{id}/snooze"),
    ("post", "/v1/jobs/heartbeat"),
    ("post", "/v1/jobs/complete"),
    ("post", "/v1/limiters/{name}/permits"),
    ("post", "/v1/permits/{id}/heartbeat"),
    ("delete", "/v1/permits/{id}"),
    ("get", "/v1/limiters"),
    ("put", "/v1/limiters/{name}"),
    ("post", "/v1/rate-limits/{name}/check"),
    ("get", "/v1/rate-limits"),
    ("post", "/v1/breakers/{name}/calls"),
    ("post", "/v1/breakers/{name}/calls/{call_id}"),
    ("post", "/v1/breakers/{name}/reset"),
    ("get", "/v1/breakers"),
]


def test_the_routes_the_client_uses_exist(document: Dict[str, Any]) -> None:
    missing = [f"{m.upper()} {p}" for m, p in ROUTES if m not in document["paths"].get(p, {})]
    assert not missing, f"the server has no {missing}"


def test_report_request_members_match(document: Dict[str, Any]) -> None:
    """The members the client sends are the ones the server reads."""
    expected: Dict[str, Set[str]] = {
        "ClaimRequest": {"worker", "limit", "wait", "kinds", "lease_ttl"},
        "HeartbeatRequest": {"lease_token", "worker", "lease_ttl"},
        "CompleteRequest": {"lease_token", "result"},
        "FailRequest": {"lease_token", "error", "retry_in", "permanent"},
        "SnoozeRequest": {"lease_token", "delay"},
        "HeartbeatManyRequest": {"worker", "lease_ttl", "jobs"},
        "CompleteManyRequest": {"jobs"},
        "CompleteItem": {"id", "lease_token", "result"},
        "LeaseRef": {"id", "lease_token"},
        "PermitRequest": {"wait", "priority", "lease_ttl", "holder"},
        "SetLimit": {"max_concurrency"},
        "RateCheck": {"key", "cost"},
        "CallReport": {"outcome", "duration_ms", "error"},
    }
    for name, members in expected.items():
        props, _ = _object(document, name)
        assert set(props) == members, f"{name}: server {sorted(props)}, client {sorted(members)}"



def test_the_comparison_notices_drift(document: Dict[str, Any]) -> None:
    """A field added, dropped or made nullable on the server side fails the comparison."""
    import copy

    added = copy.deepcopy(document)
    added["components"]["schemas"]["JobView"]["properties"]["tenant"] = {"type": "string"}
    with pytest.raises(AssertionError, match="only on the server"):
        _compare(added, "JobView", Job)
    dropped = copy.deepcopy(document)
    del dropped["components"]["schemas"]["JobView"]["properties"]["ordering_key"]
    with pytest.raises(AssertionError, match="only in Python"):
        _compare(dropped, "JobView", Job)
    nullable = copy.deepcopy(document)
    nullable["components"]["schemas"]["JobView"]["properties"]["kind"]["type"] = ["string", "null"]
    with pytest.raises(AssertionError, match="nullable"):
        _compare(nullable, "JobView", Job)
