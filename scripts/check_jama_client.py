#!/usr/bin/env python3
"""Drives the official Jama client (py-jama-rest-client, unmodified) against `idsync sim jama`.

Run by scripts/check-jama-client.sh, which starts the simulator and passes its address and
throwaway credentials in JAMA_BASE_URL, JAMA_CLIENT_ID and JAMA_CLIENT_SECRET. Prints one PASS
line on success; on the first mismatch prints FAIL with what differed and exits 1.

The client (1.17.1) has no user-group methods, so groups and membership go through its own
transport object (`JamaClient._JamaClient__core`, a `Core` with OAuth), the way a user of the
client would reach endpoints it does not wrap.
"""

import inspect
import logging
import os
import sys

import requests
from py_jama_rest_client import client as client_module
from py_jama_rest_client.client import (
    AlreadyExistsException,
    APIException,
    APIServerException,
    JamaClient,
    TooManyRequestsException,
    UnauthorizedException,
)

EXPECTED_VERSION = "1.17.1"


class Mismatch(Exception):
    """The simulator and the client disagree."""


class Checks:
    def __init__(self):
        self.count = 0

    def __call__(self, condition, message):
        self.count += 1
        if not condition:
            raise Mismatch(message)


check = Checks()


def envelope_ok(body, paged):
    """True if `body` has the Jama envelope (and pageInfo when `paged`)."""
    if not all(key in body for key in ("meta", "links", "linked", "data")):
        return False
    meta = body["meta"]
    if meta.get("status") != "OK" or "timestamp" not in meta:
        return False
    if paged:
        info = meta.get("pageInfo") or {}
        return all(key in info for key in ("startIndex", "resultCount", "totalResults"))
    return isinstance(body["data"], dict)


def page_all(core, resource, params=None):
    """Reads every page of `resource` through the client's Core, advancing by resultCount."""
    items, start = [], 0
    while True:
        query = {"startAt": start, "maxResults": 50}
        query.update(params or {})
        response = core.get(resource, params=query)
        check(response.status_code == 200, f"GET {resource}: {response.status_code}")
        body = response.json()
        check(envelope_ok(body, paged=True), f"GET {resource}: not a paged envelope: {body}")
        info = body["meta"]["pageInfo"]
        check(info["startIndex"] == start, f"GET {resource}: startIndex {info['startIndex']}")
        check(info["resultCount"] == len(body["data"]), f"GET {resource}: resultCount")
        items.extend(body["data"])
        start += info["resultCount"]
        if info["resultCount"] == 0 or start >= info["totalResults"]:
            return items


def expect_raise(exception, call, what):
    try:
        call()
    except exception:
        check(True, what)
        return
    except Exception as other:  # noqa: BLE001 - report what was raised instead
        raise Mismatch(f"{what}: raised {type(other).__name__}: {other}") from other
    raise Mismatch(f"{what}: no {exception.__name__} raised")


def control(base, method, path, body=None):
    response = requests.request(method, base + path, json=body, timeout=10)
    check(response.status_code in (200, 201, 204), f"{method} {path}: {response.status_code}")
    return response.json() if response.content else None


