#!/usr/bin/env bash
# The main job: one gateway with its embedded RocksDB store and one agent per site, all on
# this machine, with traffic flowing until Ctrl-C (or --duration).
#
#   deploy/demo.sh [--duration SECONDS] [--sites N] [--live|--offline] [--workdir DIR]
#                  [--json-socket PATH] [--agents-port P] [--grpc-port P] [--bin-dir DIR]
#
# Installs what is missing and builds if needed. Each site gets freshly generated traffic
# (flowgate-trafficgen: DNS, TLS, HTTP, QUIC, SSH, NTP sessions) every few seconds. Live (the
# default as root): each site is a network namespace whose traffic tcpreplay sends over a
# veth pair, and the site's agent captures the other end, as a probe on a mirror port would.
# Offline (without root, or --offline): the agents read the generated captures instead.
# At the end it shows `flowgate agents` and the top applications of each site. Watch it with:
#   nc -U <socket> | jq -c 'select(.type=="flow") | [.agent.site, .flow.detected_protocol_name, .flow.detected_application_name, .flow.host_server_name]'
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

duration=0
sites=3
workdir=""
socket=""
mode=auto
port=7151
grpc_port=7152
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2:?--duration needs SECONDS}; shift 2 ;;
    --sites) sites=${2:?--sites needs N}; shift 2 ;;
    --live) mode=live; shift ;;
    --offline) mode=offline; shift ;;
    --workdir) workdir=${2:?--workdir needs DIR}; shift 2 ;;
    --json-socket) socket=${2:?--json-socket needs PATH}; shift 2 ;;
    --agents-port) port=${2:?--agents-port needs PORT}; shift 2 ;;
    --grpc-port) grpc_port=${2:?--grpc-port needs PORT}; shift 2 ;;
    --bin-dir) bin=${2:?--bin-dir needs DIR}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration$sites$port$grpc_port" in *[!0-9]*) echo "demo: --duration, --sites and the ports take whole numbers" >&2; exit 2 ;; esac
[ "$sites" -ge 1 ] && [ "$sites" -le 9 ] || { echo "demo: --sites must be 1 to 9" >&2; exit 2; }

deploy/install-deps.sh
if [ -z "$bin" ]; then
  bin=build/bin
  if [ ! -x $bin/flowgate-gateway ] || [ ! -x $bin/flowgate-agent ] || [ ! -x $bin/flowgate-trafficgen ] || [ ! -x $bin/flowgate ]; then
    echo "demo: building (first run only; a few minutes on 2 cores)"
    cmake -S . -B build -G Ninja >/dev/null
    cmake --build build -j "$(nproc)" --target flowgate-gateway flowgate-agent flowgate-trafficgen flowgate
  fi
fi

# Live capture needs root, iproute2 and tcpreplay; without them the agents read files.
if [ "$mode" = auto ]; then
  mode=offline
  if [ "$(id -u)" -eq 0 ] && command -v tcpreplay >/dev/null && ip netns list >/dev/null 2>&1; then
    mode=live
  fi
fi
if [ "$mode" = live ] && [ "$(id -u)" -ne 0 ]; then
  echo "demo: --live needs root (network namespaces); use --offline" >&2; exit 2
fi

