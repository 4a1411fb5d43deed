#!/usr/bin/env bash
# Starts S3 test servers on loopback, runs a command with their endpoints
# and credentials in the environment, then stops the servers and removes
# their data, exiting with the command's status (also on Ctrl-C).
#
# Usage: scripts/with-servers.sh [versitygw] [seaweedfs] [kms] -- CMD ARGS...
#
# Exports, per server started:
#   COFFER_TEST_VERSITYGW_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _DATA_DIR
#   COFFER_TEST_SEAWEEDFS_ENDPOINT, _ACCESS_KEY, _SECRET_KEY (admin),
#     _USER_ACCESS_KEY, _USER_SECRET_KEY (non-admin), _DATA_DIR
#   COFFER_TEST_KMS_ENDPOINT, _REGION, _DATA_DIR, and two seeded AES keys:
#     _KEY_ID and _KEY_ARN (alias alias/coffer-test-1), _KEY_ID_2 and
#     _KEY_ARN_2 (alias/coffer-test-2). local-kms accepts any credentials;
#     tests that disable or delete keys create their own (CreateKey).
# The S3 servers start empty: tests create their own uniquely named buckets.
# Binaries come from scripts/tools.sh (built once into a cache).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	echo "usage: $0 [versitygw] [seaweedfs] [kms] -- CMD ARGS..." >&2
	exit 2
}

servers=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	case $1 in
	versitygw | seaweedfs | kms) servers+=("$1") ;;
	*) echo "$0: unknown server '$1'" >&2; usage ;;
	esac
	shift
