#!/usr/bin/env bash
# Side-by-side benchmark of { protected } with a valid token: Tollgate, the
# bare net/http handler of bench/bare and, when ../shared/peers/apollo is
# there, Apollo Server. Everything listens on 127.0.0.1 and every wrk run is
# bounded by DURATION. See bench/README.md.
#
#   bash bench/run.sh               # protected, then refresh; name=value lines last
#   bash bench/run.sh protected     # { protected }, alternating rounds
#   bash bench/run.sh login-storm   # { protected } while 32 clients log in
#   bash bench/run.sh refresh       # refreshToken on SQLite, then PostgreSQL,
#                                   # each beside bench/floor on the same database
#   bash bench/run.sh reset         # requestPasswordReset on SQLite, then PostgreSQL:
#                                   # an unknown, an unverified and a verified address
#
# Environment: ROUNDS (3), DURATION (10, seconds per wrk run), CONNECTIONS
# (64), THREADS (2), STORM_CLIENTS (32), PROBE_CONNECTIONS (16, the
# { protected } load during the storm), APOLLO_DIR (../shared/peers/apollo,
# relative to the repository), DATABASES ("sqlite postgres", for refresh;
# PostgreSQL at $PGHOST:5432, user postgres), and for Tollgate
# PASSWORD_HASH_CONCURRENCY, DATABASE_MAX_CONNS and LOG_LEVEL (warn);
# ADDRESSES (refresh: 0 gives each session its own client address, n shares
# n addresses among them, 1 sends every refresh from one).
set -euo pipefail

mode=${1:-all}
# The default: { protected } then refreshToken, each in a run of its own, and
# every name=value line of both at the end.
if [[ $mode == all ]]; then
	BENCH_VALUES=$(mktemp)
	export BENCH_VALUES
	trap 'rm -f "$BENCH_VALUES"' EXIT
	bash "$0" protected
	bash "$0" refresh
	echo
	cat "$BENCH_VALUES"
	exit 0
fi
case $mode in protected | login-storm | refresh | reset) ;; *) echo "usage: bench/run.sh [protected|login-storm|refresh|reset]" >&2; exit 2 ;; esac
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
STORM_CLIENTS=${STORM_CLIENTS:-32}
PROBE_CONNECTIONS=${PROBE_CONNECTIONS:-16}
DATABASES=${DATABASES:-sqlite postgres}
PGHOST=${PGHOST:-127.0.0.1}
declare -A rss
root=$(cd "$(dirname "$0")/.." && pwd)
APOLLO_DIR=${APOLLO_DIR:-$root/../shared/peers/apollo}
bench=$root/bench

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

export JWT_SECRET
JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n=+/' | head -c 43)
TG=127.0.0.1:18080 BARE=127.0.0.1:18081 APOLLO=127.0.0.1:18082 FLOOR=127.0.0.1:18083

echo "building Tollgate, bench/bare and bench/floor" >&2
(cd "$root" && go build -o "$tmp/tollgate" . && go build -o "$tmp/bare" ./bench/bare && go build -o "$tmp/floor" ./bench/floor)

wait_up() { # url
	for _ in $(seq 100); do
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"query":"{ __typename }"}' "$1" && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

# start_tollgate DATABASE_URL: Tollgate on $TG, its pid in tg_pid.
start_tollgate() {
	DATABASE_URL=$1 ADDR=$TG APP_ENV=development LOG_LEVEL=${LOG_LEVEL:-warn} \
		ACCESS_TOKEN_TTL=1h LOGIN_ATTEMPTS_PER_IP_PER_MINUTE=1000000 REGISTER_PER_IP_PER_HOUR=1000000 \
		LOGIN_FAILURES_PER_USER_IP=1000000 LOGIN_FAILURES_PER_IP=1000000 REFRESH_PER_IP_PER_MINUTE=1000000 \
		SESSIONS_PER_USER=1000000 PASSWORD_HASH_CONCURRENCY=${PASSWORD_HASH_CONCURRENCY:-} \
		MAILS_PER_ADDRESS_PER_HOUR=1000000 MAILS_PER_IP_PER_HOUR=1000000 MAIL_TRANSPORT=log \
		TRUSTED_PROXIES=127.0.0.1 DATABASE_MAX_CONNS=${DATABASE_MAX_CONNS:-} \
		"$tmp/tollgate" >>"$tmp/tollgate.log" 2>&1 &
	tg_pid=$!
	pids+=("$tg_pid")
	wait_up "http://$TG/graphql"
}
stop_tollgate() { kill "$tg_pid"; wait "$tg_pid" 2>/dev/null || true; }

