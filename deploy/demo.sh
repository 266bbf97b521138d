#!/usr/bin/env bash
# The main job: one gateway with its embedded RocksDB store and one agent per site, all on
# this machine, with traffic flowing until Ctrl-C (or --duration).
#
#   deploy/demo.sh [--duration SECONDS] [--sites N] [--workdir DIR] [--json-socket PATH]
#
# Installs what is missing and builds if needed. Each site's agent replays freshly generated
# traffic (flowgate-trafficgen: DNS, TLS, HTTP, QUIC, SSH, NTP sessions stamped with the
# current time) every few seconds into the gateway. Watch it with:
#   nc -U <socket> | jq -c 'select(.type=="flow") | [.agent.site, .flow.detected_protocol_name, .flow.detected_application_name, .flow.host_server_name]'
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

duration=0
sites=3
workdir=""
socket=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2:?--duration needs SECONDS}; shift 2 ;;
    --sites) sites=${2:?--sites needs N}; shift 2 ;;
    --workdir) workdir=${2:?--workdir needs DIR}; shift 2 ;;
    --json-socket) socket=${2:?--json-socket needs PATH}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration$sites" in *[!0-9]*) echo "demo: --duration and --sites take whole numbers" >&2; exit 2 ;; esac
[ "$sites" -ge 1 ] && [ "$sites" -le 9 ] || { echo "demo: --sites must be 1 to 9" >&2; exit 2; }

deploy/install-deps.sh
if [ ! -x build/bin/flowgate-gateway ] || [ ! -x build/bin/flowgate-agent ] || [ ! -x build/bin/flowgate-trafficgen ]; then
  echo "demo: building (first run only; a few minutes on 2 cores)"
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build -j "$(nproc)" --target flowgate-gateway flowgate-agent flowgate-trafficgen flowgate
fi

workdir=${workdir:-$(mktemp -d /tmp/flowgate-demo.XXXXXX)}
mkdir -p "$workdir"
socket=${socket:-$workdir/flowgate.sock}
port=7151
gateway_pid=""
reader_pid=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$reader_pid" ] && kill "$reader_pid" 2>/dev/null || true
  if [ -n "$gateway_pid" ] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid"
    wait "$gateway_pid" || true
  fi
  summary
  echo "demo: stopped. Data kept in $workdir/data (logs: $workdir/*.log)"
}
summary() {
  [ -s "$workdir/stream.json" ] || return 0
  echo "demo: flows seen on the JSON socket, by site and application:"
  jq -r 'select(.type=="flow" and (.flow.detection_updated|not)) | [.agent.site, (.flow.detected_protocol_name + (if .flow.detected_application != 0 then "." + .flow.detected_application_name else "" end))] | @tsv' \
    "$workdir/stream.json" 2>/dev/null | sort | uniq -c | sort -k2,2 -k1,1nr | awk '++shown[$2] <= 8 {printf "  %-8s %5d  %s\n", $2, $1, $3}'
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Loopback only, so the demo runs its agents in plain text (a fleet uses CURVE keys).
build/bin/flowgate-gateway --data-dir "$workdir/data" --agents-listen "tcp://127.0.0.1:$port" \
  --agents-plaintext --json-socket "$socket" --status-interval 5s 2>"$workdir/gateway.log" &
gateway_pid=$!
for _ in $(seq 1 100); do
  grep -q "ready" "$workdir/gateway.log" 2>/dev/null && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$workdir/gateway.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "ready" "$workdir/gateway.log" || { echo "demo: gateway did not start" >&2; cat "$workdir/gateway.log" >&2; exit 1; }

# Our own reader of the socket, to print a summary at the end.
nc -U "$socket" | jq -c 'select(.type)' >"$workdir/stream.json" 2>/dev/null &
reader_pid=$!

cat <<MSG
demo: gateway running (pid $gateway_pid), RocksDB in $workdir/data, agents on tcp://127.0.0.1:$port
demo: $sites sites: $(for i in $(seq 1 "$sites"); do printf 'site-%s ' "$(printf "\\x$(printf %x $((96 + i)))")"; done)
demo: watch the merged stream:
  nc -U $socket | jq -c 'select(.type=="flow") | [.agent.site, .flow.detected_protocol_name, .flow.detected_application_name, .flow.host_server_name]'
demo: stop with Ctrl-C$( [ "$duration" -gt 0 ] && echo " (or it stops by itself after ${duration}s)")
MSG

started=$(date +%s)
round=0
while true; do
  round=$((round + 1))
  now_ms=$(($(date +%s%N) / 1000000))
  pids=()
  for i in $(seq 1 "$sites"); do
    site="site-$(printf "\\x$(printf %x $((96 + i)))")"
    pcap="$workdir/$site.pcap"
    build/bin/flowgate-trafficgen --out "$pcap" --seed $((round * 10 + i)) --sessions 40 \
      --start-ms "$now_ms" --duration 4s --client-net "10.$i.0.0"
    build/bin/flowgate-agent -r "$pcap" --gateway "tcp://127.0.0.1:$port" --name "probe-$site" \
      --site "$site" --state-dir "$workdir/state-$site" --local-net "10.$i.0.0/16" \
      --update-interval 5s --plaintext 2>>"$workdir/agent-$site.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || echo "demo: an agent failed (see $workdir/agent-*.log)" >&2; done
  flows=$(grep -c '"type":"flow_purge"' "$workdir/stream.json" 2>/dev/null || true)
  echo "demo: round $round delivered; $flows flows so far on the socket"
  if [ "$duration" -gt 0 ] && [ $(($(date +%s) - started)) -ge "$duration" ]; then break; fi
  sleep 3
done
