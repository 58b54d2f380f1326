#!/usr/bin/env bash
# Instructions per decision, compiled vs interpreted, counted by valgrind (cachegrind, no cache
# simulation): unlike time, the count does not move with the machine's load. Each case runs twice,
# with FEW and MANY calls; (I(MANY) - I(FEW)) / (MANY - FEW) removes start-up, JIT and set-up.
# Tiered compilation and ReadyToRun are off so every method, the framework's included, is compiled
# once, fully optimised, before the loop: no background re-JIT in the count, and no PGO (closest to
# the Native AOT gateway, which has neither).
#
#   benchmarks/instructions.sh                 # every case
#   benchmarks/instructions.sh ExactAllow ConditionPass
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$here/PolicyCompiler.Benchmarks"
few=${FEW:-20000}
many=${MANY:-120000}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

dotnet build -c Release "$project" -v q -nologo >/dev/null
dll="$project/bin/Release/net10.0/PolicyCompiler.Benchmarks.dll"
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(ExactAllow ExactAllowEks GlobMatch ConditionPass ConditionFail RegexPass RateLimited UnknownTool Wide500Lookup)

count() { # case evaluator calls -> instructions (all threads)
  DOTNET_TieredCompilation=0 DOTNET_ReadyToRun=0 DOTNET_gcServer=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    dotnet "$dll" --calls "$1" "$2" "$3" 2>&1 | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}

printf '| case | interpreter (instructions/call) | compiled (instructions/call) | ratio |\n|---|---:|---:|---:|\n'
for c in "${cases[@]}"; do
  per=()
  for kind in Interpreter Compiled; do
    a=$(count "$c" "$kind" "$few"); b=$(count "$c" "$kind" "$many")
    per+=("$(( (b - a) / (many - few) ))")
  done
  ratio=$(awk -v i="${per[0]}" -v c="${per[1]}" 'BEGIN { printf "%.1f×", (c > 0 ? i / c : 0) }')
  printf '| %s | %s | %s | %s |\n' "$c" "${per[0]}" "${per[1]}" "$ratio"
done