if [[ $mode != refresh && $mode != reset ]]; then
	start_tollgate "sqlite:$tmp/bench.db"
	ADDR=$BARE "$tmp/bare" >"$tmp/bare.log" 2>&1 &
	pids+=($!); bare_pid=$!
	wait_up "http://$BARE/graphql"
fi

apollo_pid=
if [[ $mode == protected && -f $APOLLO_DIR/server.js ]]; then
	echo "starting the Apollo peer" >&2
	cp -r "$APOLLO_DIR" "$tmp/apollo"
	(cd "$tmp/apollo" && npm ci --silent --no-audit --no-fund >/dev/null)
	(cd "$tmp/apollo" && PORT=${APOLLO##*:} HOST=127.0.0.1 NODE_ENV=production exec node server.js >"$tmp/apollo.log" 2>&1) &
	pids+=($!); apollo_pid=$!
	wait_up "http://$APOLLO/graphql"
fi

# A token minted by Tollgate: register, then log in, over HTTP. The login
# storm signs in another user: its sessions beyond SESSIONS_PER_USER revoke
# the oldest, which must not be the measured token's.
export USERNAME=bench STORM_USERNAME=storm PASSWORD="correct horse battery"
gql() { curl -s -X POST -H 'Content-Type: application/json' -d "$1" "http://$TG/graphql"; }
register_users() {
	for u in "$USERNAME" "$STORM_USERNAME"; do
		gql '{"query":"mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken } }","variables":{"u":"'$u'","p":"'"$PASSWORD"'"}}' >/dev/null
	done
}
# login FIELD: one login of $USERNAME, printing the token FIELD names.
login() {
	local v
	v=$(gql '{"query":"mutation($u: String!, $p: String!) { login(username: $u, password: $p) { '$1' } }","variables":{"u":"'$USERNAME'","p":"'"$PASSWORD"'"}}' |
		sed -n 's/.*"'$1'":"\([^"]*\)".*/\1/p')
	[[ -z $v ]] || printf '%s\n' "$v"
}
if [[ $mode != refresh && $mode != reset ]]; then
	register_users
	TOKEN=$(login accessToken)
	[[ -n $TOKEN ]] || { echo "could not log in to Tollgate" >&2; exit 1; }
	export TOKEN
fi

hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# run name url connections threads script -> appends "rps p50 p99 errors requests" to $tmp/name
# With CPU_PID set, it also prints the CPU time that process and
# PostgreSQL's backends of this run spent per request (less noisy than rates
# on a shared machine: other tenants take time from the run, not CPU from
# it). A snapshot is "pid ticks" per process; the CPU spent between two is
# summed per process that is in the second (a backend that exits in between
# loses what it spent, never subtracts it).
snapshot() { for p in "$@"; do awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null; done; }
pgsnapshot() { snapshot $(pgrep -f "postgres: .* tollgate_bench_$$ "); }
spent() { awk 'NR == FNR {a[$1] = $2; next} {s += $2 - ($1 in a ? a[$1] : 0)} END {printf "%d\n", s}' "$1" "$2"; }
run() {
	[[ -z ${CPU_PID:-} ]] || { snapshot "$CPU_PID" >"$tmp/cpu0"; pgsnapshot >"$tmp/pg0"; }
	wrk -t"$4" -c"$3" -d"${DURATION}s" --timeout 5s -s "$bench/$5" "$2" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}' >>"$tmp/res-$1"
	tail -n1 "$tmp/res-$1" | awk -v n="$1" '{printf "  %-8s %8s req/s  p50 %6s ms  p99 %7s ms  errors %s", n, $1, $2, $3, $4}' >&2
	if [[ -n ${CPU_PID:-} ]]; then
		snapshot "$CPU_PID" >"$tmp/cpu1"; pgsnapshot >"$tmp/pg1"
		awk -v c="$(spent "$tmp/cpu0" "$tmp/cpu1")" -v p="$(spent "$tmp/pg0" "$tmp/pg1")" -v t="$(getconf CLK_TCK)" -v n="$(tail -n1 "$tmp/res-$1" | cut -d' ' -f5)" \
			'BEGIN {printf "  CPU per request: server %.0f us, PostgreSQL %.0f us", c/t/n*1e6, p/t/n*1e6}' >&2
	fi
	echo >&2
}
col() { awk -v c="$2" '{print $c}' "$tmp/res-$1" | median; }
sum() { awk -v c="$2" '{s+=$c} END {print s+0}' "$tmp/res-$1"; }
# ratios a b: the median of each round's a/b in requests/s (the two ran back
# to back in every round, under the same outside load).
ratios() { paste -d' ' "$tmp/res-$1" "$tmp/res-$2" | awk '{print $1/$6}' | median; }

if [[ $mode == protected ]]; then
	targets=(tollgate bare) urls=("http://$TG/graphql" "http://$BARE/graphql") procs=("$tg_pid" "$bare_pid")
	if [[ -n $apollo_pid ]]; then targets+=(apollo) urls+=("http://$APOLLO/graphql") procs+=("$apollo_pid"); fi
	for r in $(seq "$ROUNDS"); do
		echo "round $r/$ROUNDS (${DURATION}s each, $CONNECTIONS connections, $THREADS threads)" >&2
		for i in "${!targets[@]}"; do run "${targets[$i]}" "${urls[$i]}" "$CONNECTIONS" "$THREADS" protected.lua; done
	done
	echo
	echo "{ protected }, medians of $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections, $THREADS threads, $(nproc) cores, $(date -u +%F)"
	printf '| %-8s | %9s | %8s | %8s | %6s | %13s |\n' server 'req/s' 'p50 ms' 'p99 ms' errors 'peak RSS MB'
	printf '|---|---:|---:|---:|---:|---:|\n'
	for i in "${!targets[@]}"; do
		t=${targets[$i]}
		printf '| %-8s | %9s | %8s | %8s | %6s | %13s |\n' "$t" "$(col "$t" 1)" "$(col "$t" 2)" "$(col "$t" 3)" "$(sum "$t" 4)" "$(hwm "${procs[$i]}")"
	done
	# The ratio of the medians, and the median of each round's ratio (the
	# servers of one round ran back to back, under the same outside load).
	tg=$(col tollgate 1) bare=$(col bare 1)
	awk -v a="$tg" -v b="$bare" -v r="$(ratios tollgate bare)" 'BEGIN {printf "\nTollgate/bare: %.2fx (per round: %.2fx)\n", a/b, r}'
	awk -v r="$(ratios tollgate bare)" 'BEGIN {printf "protected_vs_bare=%.2f\n", r}' >>"$tmp/values"
	if [[ -n $apollo_pid ]]; then
		awk -v a="$tg" -v b="$(col apollo 1)" -v r="$(ratios tollgate apollo)" 'BEGIN {printf "Tollgate/Apollo: %.2fx (per round: %.2fx)\n", a/b, r}'
		awk -v r="$(ratios tollgate apollo)" 'BEGIN {printf "protected_vs_apollo=%.2f\n", r}' >>"$tmp/values"
	fi
elif [[ $mode == refresh ]]; then
	# One database after the other, each on a fresh Tollgate and database,
	# with bench/floor on the same database beside it; every round refreshes
	# $CONNECTIONS sessions opened for it on Tollgate, then as many on the floor.
	export TOKENS_FILE=$tmp/tokens THREADS
	for dbname in $DATABASES; do
		case $dbname in
		sqlite) url="sqlite:$tmp/refresh.db" ;;
		postgres)
			pgdb=tollgate_bench_$$
			psql -q -h "$PGHOST" -U postgres -c "CREATE DATABASE $pgdb" >/dev/null
			trap 'cleanup; psql -q -h "$PGHOST" -U postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
			url="postgres://postgres@$PGHOST:5432/$pgdb?sslmode=disable" ;;
		*) echo "DATABASES: sqlite or postgres, not $dbname" >&2; exit 1 ;;
		esac
		start_tollgate "$url"
		DATABASE_URL=$url ADDR=$FLOOR DATABASE_MAX_CONNS=${DATABASE_MAX_CONNS:-} "$tmp/floor" >>"$tmp/floor.log" 2>&1 &
		floor_pid=$!
		pids+=("$floor_pid")
		wait_up "http://$FLOOR/graphql"
		register_users
		for r in $(seq "$ROUNDS"); do
			# One session per connection, and one per thread more: wrk asks
			# each thread for a request before it connects, and never sends it.
			n=$((CONNECTIONS + THREADS))
			for target in "$dbname" "$dbname-floor"; do
				u=http://$TG/graphql
				[[ $target == *-floor ]] && u=http://$FLOOR/graphql
				echo "$target round $r/$ROUNDS: opening $n sessions, then ${DURATION}s of refreshToken" >&2
				: >"$TOKENS_FILE"
				for _ in $(seq "$n"); do login refreshToken >>"$TOKENS_FILE"; done
				[[ $(grep -c . "$TOKENS_FILE") == "$n" ]] || { echo "could not open $n sessions: $(tail -n 3 "$tmp/tollgate.log")" >&2; exit 1; }
				CPU_PID=$tg_pid
				[[ $target == *-floor ]] && CPU_PID=$floor_pid
				run "$target" "$u" "$CONNECTIONS" "$THREADS" refresh.lua
				CPU_PID=
			done
		done
		rss[$dbname]=$(hwm "$tg_pid")
		rss[$dbname-floor]=$(hwm "$floor_pid")
		stop_tollgate
		kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true
	done
	echo
	echo "refreshToken, medians of $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections, $THREADS threads, $(nproc) cores, DATABASE_MAX_CONNS=${DATABASE_MAX_CONNS:-default}, client addresses: ${ADDRESSES:-0} (0: one per session), $(date -u +%F)"
	printf '| %-14s | %9s | %8s | %8s | %6s | %13s |\n' server 'req/s' 'p50 ms' 'p99 ms' errors 'peak RSS MB'
	printf '|---|---:|---:|---:|---:|---:|\n'
	for d in $DATABASES; do
		for t in "$d" "$d-floor"; do
			printf '| %-14s | %9s | %8s | %8s | %6s | %13s |\n' "$t" "$(col "$t" 1)" "$(col "$t" 2)" "$(col "$t" 3)" "$(sum "$t" 4)" "${rss[$t]}"
		done
	done
	echo
	for d in $DATABASES; do
		awk -v a="$(col "$d" 1)" -v b="$(col "$d-floor" 1)" -v r="$(ratios "$d" "$d-floor")" -v d="$d" \
			'BEGIN {printf "Tollgate/floor on %s: %.2fx (per round: %.2fx)\n", d, a/b, r}'
	done
	for d in $DATABASES; do
		awk -v r="$(ratios "$d" "$d-floor")" -v d="$d" 'BEGIN {printf "refresh_vs_floor_%s=%.2f\n", d, r}' >>"$tmp/values"
		echo "refresh_p99_ms_$d=$(col "$d" 3)" >>"$tmp/values"
	done
