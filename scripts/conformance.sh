#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in tests/Conformance)
# through the gateway (docs/conformance.md). A gateway must be invisible except where the policy acts:
#
#   server scenarios, against the fixture (tests/Conformance/ConformanceFixture, official C# SDK):
#     direct        the fixture's own Streamable HTTP endpoint
#     http          GATEWAY http --upstream FIXTURE_URL                (HTTP → HTTP)
#     stdio         GATEWAY http -- ConformanceFixture --stdio         (HTTP → stdio, a child per session)
#     stdio-gw      GATEWAY http -- GATEWAY stdio -- ConformanceFixture --stdio   (the stdio gateway inside)
#     stdio-bridge  GATEWAY http -- GATEWAY stdio --upstream FIXTURE_URL          (the stdio → HTTP bridge inside)
#     http+deny, stdio+deny   the same with a policy denying test_sampling: only tools-call-sampling
#                   may change, and it must fail with the policy's reason (run by the interpreter,
#                   `policyc run http`, which must decide as the compiled gateway does; one native build
#                   less keeps the run short)
#   client scenarios, with our client (tests/Conformance/ConformanceClient, official C# SDK):
#     direct        the client's own Streamable HTTP transport
#     stdio         the client starts GATEWAY stdio --upstream SCENARIO_URL (stdio → HTTP bridge)
#     http          the client talks to GATEWAY http --upstream SCENARIO_URL
#
# GATEWAY is the native executable `policyc build` makes of policies/allow-all.json (what users run). Prints the scenario × mode tables; exits 1 when a mode
# differs from direct other than where the policy acts or as listed in tests/Conformance/known-differences.txt.
#
# Environment: CONFORMANCE_WORK (default artifacts/conformance) holds the gateways, logs and results;
# CONFORMANCE_REUSE_GATEWAYS=1 keeps gateways already built there (local iteration).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONF=$ROOT/tests/Conformance
WORK=${CONFORMANCE_WORK:-$ROOT/artifacts/conformance}
NODE=$CONF/node_modules/.bin/node
SUITE=$CONF/node_modules/@modelcontextprotocol/conformance/dist/index.js
DENY_REASON="conformance: test_sampling is denied by policy"
CLIENT_SCENARIOS=(initialize tools_call elicitation-sep1034-client-defaults sse-retry)
started=()

cleanup() {
  # Only what this script started, by process id.
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  "$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_http() { # URL: until anything answers HTTP there
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" != "000" ] && return 0
    sleep 0.1
  done
  echo "nothing answers at $1" >&2
  return 1
}

start() { # LOG COMMAND...: runs COMMAND in the background, remembers its pid
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  started+=($!)
}

