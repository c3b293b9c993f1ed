#!/usr/bin/env bash
# Runs ../shared/bench/peers/run.sh (the same sipp load against Kamailio and
# Veilig on this machine) with Veilig as the server under test, and call-tls
# with bench/calltls.
#
#   bash bench/peers.sh                 # Kamailio, then Veilig, all tests
#   TESTS="register-tls" bash bench/peers.sh
#   ONLY=veilig bash bench/peers.sh     # skip the Kamailio run
#   ONLY=kamailio bash bench/peers.sh   # skip the Veilig run
#   BENCH_VEILIG_BIN=/tmp/old/veilig BENCH_LABEL=veilig-before ONLY=veilig bash bench/peers.sh
#                                       # another veilig binary, under its own label
#                                       # (bench/compare.sh uses this; not VEILIG_*:
#                                       # veilig refuses VEILIG_ variables it does not know)
#
# call-tls is not the harness's: its callee is a sipp UAS behind a TLS
# listener that the server must dial, and Veilig never dials devices. It is
# measured by bench/calltls (see bench/calltls/README.md) for both servers:
# the harness's caller load against callees that each register over their
# own TLS connection and are called on it. It reads the harness's settings
# (NUSERS, STEP_SECONDS, HOLD_MS, START_CALL_TLS, REFINE_STEPS, MAX_STEPS,
# MAX_RATE, BUDGET_SECONDS, the pass criteria, PIN, SERVER_CPUS, LOAD_CPUS).
#
# The sipp peer needs three settings that Veilig refuses by default, so they
# are set here explicitly (and Veilig prints them as warnings at start):
#   auth.insecure_md5_first                 sipp 3.6.1 reads only the first
#                                           challenge and cannot do SHA-256
#   sip.insecure_sdes_over_plain_transport  call-udp sends SDES keys over UDP
#   auth.insecure_digest_uri_without_user   sipp 3.6.1 computes the digest over
#                                           sip:<address it sent to>, without
#                                           the callee of an INVITE
# Each measurement starts Veilig on a fresh copy of the provisioned data
# directory, as the harness restarts Kamailio with an empty location table:
# Veilig keeps bindings across restarts (as it must), so without the copy the
# register tests' bindings (sipp's caller port among them) would make every
# call-udp INVITE fork to dead contacts and retransmit for 32 s.
#
# and one that states what the load is:
#   guard.trusted_sources=127.0.0.1/32      one sipp stands in for thousands of
#                                           devices; without it the per-source
#                                           rate limits (rightly) throttle it
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
harness=${HARNESS:-$root/../shared/bench/peers/run.sh}
[ -f "$harness" ] || { echo "bench harness not found at $harness" >&2; exit 1; }
case "${ONLY:-}" in ""|veilig|kamailio) ;; *) echo "ONLY must be veilig or kamailio" >&2; exit 2 ;; esac
label=${BENCH_LABEL:-veilig}
out=${OUT_DIR:-$root/out/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

harness_tests="" calltls=0
for t in ${TESTS:-register-udp register-tls register-tls-newconn call-udp call-tls}; do
  if [ "$t" = call-tls ]; then calltls=1; else harness_tests="$harness_tests $t"; fi
done
harness_tests=${harness_tests# }

bin=
if [ "${ONLY:-}" != kamailio ]; then
  if [ -n "${BENCH_VEILIG_BIN:-}" ]; then
    bin=$(cd "$(dirname "$BENCH_VEILIG_BIN")" && pwd)/$(basename "$BENCH_VEILIG_BIN")
    [ -x "$bin" ] || { echo "BENCH_VEILIG_BIN $BENCH_VEILIG_BIN is not an executable" >&2; exit 1; }
  else
    (cd "$root" && go build -o bin/veilig ./cmd/veilig)
    bin=$root/bin/veilig
  fi
fi

if [ -n "$harness_tests" ]; then
  if [ "${ONLY:-}" != veilig ]; then
    TESTS=$harness_tests OUT_DIR=$out/kamailio bash "$harness"
  fi
  if [ -n "$bin" ]; then
    # A build from before the digest uri check (compare.sh's "before")
    # neither needs nor knows the setting.
    VBENCH_DIGEST_FLAG=
    if grep -q insecure_digest_uri_without_user "$bin"; then
      VBENCH_DIGEST_FLAG="--set auth.insecure_digest_uri_without_user=true"
    fi
    export VBENCH_BIN=$bin VBENCH_ROOT=$root VBENCH_DIGEST_FLAG
    TESTS=$harness_tests \
    SERVER=$label \
    SERVER_SETUP_CMD='{ "$VBENCH_BIN" init --data-dir "$BENCH_WORK/veilig-data" >/dev/null 2>&1 || true; } && "$VBENCH_BIN" ext import "$USERS_FILE" --data-dir "$BENCH_WORK/veilig-data" --set sip.domain="$SIP_DOMAIN"' \
    SERVER_CMD='bash "$VBENCH_ROOT/bench/serve-fresh.sh" "$BENCH_WORK/veilig-data" "$BENCH_WORK/veilig-run" "$VBENCH_BIN" serve --data-dir "$BENCH_WORK/veilig-run" --sip-domain "$SIP_DOMAIN" --sip-udp 127.0.0.1:$UDP_PORT --sip-tls 127.0.0.1:$TLS_PORT --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" --set auth.insecure_md5_first=true $VBENCH_DIGEST_FLAG --set sip.insecure_sdes_over_plain_transport=true --set guard.trusted_sources=127.0.0.1/32 --set log.level=warn' \
    UDP_PORT=${UDP_PORT:-25060} TLS_PORT=${TLS_PORT:-25061} OUT_DIR=$out/$label \
    bash "$harness"
  fi
fi

if [ "$calltls" = 1 ]; then
  targets=
  [ "${ONLY:-}" = veilig ] || targets=kamailio
  [ -z "$bin" ] || targets=${targets:+$targets,}$label=$bin
  (cd "$root" && go build -o "$out/calltls.bin" ./bench/calltls)
  (cd "$root" && "$out/calltls.bin" -targets "$targets" -out "$out/call-tls" \
    -pin="$([ "${PIN:-1}" = 1 ] && echo true || echo false)" \
    -server-cpus "${SERVER_CPUS:-0}" -load-cpus "${LOAD_CPUS:-1}" \
    -users "${NUSERS:-1000}" -step-seconds "${STEP_SECONDS:-6}" -hold-ms "${HOLD_MS:-1000}" \
    -start "${START_CALL_TLS:-250}" -refine "${REFINE_STEPS:-2}" -max-steps "${MAX_STEPS:-8}" \
    -max-rate "${MAX_RATE:-40000}" -budget "${BUDGET_SECONDS:-540}s" \
    -max-fail-pct "${MAX_FAIL_PCT:-1}" -min-achieved-pct "${MIN_ACHIEVED_PCT:-95}" \
    -slow-ms "${SLOW_MS:-200}" -max-slow-pct "${MAX_SLOW_PCT:-1}")
fi
echo "results: $out"
