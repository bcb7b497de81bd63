#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster on 127.0.0.1 for the tests.
#   start DIR PORT  -> prints the URL tests use (WORKBENCH_TEST_POSTGRES_URL); the server's PID is in DIR/postmaster.pid
#   stop DIR        -> stops that server by its PID
set -euo pipefail
cmd=$1 dir=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
case "$cmd" in
start)
  port=$3
  rm -rf "$dir" && mkdir -p "$dir" && chown postgres:postgres "$dir"
  su postgres -s /bin/sh -c "$bindir/initdb -D '$dir/data' -U postgres --auth-local=trust --auth-host=scram-sha-256 >'$dir/initdb.log' 2>&1"
  su postgres -s /bin/sh -c "$bindir/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" start >/dev/null"
  "$bindir/psql" -h "$dir" -p "$port" -U postgres -q -c "CREATE USER workbench PASSWORD 'workbench'" \
    -c "CREATE DATABASE workbench OWNER workbench" >/dev/null
  echo "postgresql://workbench:workbench@127.0.0.1:$port/workbench"
  ;;
stop)
  pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done; fi
  ;;
esac
