#!/usr/bin/env bash
# A local N-shard ClickHouse cluster for flowgate's tests, demos and benchmarks: one
# clickhouse-server per shard on loopback, each listing every shard in <remote_servers>, so
# that a Distributed table over the cluster works from any of them. No ZooKeeper: one
# replica per shard, and tables are created on each shard by the caller.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage:
  clickhouse-cluster.sh start  --dir DIR [--shards N] [--base-port P] [--cluster NAME]
  clickhouse-cluster.sh start  --dir DIR --shard K
  clickhouse-cluster.sh stop   --dir DIR [--shard K]
  clickhouse-cluster.sh status --dir DIR

start   Writes DIR/shardK/{config.xml,users.xml} for K = 1..N, starts every server in the
        background and waits (at most --timeout seconds) until each answers /ping. Prints
        one line per shard, "shardK http://127.0.0.1:HTTP_PORT", then
        "urls http://...,http://...". Servers already running from an earlier start of the
        same DIR (a crashed test) are stopped first; data under DIR is kept.
        With --shard K: restarts shard K of an existing DIR with its config and data.
stop    Stops every server of DIR (or shard K): SIGTERM, then SIGKILL after --timeout s.
status  Prints "shardK up|down http://127.0.0.1:HTTP_PORT" per shard; exits 1 unless all up.

Options:
  --dir DIR        the cluster's directory (created by start)
  --shards N       number of shards (default 2)
  --base-port P    first port (default 18120); shard K listens on
                     HTTP       P + 2*(K-1)
                     native TCP P + 2*(K-1) + 1
                   so shard 1 has 18120/18121, shard 2 18122/18123, ...
  --cluster NAME   the <remote_servers> cluster name (default flowgate), as in
                   ENGINE = Distributed(NAME, db, table, sharding_key)
  --shard K        one shard only (start: restart it; stop: stop it)
  --timeout S      bound on each wait for a server to start or stop (default 30)
  -h, --help       this help

Files: DIR/cluster.env (shards, ports, cluster name), DIR/shardK.pid, DIR/shardK/ (config,
data/, tmp/, server.log, server.err.log, stderr.log). Servers listen on 127.0.0.1 only,
log at warning level, use UTC, and have small caches so that several fit on a small box.
EOF
}

die() {
  echo "clickhouse-cluster: $*" >&2
  exit 1
}

server_bin=${CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}
command=${1:-}
[ -n "$command" ] || { usage >&2; exit 2; }
shift
case "$command" in
  -h | --help) usage; exit 0 ;;
  start | stop | status) ;;
  *) echo "clickhouse-cluster: unknown command '$command'" >&2; usage >&2; exit 2 ;;
esac

dir="" shards=2 base_port=18120 cluster=flowgate shard="" timeout=30
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir | --shards | --base-port | --cluster | --shard | --timeout)
      [ $# -ge 2 ] || die "$1 needs a value" ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  case "$1" in
    --dir) dir=$2 ;;
    --shards) shards=$2 ;;
    --base-port) base_port=$2 ;;
    --cluster) cluster=$2 ;;
    --shard) shard=$2 ;;
    --timeout) timeout=$2 ;;
  esac
  shift 2
done
[ -n "$dir" ] || die "--dir is required (see --help)"
is_number() { [[ $1 =~ ^[0-9]+$ ]]; }
if ! is_number "$shards" || [ "$shards" -lt 1 ]; then die "--shards must be a positive number"; fi
if ! is_number "$base_port" || [ "$base_port" -lt 1024 ]; then
  die "--base-port must be a number >= 1024"
