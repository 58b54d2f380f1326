#!/usr/bin/env bash
# Instructions per decision, compiled vs interpreted, counted by valgrind (cachegrind, no cache
# simulation): unlike time, the count does not move with the machine's load. Each case runs twice,
# with FEW and MANY calls; (I(MANY) - I(FEW)) / (MANY - FEW) removes start-up and set-up.
#
# MODE=aot (default): the benchmark program is published with Native AOT, like the gateway, and the
# native executable is counted: every method is compiled ahead of time with full optimisation.
# MODE=jit: the JIT build, tiered compilation and ReadyToRun off. Kept for comparison with older
# figures only: under valgrind the JIT's optimised compile fails for most methods that make calls and
# it silently retries them with MinOpts (no inlining: even Span indexers become calls), so JIT counts
# measure unoptimised code (docs/performance.md, "Decisions: instructions per call").
#
#   benchmarks/instructions.sh                 # every case
#   benchmarks/instructions.sh ExactAllow ConditionPass
#   MODE=jit benchmarks/instructions.sh ExactAllow
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$here/PolicyCompiler.Benchmarks"
few=${FEW:-20000}
many=${MANY:-120000}
mode=${MODE:-aot}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

case "$mode" in
  aot)
    out="$project/bin/Release/net10.0/linux-x64/instructions"
    # BenchmarkDotNet itself is not trim-safe (its warnings would be errors); the --calls path uses none of it.
    dotnet publish -c Release -r linux-x64 "$project" -p:PublishAot=true -p:TreatWarningsAsErrors=false \
      -p:StripSymbols=true -o "$out" -v q -nologo >/dev/null
    # valgrind 3.19 cannot read the DWARF 5 of the symbol file: keep its symbol table only (for callgrind).
    if [ -f "$out/PolicyCompiler.Benchmarks.dbg" ]; then
      objcopy --strip-debug "$out/PolicyCompiler.Benchmarks.dbg" "$out/PolicyCompiler.Benchmarks.dbg.tmp"
      mv "$out/PolicyCompiler.Benchmarks.dbg.tmp" "$out/PolicyCompiler.Benchmarks.dbg"
    fi
    run=("$out/PolicyCompiler.Benchmarks")
    ;;
  jit)
    dotnet build -c Release "$project" -v q -nologo >/dev/null
    run=(env DOTNET_TieredCompilation=0 DOTNET_ReadyToRun=0 DOTNET_gcServer=0 dotnet "$project/bin/Release/net10.0/PolicyCompiler.Benchmarks.dll")
    ;;
  *) echo "MODE must be aot or jit" >&2; exit 2 ;;
esac

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(ExactAllow ExactAllowEks GlobMatch ConditionPass ConditionFail RegexPass RateLimited UnknownTool Wide500Lookup)

count() { # case evaluator calls -> instructions (all threads)
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "${run[@]}" --calls "$1" "$2" "$3" 2>&1 | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
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
