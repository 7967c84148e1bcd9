#!/usr/bin/env bash
# Fidelity check: runs the official Jama Python client (py-jama-rest-client, pinned, unmodified)
# against `idsync sim jama` and prints one PASS line, or FAIL and the simulator's log.
#
# Needs python3 (with venv) and network access to PyPI the first time; the virtualenv is kept
# in target/jama-client-venv and reused. Run from anywhere: scripts/check-jama-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENT_VERSION=1.17.1
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/jama-client-venv"
idsync="$target_dir/debug/idsync"

# Incremental: a no-op when the debug binary is up to date.
cargo build --quiet

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
installed=$("$venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("py-jama-rest-client"))' 2>/dev/null || true)
if [ "$installed" != "$CLIENT_VERSION" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "py-jama-rest-client==$CLIENT_VERSION"
fi

work=$(mktemp -d)
sim_pid=""
cleanup() {
    if [ -n "$sim_pid" ]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the simulator picks a free port and prints it in its fragment. 137 users is seven
# pages of 20 for the client's fixed page size. The check sets its own rate windows.
"$idsync" sim jama --port 0 --users 137 --groups 6 --no-rate-limit \
    >"$work/fragment.toml" 2>"$work/sim.log" &
sim_pid=$!

for _ in $(seq 1 300); do
    grep -q '^client_secret = ' "$work/fragment.toml" && break
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        echo "FAIL: idsync sim jama exited early:" >&2
        cat "$work/sim.log" >&2
        exit 1
    fi
    sleep 0.1
done

field() {
    sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "$work/fragment.toml"
}
base_url=$(field base_url)
client_id=$(field client_id)
client_secret=$(field client_secret)
if [ -z "$base_url" ] || [ -z "$client_id" ] || [ -z "$client_secret" ]; then
    echo "FAIL: no Jama target in the simulator's output:" >&2
    cat "$work/fragment.toml" "$work/sim.log" >&2
    exit 1
fi

if ! JAMA_BASE_URL="$base_url" JAMA_CLIENT_ID="$client_id" JAMA_CLIENT_SECRET="$client_secret" \
    "$venv/bin/python" scripts/check_jama_client.py; then
    echo "--- simulator log ---" >&2
    tail -n 50 "$work/sim.log" >&2
    exit 1
fi
