#!/usr/bin/env bash
# Costs as the data grows (bench/README.md, "Scale"): for PostgreSQL and
# SQLite, 10k, 100k and 1M sessions loaded with SQL, the real server started
# on them, one name=value line per figure. PostgreSQL must run at
# 127.0.0.1:5432 (trust, user postgres); the plans of every statement at the
# largest size go to bench/explain.md (auto_explain, written to PostgreSQL's
# log, which must be readable here).
#
#   bash bench/scale.sh                      # everything (about 10 minutes on 2 cores)
#   SIZES=10000 DBS=sqlite bash bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/scale -db "${DBS:-postgres,sqlite}" -sizes "${SIZES:-10000,100000,1000000}" \
  -idle "${IDLE:-30s}" -explain "${EXPLAIN:-bench/explain.md}" "$@"