elif [[ $mode == reset ]]; then
	# One database after the other, each on a fresh Tollgate and database,
	# with two users: vera (verified address) and uma (unverified). Each
	# round runs the three addresses back to back; the mail throttles are
	# lifted, and the mails go through the outbox to the log transport
	# (LOG_LEVEL=warn drops the lines, not the work).
	cases=(unknown unverified verified)
	declare -A email=([unknown]=nobody@example.com [unverified]=uma@example.com [verified]=vera@example.com)
	for dbname in $DATABASES; do
		case $dbname in
		sqlite) url="sqlite:$tmp/reset.db"; sql() { sqlite3 -cmd '.timeout 10000' "$tmp/reset.db" "$1"; } ;;
		postgres)
			pgdb=tollgate_bench_$$
			psql -q -h "$PGHOST" -U postgres -c "CREATE DATABASE $pgdb" >/dev/null
			trap 'cleanup; psql -q -h "$PGHOST" -U postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
			url="postgres://postgres@$PGHOST:5432/$pgdb?sslmode=disable"
			sql() { psql -q -h "$PGHOST" -U postgres -d "$pgdb" -c "$1" >/dev/null; } ;;
		*) echo "DATABASES: sqlite or postgres, not $dbname" >&2; exit 1 ;;
		esac
		start_tollgate "$url"
		for u in vera uma; do
			gql '{"query":"mutation($u: String!, $p: String!, $e: String) { register(username: $u, password: $p, email: $e) { accessToken } }","variables":{"u":"'$u'","p":"'"$PASSWORD"'","e":"'$u'@example.com"}}' >/dev/null
		done
		# The verification mail went to the log transport: mark vera verified directly.
		sql "UPDATE users SET email_verified_at = CURRENT_TIMESTAMP WHERE username = 'vera'"
		for r in $(seq "$ROUNDS"); do
			echo "$dbname round $r/$ROUNDS: ${DURATION}s of requestPasswordReset per address" >&2
			for c in "${cases[@]}"; do
				RESET_EMAIL=${email[$c]} run "$dbname-$c" "http://$TG/graphql" "$CONNECTIONS" "$THREADS" reset.lua
			done
		done
		rss[$dbname]=$(hwm "$tg_pid")
		stop_tollgate
		echo "$dbname: peak RSS ${rss[$dbname]} MB" >&2
	done
	echo
	echo "requestPasswordReset, medians of $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections, $THREADS threads, $(nproc) cores, DATABASE_MAX_CONNS=${DATABASE_MAX_CONNS:-default}, $(date -u +%F)"
	printf '| %-8s | %-10s | %9s | %8s | %8s | %6s |\n' database address 'req/s' 'p50 ms' 'p99 ms' errors
	printf '|---|---|---:|---:|---:|---:|\n'
	for t in $DATABASES; do
		for c in "${cases[@]}"; do
			printf '| %-8s | %-10s | %9s | %8s | %8s | %6s |\n' "$t" "$c" "$(col "$t-$c" 1)" "$(col "$t-$c" 2)" "$(col "$t-$c" 3)" "$(sum "$t-$c" 4)"
		done
	done
