#!/usr/bin/env bash
# Flood benchmark: an unauthenticated REGISTER flood from 127.0.0.66 (sipp,
# as fast as it goes) while 1000 agents behind one NAT address, 127.0.0.10,
# register with MD5 digest at 200/s (bench/flood/agents, which measures every
# registration). Against Kamailio with pike at its stock density (16
# requests per 2 s) and against Veilig, in the same run, each server pinned to
# CPU 0 and all load to CPU 1. Prints one line per server.
#
#   bash bench/flood/run.sh
#   VARIANTS="kamailio-nopike kamailio-pike kamailio-pike-exempt veilig" bash bench/flood/run.sh
#
# Every run is bounded (sipp -m and -timeout, outer timeout); only processes
# this script started are stopped, by PID. Output: $OUT_DIR (default
# out/flood-<timestamp>, ignored by git).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
VARIANTS=${VARIANTS:-"kamailio-pike veilig"}
OUT_DIR=${OUT_DIR:-$root/out/flood-$(date +%Y%m%d-%H%M%S)}
UDP_PORT=${UDP_PORT:-25160}
TLS_PORT=${TLS_PORT:-25161}
METRICS_PORT=${METRICS_PORT:-25162}
DOMAIN=bench.test
NUSERS=1000
AGENT_IP=127.0.0.10
FLOOD_IP=127.0.0.66
AGENT_RATE=${AGENT_RATE:-200}
AGENT_SECONDS=${AGENT_SECONDS:-10}
FLOOD_SECONDS=${FLOOD_SECONDS:-14}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
mkdir -p "$OUT_DIR"
WORK=$OUT_DIR/work
mkdir -p "$WORK"

die() { echo "run.sh: $*" >&2; exit 1; }
for tool in sipp kamailio sqlite3 perl taskset go timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install sip-tester kamailio kamailio-sqlite-modules sqlite3 perl util-linux; Go in PATH)"
done

STARTED=()
stop_pid() {  # stop_pid PID: TERM, then KILL after 5 s
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { local p; for p in "${STARTED[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done; }
trap cleanup EXIT

wait_udp() {  # wait_udp PORT PID
  for _ in $(seq 150); do
    ss -H -lun "sport = :$1" 2>/dev/null | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# CPU time (clock ticks) of a process and its children (Kamailio forks workers).
cpu_of() {
  local pid=$1 total=0 p
  for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
    [ -r /proc/$p/stat ] || continue
    total=$(awk -v t="$total" '{ s=$0; sub(/^.*\) /, "", s); split(s, f, " "); print t + f[12] + f[13] }' /proc/$p/stat)
  done
  echo "$total"
}

# ---------------------------------------------------------------- material
(cd "$root" && go build -o "$WORK/agents" ./bench/flood/agents && go build -o "$WORK/veilig" ./cmd/veilig)
perl -MDigest::MD5=md5_hex -MDigest::SHA=sha256_hex -e '
  my ($n, $dom, $dir) = @ARGV;
  open(my $txt, ">", "$dir/users.txt") or die;
  open(my $sql, ">", "$dir/subscribers.sql") or die;
  print $sql "BEGIN;\n";
  for my $i (0 .. $n - 1) {
    my $u = sprintf("user%04d", $i);
    my $p = "Ag-X" . substr(sha256_hex("veilig-flood:$u"), 0, 16) . "9z";
    print $txt "$u:$p\n";
    printf $sql "INSERT INTO subscriber (username,domain,password,ha1,ha1b) VALUES (\x27%s\x27,\x27%s\x27,\x27\x27,\x27%s\x27,\x27%s\x27);\n",
      $u, $dom, md5_hex("$u:$dom:$p"), md5_hex("$u\@$dom:$dom:$p");
  }
  print $sql "COMMIT;\n";
' "$NUSERS" "$DOMAIN" "$WORK"

kamailio_prepare() {
  local schema=/usr/share/kamailio/db_sqlite modpath
  rm -f "$WORK/kamailio.sqlite"
  cat "$schema/standard-create.sql" "$schema/auth_db-create.sql" "$WORK/subscribers.sql" | sqlite3 "$WORK/kamailio.sqlite"
  modpath=$(dirname "$(dpkg -L kamailio | grep -m1 '/modules/tm.so$')")/
  sed -e "s|@@DEBUG@@|-1|g; s|@@CHILDREN@@|4|g; s|@@TCP_CHILDREN@@|1|g; s|@@UDP_MAXBUFFER@@|8388608|g" \
      -e "s|@@DOMAIN@@|$DOMAIN|g; s|@@HOST@@|127.0.0.1|g; s|@@UDP_PORT@@|$UDP_PORT|g" \
      -e "s|@@MODPATH@@|$modpath|g; s|@@WORK@@|$WORK|g; s|@@AUTH_SECRET@@|$(openssl rand -hex 16)|g; s|@@EXEMPT@@|$AGENT_IP|g" \
      "$here/kamailio-pike.cfg.in" > "$WORK/kamailio.cfg"
  kamailio -c -f "$WORK/kamailio.cfg" -A WITH_PIKE > "$WORK/kamailio-check.log" 2>&1 \
    || { cat "$WORK/kamailio-check.log" >&2; die "kamailio config check failed"; }
}

veilig_prepare() {
  rm -rf "$WORK/veilig-data"
  cat > "$WORK/veilig.yaml" <<YAML
data_dir: $WORK/veilig-data
sip:
  domain: $DOMAIN
  tls_listen: 127.0.0.1:$TLS_PORT
  udp_listen: 127.0.0.1:$UDP_PORT
log:
  level: warn
metrics:
  listen: 127.0.0.1:$METRICS_PORT
YAML
  "$WORK/veilig" ext import "$WORK/users.txt" --config "$WORK/veilig.yaml" > "$WORK/veilig-import.log"
}

SRV=
server_start() {  # server_start VARIANT
  local v=$1 log=$OUT_DIR/server-$1.log
  ss -H -lun "sport = :$UDP_PORT" | grep -q . && die "udp/$UDP_PORT is busy"
  case $v in
    kamailio-pike)        taskset -c "$SERVER_CPU" kamailio -f "$WORK/kamailio.cfg" -DD -E -m 256 -M 16 -A WITH_PIKE > "$log" 2>&1 & ;;
    kamailio-pike-exempt) taskset -c "$SERVER_CPU" kamailio -f "$WORK/kamailio.cfg" -DD -E -m 256 -M 16 -A WITH_PIKE -A WITH_EXEMPT > "$log" 2>&1 & ;;
    kamailio-nopike)      taskset -c "$SERVER_CPU" kamailio -f "$WORK/kamailio.cfg" -DD -E -m 256 -M 16 > "$log" 2>&1 & ;;
    veilig)               taskset -c "$SERVER_CPU" "$WORK/veilig" serve --config "$WORK/veilig.yaml" > "$log" 2>&1 & ;;
    *) die "unknown variant $v" ;;
  esac
  SRV=$!
  STARTED+=("$SRV")
  wait_udp "$UDP_PORT" "$SRV" || { tail -20 "$log" >&2; die "$v did not come up"; }
  sleep 1
}