done
[ "${1:-}" = "--" ] || usage
shift
[ $# -gt 0 ] || usage

# Bounded waits, in seconds.
VERSITYGW_START_TIMEOUT=${COFFER_VERSITYGW_START_TIMEOUT:-30}
SEAWEEDFS_START_TIMEOUT=${COFFER_SEAWEEDFS_START_TIMEOUT:-120}
KMS_START_TIMEOUT=${COFFER_KMS_START_TIMEOUT:-30}
STOP_TIMEOUT=30

work=$(mktemp -d "${TMPDIR:-/tmp}/coffer-servers.XXXXXX") || exit 1
pids=()  # server PIDs, stopped in reverse order
names=() # their names, for messages
cmd_pid=

log() { echo "with-servers: $*" >&2; }

stop_servers() {
	local i pid waited
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		waited=0
		while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
			sleep 0.1
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "${names[i]} (pid $pid) did not stop in ${STOP_TIMEOUT}s; killing it"
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	pids=()
}

cleanup() {
	if [ -n "$cmd_pid" ] && kill -0 "$cmd_pid" 2>/dev/null; then
		kill -TERM "$cmd_pid" 2>/dev/null
		wait "$cmd_pid" 2>/dev/null
	fi
	stop_servers
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports N prints N distinct ports that nothing listens on, below
# the Linux ephemeral range (32768+) so outgoing connections cannot take
# them before the server binds.
free_ports() {
	if command -v python3 >/dev/null; then
		python3 - "$1" <<'PY'
import random, socket, sys
n, out = int(sys.argv[1]), []
held = []
while len(out) < n:
    p = random.randrange(15000, 32000)
    if p in out:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    out.append(p)
print(" ".join(map(str, out)))
PY
	else
		local out=() p
		while [ ${#out[@]} -lt "$1" ]; do
			p=$((15000 + RANDOM % 17000))
			case " ${out[*]} " in *" $p "*) continue ;; esac
			if ! (: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
				out+=("$p")
			fi
		done
		echo "${out[*]}"
	fi
}

# answers PORT: true when an HTTP server answers on 127.0.0.1:PORT.
answers() {
	if command -v curl >/dev/null; then
		local code
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null)
		[ -n "$code" ] && [ "$code" != 000 ]
	else
		(: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# wait_ready NAME PID PORT TIMEOUT LOG [READY_LINE]: waits until the S3
# port answers (and, if given, READY_LINE appears in the log, for at most
# 20 s more); fails with the log's tail if the server dies or is slow.
wait_ready() {
	local name=$1 pid=$2 port=$3 timeout=$4 logf=$5 line=${6:-} ticks=0 extra=0
	while ! answers "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name exited during startup; last lines of its log:"
			tail -n 30 "$logf" >&2
			return 1
		fi
		if [ "$ticks" -ge $((timeout * 5)) ]; then
			log "$name did not answer on 127.0.0.1:$port within ${timeout}s; last lines of its log:"
			tail -n 30 "$logf" >&2
			return 1
		fi
		sleep 0.2
		ticks=$((ticks + 1))
	done
	if [ -n "$line" ]; then
		while ! grep -q "$line" "$logf" && [ "$extra" -lt 100 ]; do
			sleep 0.2
			extra=$((extra + 1))
		done
	fi
	log "$name ready on 127.0.0.1:$port after $(((ticks + extra) / 5))s"
}

start_versitygw() {
	local bin dir port admin
	bin=$("$here/tools.sh" versitygw) || return 1
	dir="$work/versitygw"
	mkdir -p "$dir/data" "$dir/iam"
	read -r port admin <<<"$(free_ports 2)"
	export COFFER_TEST_VERSITYGW_ACCESS_KEY=coffer-test-ak
	export COFFER_TEST_VERSITYGW_SECRET_KEY=coffer-test-secret-$RANDOM$RANDOM
	# --keep-alive: versitygw otherwise answers every request with
	# "Connection: close", so each request pays a new TCP connection
	# (and the server a new one per request), which no real S3 does.
	"$bin" --port "127.0.0.1:$port" --keep-alive \
		--access "$COFFER_TEST_VERSITYGW_ACCESS_KEY" --secret "$COFFER_TEST_VERSITYGW_SECRET_KEY" \
		--iam-dir "$dir/iam" --admin-port "127.0.0.1:$admin" --quiet \
		posix "$dir/data" </dev/null >"$dir/log" 2>&1 &
	pids+=($!)
	names+=(versitygw)
	wait_ready versitygw $! "$port" "$VERSITYGW_START_TIMEOUT" "$dir/log" || return 1
	export COFFER_TEST_VERSITYGW_ENDPOINT="http://127.0.0.1:$port"
	export COFFER_TEST_VERSITYGW_DATA_DIR="$dir/data"
}

start_seaweedfs() {
	local bin dir
	bin=$("$here/tools.sh" weed) || return 1
	dir="$work/seaweedfs"
	mkdir -p "$dir/data"
	local p
	read -r -a p <<<"$(free_ports 10)"
	# Identities and the local dev KMS live in this config; the keys
	# exported below are the ones it defines. Telemetry is on by default
	# in weed and would call out of the machine: off, and pointed at
	# loopback for good measure.
	"$bin" mini -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
		-volume.max=1000 -master.volumeSizeLimitMB=64 \
		-s3.config="$here/testdata/seaweedfs-s3.json" \
		-master.port="${p[0]}" -master.port.grpc="${p[1]}" \
		-volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
		-filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
		-s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
		-admin.port="${p[8]}" -admin.port.grpc="${p[9]}" -admin.port.legacy=0 -admin.ui=false \
		-webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
		-master.telemetry=false -master.telemetry.url=http://127.0.0.1:9/ \
		-s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
		</dev/null >"$dir/log" 2>&1 &
	pids+=($!)
	names+=(seaweedfs)
	wait_ready seaweedfs $! "${p[6]}" "$SEAWEEDFS_START_TIMEOUT" "$dir/log" "running and ready" || return 1
	export COFFER_TEST_SEAWEEDFS_ENDPOINT="http://127.0.0.1:${p[6]}"
	export COFFER_TEST_SEAWEEDFS_ACCESS_KEY=rootak
	export COFFER_TEST_SEAWEEDFS_SECRET_KEY=rootsecret
	export COFFER_TEST_SEAWEEDFS_USER_ACCESS_KEY=userak
	export COFFER_TEST_SEAWEEDFS_USER_SECRET_KEY=usersecret
	export COFFER_TEST_SEAWEEDFS_DATA_DIR="$dir/data"
}

# random_hex N prints N random bytes in hex.
random_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

start_kms() {
	local bin dir port id1 id2 region=us-east-1 account=111122223333
	bin=$("$here/tools.sh" local-kms) || return 1
	dir="$work/kms"
	mkdir -p "$dir/data"
	read -r port <<<"$(free_ports 1)"
	id1=$(cat /proc/sys/kernel/random/uuid)
	id2=$(cat /proc/sys/kernel/random/uuid)
	# Fresh backing keys every run: nothing outside this run can decrypt.
	cat >"$dir/seed.yaml" <<SEED
Keys:
  Symmetric:
    Aes:
      - Metadata:
          KeyId: $id1
        BackingKeys:
          - $(random_hex 32)
      - Metadata:
          KeyId: $id2
        BackingKeys:
          - $(random_hex 32)
Aliases:
  - AliasName: alias/coffer-test-1
    TargetKeyId: $id1
  - AliasName: alias/coffer-test-2
    TargetKeyId: $id2
SEED
	PORT=$port KMS_DATA_PATH="$dir/data" KMS_SEED_PATH="$dir/seed.yaml" \
		KMS_REGION=$region KMS_ACCOUNT_ID=$account \
		"$bin" </dev/null >"$dir/log" 2>&1 &
	pids+=($!)
	names+=(kms)
	wait_ready kms $! "$port" "$KMS_START_TIMEOUT" "$dir/log" || return 1
	export COFFER_TEST_KMS_ENDPOINT="http://127.0.0.1:$port"
	export COFFER_TEST_KMS_REGION=$region
	export COFFER_TEST_KMS_DATA_DIR="$dir/data"
	export COFFER_TEST_KMS_KEY_ID=$id1
	export COFFER_TEST_KMS_KEY_ARN="arn:aws:kms:$region:$account:key/$id1"
	export COFFER_TEST_KMS_KEY_ID_2=$id2
	export COFFER_TEST_KMS_KEY_ARN_2="arn:aws:kms:$region:$account:key/$id2"
}

for s in "${servers[@]}"; do
	"start_$s" || { log "could not start $s"; exit 1; }
done

# The command runs in the background so that INT/TERM reach the traps at
# once; stdin is passed through explicitly.
"$@" <&0 &
cmd_pid=$!
wait "$cmd_pid"
status=$?
cmd_pid=
if [ "$status" -ne 0 ]; then
	for s in "${servers[@]}"; do
		log "command failed ($status); last lines of the $s log:"
		tail -n 15 "$work/$s/log" >&2
	done
fi
exit "$status"
