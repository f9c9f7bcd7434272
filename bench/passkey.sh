#!/usr/bin/env bash
# loginWithPasskey beside password login, on SQLite and then PostgreSQL: a
# fresh Tollgate and database for each, users with a passkey each (a
# software authenticator in bench/passkey), then DURATION seconds of passkey
# sign-ins and DURATION seconds of password logins from CONNECTIONS clients.
# See bench/README.md ("Passkeys").
#
#   bash bench/passkey.sh
#
# Environment: DURATION (8, seconds per kind), CONNECTIONS (16), USERS (16),
# DATABASES ("sqlite postgres"; PostgreSQL at $PGHOST:5432, user postgres),
# and for Tollgate PASSWORD_HASH_CONCURRENCY and DATABASE_MAX_CONNS.
set -euo pipefail

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-16}
USERS=${USERS:-16}
DATABASES=${DATABASES:-sqlite postgres}
PGHOST=${PGHOST:-127.0.0.1}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
pid= pgdb=
cleanup() {
	[[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	[[ -n $pgdb ]] && psql -q -h "$PGHOST" -U postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building Tollgate and bench/passkey" >&2
(cd "$root" && go build -o "$tmp/tollgate" . && go build -o "$tmp/passkey" ./bench/passkey)
export JWT_SECRET
JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n=+/' | head -c 43)
TG=127.0.0.1:18090

declare -A out
for dbname in $DATABASES; do
	case $dbname in
	sqlite) url="sqlite:$tmp/passkey.db" ;;
	postgres)
		pgdb=tollgate_bench_passkey_$$
		psql -q -h "$PGHOST" -U postgres -c "CREATE DATABASE $pgdb" >/dev/null
		url="postgres://postgres@$PGHOST:5432/$pgdb?sslmode=disable" ;;
	*) echo "DATABASES: sqlite or postgres, not $dbname" >&2; exit 1 ;;
	esac
	# The throttles would stop one address's load at once: lifted, as in run.sh.
	DATABASE_URL=$url ADDR=$TG APP_ENV=development LOG_LEVEL=warn \
		LOGIN_ATTEMPTS_PER_IP_PER_MINUTE=1000000 REGISTER_PER_IP_PER_HOUR=1000000 \
		LOGIN_FAILURES_PER_USER_IP=1000000 LOGIN_FAILURES_PER_IP=1000000 SESSIONS_PER_USER=1000000 \
		PASSWORD_HASH_CONCURRENCY=${PASSWORD_HASH_CONCURRENCY:-} DATABASE_MAX_CONNS=${DATABASE_MAX_CONNS:-} \
		"$tmp/tollgate" >>"$tmp/tollgate-$dbname.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"query":"{ __typename }"}' "http://$TG/graphql" && break
		sleep 0.1
	done
	echo "$dbname: $USERS users with a passkey, then ${DURATION}s of passkey sign-ins and ${DURATION}s of password logins, $CONNECTIONS clients" >&2
	out[$dbname]=$("$tmp/passkey" -url "http://$TG/graphql" -users "$USERS" -connections "$CONNECTIONS" -duration "${DURATION}s")
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	if [[ -n $pgdb ]]; then psql -q -h "$PGHOST" -U postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null; pgdb=; fi
done

get() { sed -n "s/^$2=//p" <<<"${out[$1]}"; }
echo
echo "sign-ins, ${DURATION}s each, $CONNECTIONS clients, $(nproc) cores, PASSWORD_HASH_CONCURRENCY=${PASSWORD_HASH_CONCURRENCY:-default}, $(date -u +%F)"
printf '| %-8s | %-16s | %9s | %8s | %8s | %6s |\n' database 'sign-in' 'per s' 'p50 ms' 'p99 ms' errors
printf '|---|---|---:|---:|---:|---:|\n'
for d in $DATABASES; do
	for k in passkey password; do
		name=$k; [[ $k == passkey ]] && name=loginWithPasskey; [[ $k == password ]] && name=login
		printf '| %-8s | %-16s | %9s | %8s | %8s | %6s |\n' "$d" "$name" "$(get "$d" ${k}_per_second)" "$(get "$d" ${k}_p50_ms)" "$(get "$d" ${k}_p99_ms)" "$(get "$d" ${k}_errors)"
	done
done
for d in $DATABASES; do
	echo "$d: passkey/password throughput $(get "$d" ratio_throughput)x, password/passkey p99 $(get "$d" ratio_p99)x"
done