fi
if ! is_number "$timeout" || [ "$timeout" -lt 1 ]; then die "--timeout must be a positive number"; fi
[[ $cluster =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--cluster must be an identifier"
[ -z "$shard" ] || is_number "$shard" || die "--shard must be a number"
[ "$command" != start ] || mkdir -p "$dir"
[ -d "$dir" ] || die "no directory $dir"
dir=$(cd "$dir" && pwd)
env_file=$dir/cluster.env

http_port() { echo $((base_port + 2 * ($1 - 1))); }
tcp_port() { echo $((base_port + 2 * ($1 - 1) + 1)); }
url() { echo "http://127.0.0.1:$(http_port "$1")"; }

# The cluster a DIR was started with, for stop, status and single-shard restarts.
load_env() {
  [ -f "$env_file" ] || die "$dir holds no cluster (no cluster.env): run start first"
  # shellcheck source=/dev/null
  . "$env_file"
  shards=$CLUSTER_SHARDS base_port=$CLUSTER_BASE_PORT cluster=$CLUSTER_NAME
}
check_shard_arg() {
  [ -z "$shard" ] || { [ "$shard" -ge 1 ] && [ "$shard" -le "$shards" ]; } ||
    die "--shard $shard: the cluster in $dir has shards 1..$shards"
}

# The pid of shard K's server if it is running (and really is that server: a pid file can
# outlive its process, and the pid can be reused), else nothing.
running_pid() {
  local pid_file=$dir/shard$1.pid pid stat args arg
  [ -f "$pid_file" ] || return 0
  read -r pid <"$pid_file" || return 0
  is_number "$pid" || return 0
  # Bash builtins only: stop polls this. Nobody may reap an orphaned server at once, and a
  # zombie has stopped.
  read -r stat 2>/dev/null <"/proc/$pid/stat" || return 0
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ] || return 0
  mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 0
  # Also matches while setsid is about to exec the server.
  for arg in "${args[@]}"; do
    if [ "$arg" = "--config-file=$dir/shard$1/config.xml" ]; then
      echo "$pid"
      return 0
    fi
  done
}

# GET /ping with bash alone (curl is not on every fresh machine); true when it says "Ok.".
# shellcheck disable=SC2016 # $1 is the inner shell's
ping_port() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /ping HTTP/1.0\r\n\r\n" >&3 &&
    grep -q "^Ok\." <&3' _ "$1" 2>/dev/null
}
# shellcheck disable=SC2016
port_in_use() { timeout 2 bash -c ': 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Stops the given shards together (each may hold the others' connections open): SIGTERM,
# a bounded wait, then SIGKILL.
stop_shards() {
  local k pid deadline=$((SECONDS + timeout)) left
  for k in "$@"; do
    pid=$(running_pid "$k")
    [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  done
  while true; do
    left=()
    for k in "$@"; do [ -z "$(running_pid "$k")" ] || left+=("$k"); done
    if [ ${#left[@]} -eq 0 ] || [ $SECONDS -ge "$deadline" ]; then break; fi
    sleep 0.05
  done
  for k in "${left[@]}"; do
    pid=$(running_pid "$k")
    [ -n "$pid" ] || continue
    echo "clickhouse-cluster: shard$k (pid $pid) still running ${timeout}s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [ -n "$(running_pid "$k")" ]; do
      [ $SECONDS -lt "$deadline" ] || die "shard$k (pid $pid) survived SIGKILL"
      sleep 0.05
    done
  done
  for k in "$@"; do rm -f "$dir/shard$k.pid"; done
}
all_shards() { seq 1 "$shards"; }

write_config() {
  local k=$1 s shard_dir=$dir/shard$1
  mkdir -p "$shard_dir/data" "$shard_dir/tmp" "$shard_dir/user_files" "$shard_dir/format_schemas"
  {
    cat <<EOF
<?xml version="1.0"?>
<!-- Written by deploy/clickhouse-cluster.sh: shard $k of $shards of cluster $cluster. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>$shard_dir/server.log</log>
    <errorlog>$shard_dir/server.err.log</errorlog>
    <size>100M</size>
    <count>2</count>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$(http_port "$k")</http_port>
  <tcp_port>$(tcp_port "$k")</tcp_port>
  <path>$shard_dir/data/</path>
  <tmp_path>$shard_dir/tmp/</tmp_path>
  <user_files_path>$shard_dir/user_files/</user_files_path>
  <format_schema_path>$shard_dir/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <!-- Small caches (allocated on demand; the defaults are 5 and 8 GiB). -->
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <remote_servers>
    <$cluster>
EOF
    for ((s = 1; s <= shards; s++)); do
      echo "      <shard><replica><host>127.0.0.1</host><port>$(tcp_port "$s")</port></replica></shard>"
    done
    cat <<EOF
    </$cluster>
  </remote_servers>
</yandex>
EOF
  } >"$shard_dir/config.xml"
  cat >"$shard_dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by deploy/clickhouse-cluster.sh: user "default", no password, loopback only. -->
<yandex>
  <profiles>
    <default>
      <max_memory_usage>2000000000</max_memory_usage>
      <max_threads>2</max_threads>
      <background_pool_size>4</background_pool_size>
      <!-- How long an idle native connection (another shard's Distributed pool) can hold up
           this server's shutdown (default 10 s). -->
      <poll_interval>1</poll_interval>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
EOF
}

# Launches shard K's server (its config written) without waiting for it.
declare -A err_log_start  # shard -> size of its error log before this launch
launch_shard() {
  local k=$1 port shard_dir=$dir/shard$1
  for port in $(http_port "$k") $(tcp_port "$k"); do
    if port_in_use "$port"; then
      die "shard$k: port $port on 127.0.0.1 is already taken (choose another --base-port)"
    fi
  done
  # Its own session, so that the server outlives this script and a terminal's Ctrl-C; all
  # output to files, so that a caller reading this script's output sees it end.
  err_log_start[$k]=$(stat -c %s "$shard_dir/server.err.log" 2>/dev/null || echo 0)
  setsid "$server_bin" "--config-file=$shard_dir/config.xml" \
    </dev/null >"$shard_dir/stdout.log" 2>"$shard_dir/stderr.log" &
  echo $! >"$dir/shard$k.pid"
}

# Waits until shard K answers /ping; on failure names the shard and shows its error log.
wait_shard() {
  local k=$1 deadline=$((SECONDS + timeout)) shard_dir=$dir/shard$1
  while true; do
    # Our own child: alive until it exits (a zombie: not yet reaped by this script).
    local pid state
    read -r pid <"$dir/shard$k.pid"
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    if [ -z "$state" ] || [ "${state:0:1}" = Z ]; then
      failure "$k" "exited during startup"
    fi
    ping_port "$(http_port "$k")" && return 0
    [ $SECONDS -lt "$deadline" ] || { stop_shards "$k"; failure "$k" "did not answer /ping in ${timeout}s"; }
    sleep 0.05
  done
}
failure() {
  local k=$1 shard_dir=$dir/shard$1
  {
    echo "clickhouse-cluster: shard$k ($(url "$k"), native port $(tcp_port "$k")) $2"
    if [ -s "$shard_dir/server.err.log" ]; then
      echo "--- $shard_dir/server.err.log (this start, stack traces left out):"
      tail -c "+$((${err_log_start[$k]:-0} + 1))" "$shard_dir/server.err.log" |
        grep -Ev '^[0-9]+\. |^$' | tail -n 10
    fi
    if grep -qv '^Logging ' "$shard_dir/stderr.log" 2>/dev/null; then
      echo "--- $shard_dir/stderr.log:"
      tail -n 10 "$shard_dir/stderr.log"
    fi
  } >&2
  rm -f "$dir/shard$k.pid"
  exit 1
}

case "$command" in
  start)
    [ -x "$server_bin" ] || die "$server_bin not found (apt-get install clickhouse-server)"
    if [ -n "$shard" ]; then
      # A restart: the cluster's shape comes from DIR, not from the command line.
      load_env
      check_shard_arg
      [ -f "$dir/shard$shard/config.xml" ] || die "no config for shard$shard in $dir"
      if [ -z "$(running_pid "$shard")" ]; then
        launch_shard "$shard"
        wait_shard "$shard"
      fi
      echo "shard$shard $(url "$shard")"
      exit 0
    fi
    # A reused DIR: whatever an earlier run left running goes first.
    if [ -f "$env_file" ]; then
      requested="$shards $base_port $cluster"
      load_env
      # shellcheck disable=SC2046
      stop_shards $(all_shards)
      read -r shards base_port cluster <<<"$requested"
    fi
    [ $((base_port + 2 * shards - 1)) -le 65535 ] || die "--base-port too high for $shards shards"
    printf 'CLUSTER_SHARDS=%s\nCLUSTER_BASE_PORT=%s\nCLUSTER_NAME=%s\n' \
      "$shards" "$base_port" "$cluster" >"$env_file"
    for ((k = 1; k <= shards; k++)); do write_config "$k"; done
    started=()
    # On failure, stop the servers this run started: no half cluster is left running.
    trap 'stop_shards "${started[@]}"' EXIT
    for ((k = 1; k <= shards; k++)); do
      launch_shard "$k"
      started+=("$k")
    done
    for ((k = 1; k <= shards; k++)); do wait_shard "$k"; done
    trap - EXIT
    urls=()
    for ((k = 1; k <= shards; k++)); do
      echo "shard$k $(url "$k")"
      urls+=("$(url "$k")")
    done
    (IFS=,; echo "urls ${urls[*]}")
    ;;
  stop)
    load_env
    check_shard_arg
    if [ -n "$shard" ]; then
      stop_shards "$shard"
    else
      # shellcheck disable=SC2046
      stop_shards $(all_shards)
    fi
    ;;
  status)
    load_env
    all_up=0
    for ((k = 1; k <= shards; k++)); do
      if [ -n "$(running_pid "$k")" ] && ping_port "$(http_port "$k")"; then
        echo "shard$k up $(url "$k")"
      else
        echo "shard$k down $(url "$k")"
        all_up=1
      fi
    done
    exit "$all_up"
    ;;
esac