echo "== conformance suite and Node 22 (pinned by tests/Conformance/package-lock.json)"
if [ ! -x "$NODE" ] || [ ! -f "$SUITE" ] || [ "$CONF/package-lock.json" -nt "$CONF/node_modules" ]; then
  (cd "$CONF" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$NODE" --version

mkdir -p "$WORK"
rm -rf "$WORK/results" "$WORK/logs"
mkdir -p "$WORK/results" "$WORK/logs"

echo "== build: fixture, client, policyc"
dotnet build "$CONF/ConformanceFixture" -c Release -nologo -v q
dotnet build "$CONF/ConformanceClient" -c Release -nologo -v q
dotnet build "$ROOT/src/PolicyCompiler.Cli" -c Release -nologo -v q
FIXTURE=$CONF/ConformanceFixture/bin/Release/net10.0/ConformanceFixture
CLIENT=$CONF/ConformanceClient/bin/Release/net10.0/ConformanceClient
POLICYC=$ROOT/src/PolicyCompiler.Cli/bin/Release/net10.0/policyc.dll

echo "== build: native gateway (policyc build policies/allow-all.json)"
ALLOW=$WORK/allow-all-gateway
if [ "${CONFORMANCE_REUSE_GATEWAYS:-0}" != 1 ] || [ ! -x "$ALLOW" ]; then
  dotnet "$POLICYC" build "$ROOT/policies/allow-all.json" -o "$ALLOW" >"$WORK/logs/build-gateway.txt" 2>&1 ||
    { cat "$WORK/logs/build-gateway.txt"; exit 1; }
fi
ls -l "$ALLOW" | awk '{print "  " $5 " bytes  " $NF}'

run_server_suite() { # MODE URL
  "$NODE" "$SUITE" server --url "$2" --suite all -o "$WORK/results/server/$1" >"$WORK/logs/server-$1.txt" 2>&1 || true
  echo "-- server scenarios: $1: $(sed -n 's/^Total: //p' "$WORK/logs/server-$1.txt")"
}

suites=()
serve() { # MODE GATEWAY-COMMAND...: starts the gateway (LISTEN in the command: where its --listen goes) on a
           # free port, then the suite against it, in the background
  local mode=$1; shift
  local gport arg
  gport=$(free_port)
  local command=()
  for arg in "$@"; do
    if [ "$arg" = LISTEN ]; then command+=(--listen "127.0.0.1:$gport"); else command+=("$arg"); fi
  done
  start "$WORK/logs/gateway-$mode.txt" "${command[@]}"
  wait_http "http://127.0.0.1:$gport/mcp"
  run_server_suite "$mode" "http://127.0.0.1:$gport/mcp" &
  suites+=($!)
}

echo "== server scenarios"
port=$(free_port)
start "$WORK/logs/fixture.txt" "$FIXTURE" --listen "127.0.0.1:$port"
FIXTURE_URL=http://127.0.0.1:$port/mcp
wait_http "$FIXTURE_URL"
run_server_suite direct "$FIXTURE_URL"

# The modes run side by side (each has its own gateway; the fixture serves them all): the stdio modes
# spend most of their time starting a child per session.
DENY_GATEWAY=(dotnet "$POLICYC" run http "$CONF/deny-sampling.json" LISTEN)
serve http "$ALLOW" http LISTEN --upstream "$FIXTURE_URL"
serve stdio "$ALLOW" http LISTEN -- "$FIXTURE" --stdio
# The stdio gateway itself, with every server scenario: HTTP → (child) GATEWAY stdio → (child) fixture.
serve stdio-gw "$ALLOW" http LISTEN -- "$ALLOW" stdio -- "$FIXTURE" --stdio
# The stdio → HTTP bridge, with every server scenario: HTTP → (child) GATEWAY stdio --upstream → fixture.
serve stdio-bridge "$ALLOW" http LISTEN -- "$ALLOW" stdio --upstream "$FIXTURE_URL"
serve http+deny "${DENY_GATEWAY[@]}" --upstream "$FIXTURE_URL"
serve stdio+deny "${DENY_GATEWAY[@]}" -- "$FIXTURE" --stdio
for pid in "${suites[@]}"; do wait "$pid"; done

echo "== client scenarios"
run_client_suite() { # MODE CLIENT-COMMAND
  echo "-- client scenarios: $1"
  for scenario in "${CLIENT_SCENARIOS[@]}"; do
    "$NODE" "$SUITE" client --command "$2" --scenario "$scenario" -o "$WORK/results/client/$1" \
      >>"$WORK/logs/client-$1.txt" 2>&1 || true
  done
}
run_client_suite direct "$CLIENT"
run_client_suite stdio "$CLIENT --gateway $ALLOW --via stdio"
run_client_suite http "$CLIENT --gateway $ALLOW --via http"

echo
echo "== results ($(date -u +%Y-%m-%dT%H:%MZ); logs and checks.json in $WORK)"
status=0
"$NODE" "$CONF/compare.mjs" --kind server --results "$WORK/results/server" \
  --modes direct,http,stdio,stdio-gw,stdio-bridge,http+deny,stdio+deny \
  --deny-scenario tools-call-sampling --deny-reason "$DENY_REASON" \
  --known "$CONF/known-differences.txt" --markdown "$WORK/server-table.md" || status=1
echo
"$NODE" "$CONF/compare.mjs" --kind client --results "$WORK/results/client" --modes direct,stdio,http \
  --known "$CONF/known-differences.txt" --markdown "$WORK/client-table.md" || status=1

if [ $status -ne 0 ]; then
  echo "conformance: the gateway differs from direct (above); see $WORK/logs" >&2
fi
exit $status
