#!/usr/bin/env bash
# The end-to-end latency harness (docs/performance.md, "End-to-end latency and footprint").
#
#   benchmarks/latency/run.sh           full measurement (~10 min on 2 shared cores), report in out/report.md
#   benchmarks/latency/run.sh --quick   smoke mode for CI: every configuration, a handful of calls;
#                                       exit 0 only if all of them worked (never a timed pass/fail)
#
# Builds: the raw echo server (C, gcc), the driver (C#, Release), policyc (Release) and the AOT gateway
# for policy.json; installs the pinned Node peers (npm ci). Extra driver options after the mode are
# passed through (e.g. --rounds 9 --calls 5000).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out"
mkdir -p "$out"

quick=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; shift; fi

log() { echo "== latency: $*" >&2; }

log "echo server and relay (gcc)"
gcc -O2 -Wall -Wextra -Werror -o "$out/echo" "$here/echo/echo.c"
gcc -O2 -Wall -Wextra -Werror -o "$out/relay" "$here/echo/relay.c"

log "Node peers (npm ci, pinned by package-lock.json)"
if [[ ! -f "$here/node_modules/.package-lock.json" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
everything="$root/tests/servers-npm/node_modules/.bin/mcp-server-everything"
if [[ ! -x "$everything" ]]; then
  (cd "$root/tests/servers-npm" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "driver and policyc (Release)"
dotnet build "$here/Driver" -c Release -o "$out/driver" -nologo -v quiet >&2
dotnet build "$root/src/PolicyCompiler.Cli" -c Release -nologo -v quiet >&2
policyc="$root/src/PolicyCompiler.Cli/bin/Release/net10.0/policyc.dll"

log "AOT gateway for policy.json (policyc build)"
mkdir -p "$out/gateway"
dotnet "$policyc" build "$here/policy.json" -o "$out/gateway" --source "$root" >&2
gateway="$out/gateway/latency-bench"

# One configuration per line, tab-separated: NAME BASELINE REFERENCE KIND URL COMMAND ARGS...
# BASELINE: what "added latency" is measured against (the same upstream, spoken to directly).
# REFERENCE: our gateway in the same situation, for the "÷ reference's" ratio.
# {port} (URL and arguments) becomes a free 127.0.0.1 port, chosen by the driver before each start.
# Every gateway gets --state memory: the default SQLite store would put disk I/O into the figures
# (and the policy has no limits anyway, so no counter is touched).
configs="$out/configs.tsv"
conf() { local IFS=$'\t'; echo "$*"; }
direct="echo direct"; ours="echo via AOT gateway (stdio)"; ours_http="echo via AOT gateway (HTTP)"
sg="$here/node_modules/.bin/supergateway"; mp="$here/node_modules/.bin/mcp-proxy"
{
  conf "$direct" "$direct" - stdio - "$out/echo"
  conf "echo via C relay (one more hop, no parsing)" "$direct" - stdio - "$out/relay" "$out/echo"
  conf "$ours" "$direct" - stdio - "$gateway" stdio --state memory -- "$out/echo"
  conf "echo via policyc run (interpreter)" "$direct" "$ours" stdio - dotnet "$policyc" run "$here/policy.json" --state memory -- "$out/echo"
  # Like for like with the peers: a stdio server behind Streamable HTTP, one upstream child per session.
  conf "$ours_http" "$direct" - http "http://127.0.0.1:{port}/mcp" "$gateway" http --listen "127.0.0.1:{port}" --state memory -- "$out/echo"
  conf "echo via supergateway (HTTP, stateful)" "$direct" "$ours_http" http "http://127.0.0.1:{port}/mcp" \
    "$sg" --stdio "$out/echo" --outputTransport streamableHttp --stateful --port "{port}" --logLevel none
  conf "echo via supergateway (HTTP, stateless)" "$direct" "$ours_http" http "http://127.0.0.1:{port}/mcp" \
    "$sg" --stdio "$out/echo" --outputTransport streamableHttp --port "{port}" --logLevel none
  conf "echo via mcp-proxy (HTTP, stateful)" "$direct" "$ours_http" http "http://127.0.0.1:{port}/mcp" \
    "$mp" --host 127.0.0.1 --port "{port}" --server stream -- "$out/echo"
  conf "server-everything direct" "server-everything direct" - stdio - "$everything" stdio
  conf "server-everything via AOT gateway (stdio)" "server-everything direct" - stdio - "$gateway" stdio --state memory -- "$everything" stdio
} > "$configs"

command="benchmarks/latency/run.sh${*:+ $*}"
if (( quick )); then
  command="benchmarks/latency/run.sh --quick${*:+ $*}"
  set -- --rounds 1 --calls 20 --concurrent-calls 40 --in-flight 4 --warmup 5 --starts 1 --sessions 5 "$@"
fi
log "measuring"
dotnet "$out/driver/LatencyDriver.dll" --configs "$configs" --markdown "$out/report.md" \
  --size "the AOT gateway (latency-bench)=$gateway" \
  --command "$command" "$@"
