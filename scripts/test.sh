#!/usr/bin/env bash
# Runs every test: installs the pinned npm MCP servers the end-to-end tests use (npm ci, from
# tests/servers-npm/package-lock.json), then the whole .NET test suite in Release, then the official
# MCP conformance suite through the gateway (scripts/conformance.sh, docs/conformance.md).
# Arguments go to `dotnet test` (e.g. --filter ...) and skip the conformance run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d tests/servers-npm/node_modules ] || [ tests/servers-npm/package-lock.json -nt tests/servers-npm/node_modules ]; then
  (cd tests/servers-npm && npm ci --no-audit --no-fund --loglevel=error)
fi

dotnet test PolicyCompiler.sln -c Release "$@"

if [ $# -eq 0 ]; then
  scripts/conformance.sh
fi
