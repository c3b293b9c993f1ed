#!/usr/bin/env bash
# compare.sh BEFORE [AFTER]: Kamailio, Veilig built from git commit BEFORE and
# Veilig built from AFTER (default: the working tree) under the same load, in
# one sitting, so that before/after ratios come from one run.
#
#   bash bench/compare.sh dc745c5
#   TESTS="register-udp call-tls" ROUNDS=2 bash bench/compare.sh dc745c5 HEAD
#
# Every measurement is one bench/peers.sh run for one server and one test
# (call-tls through bench/calltls); the three servers take turns test by test,
# and the order rotates from one test to the next, so that the machine's drift
# (this shared VM's speed moves by tens of percent over minutes) falls on all
# three alike. Results go to out/compare-<time>/: summary.md (one row per test
# and round, with the ratios), and each run's own directory.
#
# Environment: TESTS (default: register-udp register-tls call-udp call-tls),
# ROUNDS (1), OUT_DIR, and whatever bench/peers.sh and the harness read.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: bash bench/compare.sh BEFORE-COMMIT [AFTER-COMMIT]" >&2; exit 2; }
before_rev=$1 after_rev=${2:-}
tests=${TESTS:-register-udp register-tls call-udp call-tls}
rounds=${ROUNDS:-1}
case "$rounds" in ''|*[!0-9]*|0) echo "ROUNDS must be a positive number" >&2; exit 2 ;; esac
out=${OUT_DIR:-$root/out/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# build REV DEST: `go build ./cmd/veilig` of the tree at REV (exported with
# git archive: no worktree, nothing in the checkout changes).
build() {
  local rev=$1 dest=$2 src
  src=$tmp/src-$(basename "$(dirname "$dest")")
  mkdir -p "$src" "$(dirname "$dest")"
  git -C "$root" archive "$rev" | tar -x -C "$src"
  (cd "$src" && go build -o "$dest" ./cmd/veilig)
}

before_sha=$(git -C "$root" rev-parse --verify --short "$before_rev^{commit}")
build "$before_sha" "$out/bin/before/veilig"
if [ -n "$after_rev" ]; then
  after_sha=$(git -C "$root" rev-parse --verify --short "$after_rev^{commit}")
  build "$after_sha" "$out/bin/after/veilig"
else
  after_sha=$(git -C "$root" rev-parse --short HEAD)
  [ -z "$(git -C "$root" status --porcelain -- cmd internal go.mod go.sum)" ] || after_sha="$after_sha+uncommitted"
  mkdir -p "$out/bin/after"
  (cd "$root" && go build -o "$out/bin/after/veilig" ./cmd/veilig)
fi

{
  echo "date: $(date -Is)"
  echo "host: $(uname -srm), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "before: $before_sha (veilig-before), after: $after_sha (veilig-after)"
  echo "tests: $tests; rounds: $rounds"
} | tee "$out/env.txt" >&2

servers=(kamailio veilig-before veilig-after)

# one TEST SERVER DIR: one bench/peers.sh run of one test for one server.
one() {
  local test=$1 server=$2 dir=$3
  case "$server" in
    kamailio) ONLY=kamailio TESTS=$test OUT_DIR=$dir bash "$here/peers.sh" ;;
    veilig-before) ONLY=veilig BENCH_VEILIG_BIN=$out/bin/before/veilig BENCH_LABEL=$server TESTS=$test OUT_DIR=$dir bash "$here/peers.sh" ;;
    veilig-after) ONLY=veilig BENCH_VEILIG_BIN=$out/bin/after/veilig BENCH_LABEL=$server TESTS=$test OUT_DIR=$dir bash "$here/peers.sh" ;;
  esac
}

# figure DIR SERVER TEST: the sustained rate of a result line ("kamailio
# register udp: 8000 reg/s ..."), or "-" if the run found none.
figure() {
  local label="$2 ${3/-/ }:"
  cat "$1"/*/results.txt 2>/dev/null | awk -v l="$label" '
    index($0, l) == 1 {
      rest = substr($0, length(l) + 1); split(rest, f, " ")
      print (rest ~ /^ *no sustainable/) ? "-" : f[1]; found = 1; exit
    }
    END { if (!found) print "-" }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

summary=$out/summary.md
{
  echo "| round | test | order | Kamailio | Veilig before ($before_sha) | Veilig after ($after_sha) | before/K | after/K | after/before |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$summary"

turn=0
for r in $(seq 1 "$rounds"); do
  for test in $tests; do
    order=()
    for i in 0 1 2; do order+=("${servers[$(( (turn + i) % 3 ))]}"); done
    turn=$((turn + 1))
    declare -A got=()
    for s in "${order[@]}"; do
      dir=$out/r$r-$test-$s
      echo "== round $r, $test, $s ($(date +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      if one "$test" "$s" "$dir" > "$dir.log" 2>&1; then
        got[$s]=$(figure "$dir" "$s" "$test")
      else
        echo "   $s $test failed: see $dir.log" >&2
        got[$s]=-
      fi
      echo "   $s $test: ${got[$s]}" >&2
    done
    k=${got[kamailio]} b=${got[veilig-before]} a=${got[veilig-after]}
    echo "| $r | $test | ${order[*]} | $k | $b | $a | $(ratio "$b" "$k") | $(ratio "$a" "$k") | $(ratio "$a" "$b") |" >> "$summary"
    unset got
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/env.txt"
cat "$summary"
echo "results: $out" >&2
