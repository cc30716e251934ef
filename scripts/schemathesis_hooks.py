"""Schemathesis hooks for scripts/schemathesis.sh: narrow exemptions for the findings that are
what the product specification asks for, not defects. Each drops one kind of failure in one
exact situation and nothing else; every other failure still fails the run.

Idempotency-Key (`POST /users` and `POST /users/import`, which share one table of keys): a
retry with the same key and body within 24 hours answers the first response (same users,
same secrets, header `idempotent-replayed: true`) and creates nothing; the same key with
another body, or on the other route, is 422 `idempotency_key_reused` (the status the IETF
Idempotency-Key draft recommends). Generated keys repeat (hypothesis shrinks towards short
strings), so schemathesis sends both situations without knowing that the key carries state.
With two workers, a request can take a key while another worker's request with the same key
is answered before the first one's `after_call` has run: requests in flight count as uses.

Import (`POST /users/import`): a file with any error is 422 `import_invalid`, as the
specification says, also for errors no schema can state: an email or extension that an
existing user has (`email_taken`, `extension_taken`) or that an earlier row of the same file
has (`duplicate_email`, `duplicate_extension`); and a CSV body is a string whose grammar the
document states in prose, so a generated string is "schema-valid" whatever it holds.

Apply (`POST /apply`): `nodes` must name nodes the database knows (`GET /nodes`), as an id
in a path must name a user: a well-formed unknown name is 422 `validation_failed` (field
`nodes`), and so is a name given twice (a comma list's uniqueness is prose in the document). And a dry run reads this node's changes only, so `dry_run=true` together with
`nodes` or `strategy` is 422 (field `dry_run`): a rule across parameters, stated in prose.

Tenants: a slug in a body or a query must name a tenant that exists (`GET /tenants`), as an
id in a path must name a user: a well-formed unknown slug is 422 `validation_failed` (field
`tenant`, "no tenant 'x'"), also as an import row's error. And rules that depend on the
state of a tenant or on two fields at once, stated in prose: a user never moves to another
tenant (PATCH naming another), an explicit extension must lie in the user's tenant's range
(the served document states only the default tenant's), a tenant's `extension_max` may not
be below its `extension_min`, a PATCH may not leave a user outside the range nor set
`max_users` below the users the tenant has, the default tenant's range is the
configuration's, and the default tenant cannot be deleted.

The CSV answers (`text/csv`) are handed to schemathesis as the strings their documented
schemas describe (deserialize_csv below), so their header lines are checked like any body.
"""

import ast
import json
import sys
import threading
from collections import Counter

import schemathesis

# Not an exemption: a workaround for CPython before 3.12 (gh-106905). Two threads building
# ASTs at once can fail with "SystemError: AST constructor recursion depth mismatch", and
# hypothesis parses source files (to describe lambdas) in each of the two workers, so a run
# could end in a runtime error on any operation. ast.parse is serialized; nothing else
# changes.
if sys.version_info < (3, 12):
    _ast_parse = ast.parse
    _ast_lock = threading.Lock()

    def _serialized_parse(*args, **kwargs):
        with _ast_lock:
            return _ast_parse(*args, **kwargs)

    ast.parse = _serialized_parse

_lock = threading.Lock()
# Ids from replayed create responses: the user may have been deleted since the first one.
_replayed_ids: set[str] = set()
# Idempotency-Key -> the (route, body) pairs that created users with it (a fresh database per
# run).
_uses_by_key: dict[str, set[tuple[str, str]]] = {}
# Idempotency-Key -> the (route, body) pairs of requests sent and not yet answered.
_in_flight: dict[str, Counter] = {}

# Row errors that depend on the database or on other rows, never on the row's own values.
_STATEFUL_ROW_CODES = {"email_taken", "extension_taken", "duplicate_email", "duplicate_extension"}


def _names_no_tenant(err: dict) -> bool:
    return err.get("field") == "tenant" and str(err.get("message", "")).startswith("no tenant '")


def _outside_its_tenants_range(case, row_error: dict) -> bool:
    """An import row whose extension is outside the range of the tenant it names (the
    document states only the default tenant's range)."""
    users = case.body.get("users") if isinstance(case.body, dict) else None
    row = row_error.get("row")
    if not isinstance(users, list) or not isinstance(row, int) or not 0 <= row < len(users):
        return False
    tenant = users[row].get("tenant") if isinstance(users[row], dict) else None
    return (
        tenant not in (None, "", "default")
        and row_error.get("field") == "extension"
        and str(row_error.get("message", "")).startswith("must be within the range")
    )