measure() {  # measure VARIANT
  local v=$1 cpu0 cpu1 t0 t1 created res floodpid
  case $v in kamailio*) kamailio_prepare ;; veilig) veilig_prepare ;; esac
  server_start "$v"
  cpu0=$(cpu_of "$SRV"); t0=$(date +%s.%N)
  timeout $((FLOOD_SECONDS + 10)) taskset -c "$LOAD_CPU" nice -n 19 sipp "127.0.0.1:$UDP_PORT" \
    -sf "$here/flood_register.xml" -key domain "$DOMAIN" -t u1 -i "$FLOOD_IP" -p 25170 \
    -r 100000 -m 2000000 -timeout "${FLOOD_SECONDS}s" -nostdin \
    -trace_screen -screen_file "$OUT_DIR/flood-$v.screen.txt" > "$OUT_DIR/flood-$v.sipp.log" 2>&1 &
  floodpid=$!; STARTED+=("$floodpid")
  sleep 1
  res=$(timeout $((AGENT_SECONDS + 30)) taskset -c "$LOAD_CPU" "$WORK/agents" -server "127.0.0.1:$UDP_PORT" -local "$AGENT_IP" \
    -users "$WORK/users.txt" -domain "$DOMAIN" -rate "$AGENT_RATE" -duration "${AGENT_SECONDS}s" -sockets 32)
  cpu1=$(cpu_of "$SRV"); t1=$(date +%s.%N)
  wait "$floodpid" || true
  created=$(grep -a -o 'Total Calls created *| *| *[0-9]*' "$OUT_DIR/flood-$v.screen.txt" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0)
  echo "$res" > "$OUT_DIR/agents-$v.json"
  local alerts=""
  if [ "$v" = veilig ]; then
    alerts=$(grep -c '"type":"flood.detected"' "$WORK/veilig-data/events.jsonl" || true)
    alerts=", flood.detected alerts $alerts"
  fi
  stop_pid "$SRV"
  perl -MJSON::PP -e '
    my ($v, $res, $created, $fs, $cpu, $secs, $alerts) = @ARGV;
    my $r = decode_json($res);
    printf "%-22s flood %6.0f REGISTER/s offered (%d in %ss) | agents %d/%d ok = %.2f%%, p50 %.1f ms, p99 %.1f ms, max %.0f ms, retransmits %d, codes %s | server CPU %.0f%% of a core%s\n",
      $v, $created / ($fs + 1), $created, $fs + 1, $r->{ok}, $r->{offered}, $r->{success_pct}, $r->{p50_ms}, $r->{p99_ms}, $r->{max_ms},
      $r->{retransmits}, join(",", map { "$_=$r->{final_codes}{$_}" } sort keys %{$r->{final_codes}}), 100 * $cpu / $secs, $alerts;
  ' "$v" "$res" "${created:-0}" "$FLOOD_SECONDS" "$(echo "($cpu1 - $cpu0) / $(getconf CLK_TCK)" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" "$alerts" | tee -a "$OUT_DIR/results.txt"
}

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
  echo "kamailio: $(kamailio -v 2>/dev/null | head -1)"
  echo "sipp: $(sipp -v 2>/dev/null | grep -m1 -o 'SIPp v[^ ]*' || true)"
  echo "veilig: $("$WORK/veilig" version 2>/dev/null | head -1)"
  echo "pinning: server CPU $SERVER_CPU; flood (nice 19) and agents CPU $LOAD_CPU"
  echo "load: flood from $FLOOD_IP for ${FLOOD_SECONDS}s at sipp -r 100000; agents $NUSERS users from $AGENT_IP, $AGENT_RATE reg/s for ${AGENT_SECONDS}s, MD5 digest, 32 sockets, UDP retransmit 0.5/1/2 s, fail after 4 s"
} | tee "$OUT_DIR/env.txt"
for v in $VARIANTS; do measure "$v"; done
echo "results: $OUT_DIR/results.txt"
