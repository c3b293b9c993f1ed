#!/usr/bin/env bash
# Runs ../shared/bench/peers/run.sh (the same sipp load against Kamailio and
# Veilig on this machine) with Veilig as the server under test.
#
#   bash bench/peers.sh                 # Kamailio, then Veilig, all tests
#   TESTS="register-tls" bash bench/peers.sh
#   ONLY=veilig bash bench/peers.sh     # skip the Kamailio run
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
(cd "$root" && go build -o bin/veilig ./cmd/veilig)
bin=$root/bin/veilig
out=${OUT_DIR:-$root/out/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

if [ "${ONLY:-}" != veilig ]; then
  OUT_DIR=$out/kamailio bash "$harness"
fi

export VBENCH_BIN=$bin VBENCH_ROOT=$root
SERVER=veilig \
SERVER_SETUP_CMD='"$VBENCH_BIN" ext import "$USERS_FILE" --data-dir "$BENCH_WORK/veilig-data" --set sip.domain="$SIP_DOMAIN"' \
SERVER_CMD='bash "$VBENCH_ROOT/bench/serve-fresh.sh" "$BENCH_WORK/veilig-data" "$BENCH_WORK/veilig-run" "$VBENCH_BIN" serve --data-dir "$BENCH_WORK/veilig-run" --sip-domain "$SIP_DOMAIN" --sip-udp 127.0.0.1:$UDP_PORT --sip-tls 127.0.0.1:$TLS_PORT --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" --set auth.insecure_md5_first=true --set auth.insecure_digest_uri_without_user=true --set sip.insecure_sdes_over_plain_transport=true --set guard.trusted_sources=127.0.0.1/32 --set log.level=warn' \
UDP_PORT=${UDP_PORT:-25060} TLS_PORT=${TLS_PORT:-25061} OUT_DIR=$out/veilig \
bash "$harness"
echo "results: $out"