def _tenant_rule(case, err: dict) -> bool:
    """A 422 for one of the tenant rules the module doc lists, on the route it belongs to."""
    method, path = case.operation.method.upper(), case.operation.path
    field, message = err.get("field"), str(err.get("message", ""))
    slug = str((case.path_parameters or {}).get("slug"))
    body = case.body if isinstance(case.body, dict) else {}
    if _names_no_tenant(err) and path in ("/users", "/users/{id}", "/tokens", "/apply"):
        return True
    if (method, path, field) == ("PATCH", "/users/{id}", "tenant"):
        return message.startswith("a user cannot move between tenants")
    if path in ("/users", "/users/{id}") and method in ("POST", "PATCH") and field == "extension":
        # The range of another tenant than `default`, whose range alone is in the document.
        return message.startswith("must be within the range") and " of tenant '" in message
    if path in ("/tenants", "/tenants/{slug}") and method in ("POST", "PATCH"):
        if field == "extension_max" and message.startswith("must not be below extension_min"):
            return True
        if method == "PATCH" and field in ("extension_min", "extension_max"):
            return " would be outside the range " in message or (
                slug == "default" and message.startswith("the default tenant's range")
            )
        if method == "PATCH" and field == "max_users":
            return message.startswith("the tenant has ")
    if (method, path, field, slug) == ("DELETE", "/tenants/{slug}", "slug", "default"):
        return message.startswith("the default tenant cannot be deleted")
    return False


def _is_post(case, path: str) -> bool:
    return case.operation.method.upper() == "POST" and case.operation.path == path


def _takes_idempotency_key(case) -> bool:
    return _is_post(case, "/users") or _is_post(case, "/users/import")


def _key(case) -> str | None:
    for name, value in (case.headers or {}).items():
        if name.lower() == "idempotency-key":
            return str(value)
    return None


def _use(case) -> tuple[str, str]:
    return (case.operation.path, json.dumps(case.body, sort_keys=True, default=str))


def _error(response) -> dict:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return error if isinstance(error, dict) else {}


@schemathesis.hook
def before_call(context, case, **kwargs):
    key = _key(case)
    if _takes_idempotency_key(case) and key is not None:
        with _lock:
            _in_flight.setdefault(key, Counter())[_use(case)] += 1


@schemathesis.hook
def after_call(context, case, response):
    key = _key(case)
    if not _takes_idempotency_key(case) or key is None:
        return
    with _lock:
        # A dry run answers 200 and neither uses nor checks a key.
        if response.status_code == 201:
            _uses_by_key.setdefault(key, set()).add(_use(case))
        _in_flight.get(key, Counter())[_use(case)] -= 1
    replayed = response.headers.get("idempotent-replayed") == ["true"]
    if _is_post(case, "/users") and response.status_code == 201 and replayed:
        try:
            user_id = str(json.loads(response.content)["id"])
        except (ValueError, KeyError, TypeError):
            return
        with _lock:
            _replayed_ids.add(user_id)


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """False drops the failure."""
    # ST202 "Schema-valid request rejected": a key that already created users with another
    # body (or on the other route) is refused by design; the request is schema-valid but the
    # key's state says no (like a 409). The same key with the same body would have to replay:
    # not dropped.
    if (
        failure.code == "ST202"
        and _takes_idempotency_key(case)
        and response.status_code == 422
        and _error(response).get("code") == "idempotency_key_reused"
    ):
        key = _key(case)
        with _lock:
            earlier = set(_uses_by_key.get(key, set())) if key is not None else set()
            earlier |= {use for use, n in _in_flight.get(key, Counter()).items() if n > 0}
        if earlier - {_use(case)}:
            return False
    # ST202 on an import refused as import_invalid: a CSV body (its grammar is prose in the
    # document), or a JSON body whose every error is one no schema can state. A JSON row
    # refused for its own values would be a real mismatch between document and server: kept.
    if (
        failure.code == "ST202"
        and _is_post(case, "/users/import")
        and response.status_code == 422
        and _error(response).get("code") == "import_invalid"
    ):
        if (case.media_type or "").lower().startswith("text/csv"):
            return False
        rows = _error(response).get("errors") or []
        if rows and all(
            isinstance(r, dict)
            and (
                r.get("code") in _STATEFUL_ROW_CODES
                or _names_no_tenant(r)
                or _outside_its_tenants_range(case, r)
            )
            for r in rows
        ):
            return False
    # ST202 for a tenant rule (see the module doc): only those, each on its own route.
    if failure.code == "ST202" and response.status_code == 422:
        err = _error(response)
        if err.get("code") == "validation_failed" and _tenant_rule(case, err):
            return False
    # ST202 on POST /apply refused for its node names (state, like an unknown id; or a name
    # twice) or for dry_run with nodes or strategy (a rule across parameters): only those.
    if failure.code == "ST202" and _is_post(case, "/apply") and response.status_code == 422:
        err = _error(response)
        query = case.query or {}
        message = str(err.get("message", ""))
        if err.get("field") == "nodes" and (
            message.startswith("no node is named") or message.startswith("names node ")
        ):
            return False
        dry = str(query.get("dry_run")).lower() in ("true", "1")
        if err.get("field") == "dry_run" and dry and ("nodes" in query or "strategy" in query):
            return False
    # ST302 "Created resource not found": the create was a replay of an earlier create whose
    # user has been deleted since; the replay answers the first response as specified, so
    # the id it names can be gone.
    if failure.code == "ST302" and response.status_code == 404:
        user_id = str((case.path_parameters or {}).get("id"))
        with _lock:
            if user_id in _replayed_ids:
                return False
    return True


@schemathesis.deserializer("text/csv")
def deserialize_csv(ctx, response):
    """A CSV answer as the string its documented schema describes (type string, a pattern
    for the header line), so that response_schema_conformance checks it too. Invalid UTF-8
    is reported as the failure it is."""
    return response.content.decode("utf-8")