else
	for r in $(seq "$ROUNDS"); do
		echo "round $r/$ROUNDS: ${DURATION}s of { protected } ($PROBE_CONNECTIONS connections) alone, then with $STORM_CLIENTS clients logging in" >&2
		run alone "http://$TG/graphql" "$PROBE_CONNECTIONS" 1 protected.lua
		run login "http://$TG/graphql" "$STORM_CLIENTS" 1 login.lua &
		storm=$!
		run storm "http://$TG/graphql" "$PROBE_CONNECTIONS" 1 protected.lua
		wait "$storm"
	done
	echo
	echo "login storm, medians of $ROUNDS rounds of ${DURATION}s, $(nproc) cores, PASSWORD_HASH_CONCURRENCY=${PASSWORD_HASH_CONCURRENCY:-default}, $(date -u +%F)"
	printf '| %-26s | %9s | %8s | %8s | %6s |\n' load 'req/s' 'p50 ms' 'p99 ms' errors
	printf '|---|---:|---:|---:|---:|\n'
	for t in alone storm login; do
		case $t in alone) n="{ protected } alone" ;; storm) n="{ protected } during storm" ;; login) n="login ($STORM_CLIENTS clients)" ;; esac
		printf '| %-26s | %9s | %8s | %8s | %6s |\n' "$n" "$(col $t 1)" "$(col $t 2)" "$(col $t 3)" "$(sum $t 4)"
	done
	echo "Tollgate peak RSS: $(hwm "$tg_pid") MB"
fi

# What a script reads: name=value lines, last (or, in a part of the default
# run, handed to it to print after both parts).
if [[ -s $tmp/values && -n ${BENCH_VALUES:-} ]]; then
	cat "$tmp/values" >>"$BENCH_VALUES"
elif [[ -s $tmp/values ]]; then
	echo
	cat "$tmp/values"
fi
