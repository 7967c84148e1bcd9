#!/usr/bin/env python3
"""The floor the import benchmark measures idsync against: a naive account import script.

What a person would write in an afternoon: Python's standard library only, one keep-alive
HTTP connection (`http.client`), `json.loads` of each page, and one `executemany` upsert per
page of (id, name, email, status, the record as JSON) into one SQLite table, all in one
transaction. No diff, no audit, no deletion guard, no retries.

    naive_import.py BASE_URL API_KEY DB_PATH [PAGE_SIZE]

BASE_URL is the DigiCert `…/services/v2` base; PAGE_SIZE defaults to 1000. Prints one JSON
line: {"records": N, "pages": P, "secs": S}.
"""

import http.client
import json
import sqlite3
import sys
import time
import urllib.parse


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, db_path = sys.argv[1], sys.argv[2], sys.argv[3]
    page_size = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    url = urllib.parse.urlsplit(base_url)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, name TEXT, email TEXT, "
        "status TEXT, record TEXT)"
    )
    records = pages = offset = 0
    with db:
        while True:
            conn.request(
                "GET",
                f"{url.path}/user?offset={offset}&limit={page_size}",
                headers={"X-DC-DEVKEY": api_key, "Accept": "application/json"},
            )
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                print(f"HTTP {response.status}: {body[:200]!r}", file=sys.stderr)
                return 1
            page = json.loads(body)
            users = page["users"]
            db.executemany(
                "INSERT INTO accounts (id, name, email, status, record) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, "
                "status = excluded.status, record = excluded.record",
                [
                    (str(u["id"]), u["username"], u.get("email"), u.get("status"), json.dumps(u))
                    for u in users
                ],
            )
            records += len(users)
            pages += 1
            offset += len(users)
            if not users or offset >= page["page"]["total"]:
                break
    db.close()
    secs = time.perf_counter() - started
    print(json.dumps({"records": records, "pages": pages, "secs": round(secs, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