def main():
    base = os.environ["JAMA_BASE_URL"]
    credentials = (os.environ["JAMA_CLIENT_ID"], os.environ["JAMA_CLIENT_SECRET"])
    # The client logs every 4xx at ERROR; the expected ones below would only be noise.
    logging.disable(logging.CRITICAL)

    from importlib.metadata import version

    check(version("py-jama-rest-client") == EXPECTED_VERSION, "client version")
    # The client wraps no user-group endpoint (checked, not assumed).
    methods = [name for name, _ in inspect.getmembers(JamaClient, inspect.isfunction)]
    wrapped = [name for name in methods if "usergroup" in name or "user_group" in name]
    check(not wrapped, f"the client now wraps user groups: {wrapped}")
    check("usergroups" not in inspect.getsource(client_module), "client mentions usergroups")

    seeded = control(base, "GET", "/_sim/users")
    active_ids = sorted(user["id"] for user in seeded if user["active"])
    check(len(active_ids) > 100 and len(active_ids) < len(seeded), "seed has >5 pages, inactive users")

    jama = JamaClient(base, credentials=credentials, oauth=True)
    core = jama._JamaClient__core

    # get_users pages by 20 and advances by startIndex + 20 while len(data) < totalResults.
    users = jama.get_users()
    ids = [user["id"] for user in users]
    check(sorted(ids) == active_ids, f"get_users: {len(ids)} users, expected {len(active_ids)} active")
    check(all(user["active"] for user in users), "get_users returned an inactive user")
    fields = {"id", "username", "firstName", "lastName", "email", "phone", "title", "location",
              "licenseType", "active", "avatarUrl", "authenticationType", "customData", "type"}
    check(fields <= set(users[0]), f"user fields: {sorted(users[0])}")

    one = jama.get_user(ids[0])
    check(one["id"] == ids[0] and one["username"] == users[0]["username"], "get_user")
    current = jama.get_current_user()
    check(current["username"] == "jama.user00001", f"get_current_user: {current.get('username')}")

    new_id = jama.post_user("fidelity.check", "Pa55-word!", "Fidelity", "Check",
                            "fidelity.check@example.com", "FLOATING", phone="+1-503-555-0199",
                            title="Tester", location="Portland")
    check(isinstance(new_id, int), f"post_user returned {new_id!r}")
    created = jama.get_user(new_id)
    check(created["username"] == "fidelity.check" and created["licenseType"] == "FLOATING"
          and created["phone"] == "+1-503-555-0199" and created["active"] is True,
          f"created user: {created}")
    expect_raise(AlreadyExistsException,
                 lambda: jama.post_user("FIDELITY.check", "x", "A", "B", "a@b.example", "NAMED"),
                 "duplicate post_user")

    # put_user sends "password": null and no licenseType; nulls clear fields.
    status = jama.put_user(new_id, "fidelity.check", None, "Fidelity", "Checked",
                           "fidelity.checked@example.com", title="Lead Tester")
    check(status == 200, f"put_user: {status}")
    updated = jama.get_user(new_id)
    check(updated["lastName"] == "Checked" and updated["email"] == "fidelity.checked@example.com"
          and updated["title"] == "Lead Tester", f"updated user: {updated}")
    check(updated["phone"] is None and updated["location"] is None, "put_user cleared nothing")
    check(updated["licenseType"] == "FLOATING", "put_user without licenseType changed it")

    status = jama.put_user_active(new_id, False)
    check(status == 200, f"put_user_active: {status}")
    check(jama.get_user(new_id)["active"] is False, "put_user_active did not deactivate")
    after = [user["id"] for user in jama.get_users()]
    check(new_id not in after and sorted(after) == active_ids, "get_users lists the deactivated user")

    # User groups and membership through the client's Core.
    groups = page_all(core, "usergroups")
    check(len(groups) > 0, "no user groups")
    check(all({"id", "name", "description", "project"} <= set(g) for g in groups), "group fields")
    group = groups[0]["id"]
    response = core.get(f"usergroups/{group}")
    check(response.status_code == 200 and envelope_ok(response.json(), paged=False),
          f"GET usergroups/{group}")
    members = page_all(core, f"usergroups/{group}/users")
    member_ids = {user["id"] for user in members}
    outsider = next(uid for uid in active_ids if uid not in member_ids)

    response = core.post(f"usergroups/{group}/users", json={"user": outsider})
    check(response.status_code == 201, f"add member: {response.status_code} {response.text}")
    check(response.json()["meta"]["status"] == "Created", "add member: meta.status")
    response = core.post(f"usergroups/{group}/users", json={"user": outsider})
    check(response.status_code == 400 and "already exists" in response.json()["meta"]["message"],
          f"add member twice: {response.status_code} {response.text}")
    members = page_all(core, f"usergroups/{group}/users")
    check(outsider in {user["id"] for user in members}, "added member not listed")
    response = core.delete(f"usergroups/{group}/users/{outsider}")
    check(response.status_code == 200 and response.json()["meta"]["status"] == "OK",
          f"remove member: {response.status_code} {response.text}")
    response = core.delete(f"usergroups/{group}/users/{outsider}")
    check(response.status_code == 404 and response.json()["meta"]["message"],
          f"remove non-member: {response.status_code} {response.text}")

    # Errors reach the client's exception mapping (it reads meta.message from every 4xx).
    control(base, "POST", "/_sim/rate_limits", {"windows": [{"requests": 1, "per_ms": 60000}]})
    expect_raise(TooManyRequestsException, jama.get_users, "429")
    control(base, "POST", "/_sim/rate_limits", {"windows": []})
    control(base, "POST", "/_sim/fail_next", {"count": 1, "status": 503})
    expect_raise(APIServerException, jama.get_users, "503")
    control(base, "POST", "/_sim/expire_tokens")
    expect_raise(UnauthorizedException, jama.get_users, "expired token")

    # With a short lifetime the client refreshes before every call (less than 60 s left).
    control(base, "POST", "/_sim/token_lifetime", {"secs": 30})
    before = control(base, "GET", "/_sim/stats")["token_requests"]
    short = JamaClient(base, credentials=credentials, oauth=True)
    for _ in range(3):
        short.get_current_user()
    tokens = control(base, "GET", "/_sim/stats")["token_requests"] - before
    check(tokens == 4, f"short-lived tokens: {tokens} token requests, expected 4")

    control(base, "POST", "/_sim/revoke")
    expect_raise(APIException, lambda: JamaClient(base, credentials=credentials, oauth=True),
                 "revoked credentials")
    control(base, "POST", "/_sim/restore")
    expect_raise(APIException,
                 lambda: JamaClient(base, credentials=(credentials[0], "wrong"), oauth=True),
                 "wrong secret")

    print(f"PASS: py-jama-rest-client {EXPECTED_VERSION} (unmodified, OAuth) against the Jama "
          f"simulator: {check.count} checks, {len(users)} active users paged by 20, "
          f"{len(groups)} groups")
    # The closing line CI's test-count reader understands.
    print(f"jama-client: {check.count} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as mismatch:
        print(f"FAIL: {mismatch}", file=sys.stderr)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - the client raised where the check expected none
        import traceback

        print("FAIL: unexpected error from the client:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
