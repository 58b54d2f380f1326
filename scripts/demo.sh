#!/usr/bin/env bash
# The main job: build a native gateway from the bundled EKS policy (policies/eks.json) with
# `policyc build`, put it in front of a real MCP server (the EKS-like sample server, built with the
# official C# SDK), and play a scenario of tool calls through it with an MCP client: reads pass,
# deletes are held until a (scripted) human approves or declines them in the client (elicitation),
# other destructive and IAM calls are stopped with a reason, writes are rate-limited.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building policyc, the sample server and the demo client"
for project in src/PolicyCompiler.Cli tests/Servers/EksLikeServer samples/DemoClient; do
  dotnet build "$project" -c Release --nologo -v quiet -clp:ErrorsOnly
done

mkdir -p artifacts
echo
echo "== policyc build policies/eks.json (Native AOT)"
dotnet src/PolicyCompiler.Cli/bin/Release/net10.0/policyc.dll build policies/eks.json -o artifacts/eks-gateway

echo
echo "== artifacts/eks-gateway --version"
artifacts/eks-gateway --version

echo
echo "== an MCP client talks to the EKS-like server through the gateway"
# A fresh counter file each run, so the demo is repeatable (by default counters live in a per-user
# SQLite file and survive restarts: a second run within the minute would start rate-limited).
rm -f artifacts/eks-audit.jsonl artifacts/eks-counters.db*
dotnet samples/DemoClient/bin/Release/net10.0/DemoClient.dll samples/DemoClient/eks-scenario.json \
  artifacts/eks-gateway stdio --grant demo-agent --audit artifacts/eks-audit.jsonl --state sqlite:artifacts/eks-counters.db -- \
  dotnet tests/Servers/EksLikeServer/bin/Release/net10.0/EksLikeServer.dll

echo
echo "== audit log (artifacts/eks-audit.jsonl), last 3 of $(wc -l < artifacts/eks-audit.jsonl) lines"
tail -n 3 artifacts/eks-audit.jsonl