workdir=${workdir:-$(mktemp -d /tmp/flowgate-demo.XXXXXX)}
mkdir -p "$workdir"
socket=${socket:-$workdir/flowgate.sock}
site_names=()
for i in $(seq 1 "$sites"); do site_names+=("site-$(printf "\\x$(printf %x $((96 + i)))")"); done
# Interface and namespace names carry the pid so that runs side by side do not collide.
tag="fg$(( $$ % 100000 ))"
gateway_pid=""
metrics=""  # HOST:PORT of the gateway's metrics, from its log
reader_pid=""
agent_pids=()
cleanup() {
  trap - INT TERM EXIT
  # Agents first: on SIGTERM they purge their flows and wait for the gateway's acks.
  for pid in "${agent_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${agent_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$mode" = live ]; then
    for i in $(seq 1 "$sites"); do ip netns del "$tag-$i" 2>/dev/null || true; done
  fi
  report
  if [ -n "$gateway_pid" ] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid"
    wait "$gateway_pid" || true
  fi
  # The gateway closed the socket: the reader ends by itself once it has read everything.
  if [ -n "$reader_pid" ]; then
    for _ in $(seq 1 30); do kill -0 "$reader_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$reader_pid" 2>/dev/null || true
  fi
  echo "demo: stopped. Data kept in $workdir/data (logs: $workdir/*.log)"
}
# What the gateway holds, asked the way a user would: the agents, then each site's top apps.
# GET /metrics with bash alone (curl is not on every fresh machine).
scrape() {
  [ -n "$metrics" ] || return 0
  (exec 3<>"/dev/tcp/${metrics%:*}/${metrics##*:}" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true
}
report() {
  [ -n "$gateway_pid" ] && kill -0 "$gateway_pid" 2>/dev/null || return 0
  echo "demo: gateway metrics (http://$metrics/metrics)"
  scrape | grep -E '^flowgate_gateway_(events_stored_total|agent_online|agent_events_applied_total)' \
    | sed 's/^/  /' || true
  echo "demo: flowgate agents"
  $bin/flowgate --gateway "127.0.0.1:$grpc_port" agents 2>&1 | sed 's/^/  /' || true
  for site in "${site_names[@]}"; do
    echo "demo: flowgate top --by application --filter 'site == \"$site\"'"
    $bin/flowgate --gateway "127.0.0.1:$grpc_port" top --by application --since 1h --limit 5 \
      --filter "site == \"$site\"" 2>&1 | sed 's/^/  /' || true
  done
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Loopback only, so the demo runs its agents in plain text (a fleet uses CURVE keys).
$bin/flowgate-gateway --data-dir "$workdir/data" --agents-listen "tcp://127.0.0.1:$port" \
  --agents-plaintext --json-socket "$socket" --grpc-listen "127.0.0.1:$grpc_port" \
  --metrics 127.0.0.1:0 --status-interval 5s 2>"$workdir/gateway.log" &
gateway_pid=$!
for _ in $(seq 1 100); do
  grep -q "ready" "$workdir/gateway.log" 2>/dev/null && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$workdir/gateway.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "ready" "$workdir/gateway.log" || { echo "demo: gateway did not start" >&2; cat "$workdir/gateway.log" >&2; exit 1; }
metrics=$(sed -n 's|.*metrics at http://\([^/]*\)/metrics.*|\1|p' "$workdir/gateway.log")

# Our own reader of the socket, for the stream saved in the work dir.
nc -d -U "$socket" | jq --unbuffered -c 'select(.type)' >"$workdir/stream.json" 2>/dev/null &
reader_pid=$!

agent_flags() {  # SITE-INDEX: the flags every agent of the demo shares
  local site=${site_names[$(($1 - 1))]}
  echo --gateway "tcp://127.0.0.1:$port" --name "probe-$site" --site "$site" \
    --state-dir "$workdir/state-$site" --local-net "10.$1.0.0/16" --update-interval 5s --plaintext
}
if [ "$mode" = live ]; then
  # Site i: namespace $tag-i sends from ${tag}n$i; its agent captures ${tag}h$i.
  for i in $(seq 1 "$sites"); do
    ns="$tag-$i" host_end="${tag}h$i" ns_end="${tag}n$i"
    ip netns add "$ns"
    ip link add "$host_end" type veth peer name "$ns_end"
    ip link set "$ns_end" netns "$ns"
    sysctl -q -w "net.ipv6.conf.$host_end.disable_ipv6=1"
    ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$ns_end.disable_ipv6=1"
    ip link set "$host_end" up
    ip netns exec "$ns" ip link set "$ns_end" up
    # shellcheck disable=SC2046
    $bin/flowgate-agent -i "$host_end" $(agent_flags "$i") 2>>"$workdir/agent-${site_names[$((i - 1))]}.log" &
    agent_pids+=($!)
  done
fi

cat <<MSG
demo: gateway running (pid $gateway_pid), RocksDB in $workdir/data, agents on tcp://127.0.0.1:$port, gRPC on 127.0.0.1:$grpc_port
demo: $sites sites (${site_names[*]}), $( [ "$mode" = live ] && echo "live capture: tcpreplay into a veth pair per site" || echo "offline: agents read generated captures")
demo: watch the merged stream:
  nc -U $socket | jq -c 'select(.type=="flow") | [.agent.site, .flow.detected_protocol_name, .flow.detected_application_name, .flow.host_server_name]'
demo: ask the gateway:  $bin/flowgate --gateway 127.0.0.1:$grpc_port top --by application --since 1h
demo: gateway metrics:  http://$metrics/metrics
demo: stop with Ctrl-C$( [ "$duration" -gt 0 ] && echo " (or it stops by itself after ${duration}s)")
MSG

started=$(date +%s)
round=0
while true; do
  round=$((round + 1))
  now_ms=$(($(date +%s%N) / 1000000))
  pids=()
  for i in $(seq 1 "$sites"); do
    site=${site_names[$((i - 1))]}
    pcap="$workdir/$site.pcap"
    $bin/flowgate-trafficgen --out "$pcap" --seed $((round * 10 + i)) --sessions 40 \
      --start-ms "$now_ms" --duration 4s --client-net "10.$i.0.0"
    if [ "$mode" = live ]; then
      ip netns exec "$tag-$i" tcpreplay -q --pps 2000 -i "${tag}n$i" "$pcap" >>"$workdir/replay-$site.log" 2>&1 &
    else
      # shellcheck disable=SC2046
      $bin/flowgate-agent -r "$pcap" $(agent_flags "$i") 2>>"$workdir/agent-$site.log" &
    fi
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || echo "demo: a site's $( [ "$mode" = live ] && echo replay || echo agent) failed (see $workdir/*.log)" >&2; done
  flows=$(grep -c '"type":"flow"' "$workdir/stream.json" 2>/dev/null || true)
  echo "demo: round $round delivered; $flows flow events so far on the socket"
  if [ "$duration" -gt 0 ] && [ $(($(date +%s) - started)) -ge "$duration" ]; then break; fi
  sleep 3
done
