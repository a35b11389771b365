#!/bin/bash
# Entrypoint of the db-replica service: a streaming hot standby of the db
# service, then `exec "$@"` (postgres with the primary's housing_cache
# settings and hot_standby = on, from docker-compose.yml).
#
# First start (no PG_VERSION in the data directory): wait for the primary,
# create its physical replication slot if missing, and clone it with
# pg_basebackup -R (primary_conninfo, standby.signal, the slot).  At every
# start the replication password goes to ~/.pgpass, which pg_basebackup and
# the walreceiver read: a password changed in .env (db-init sets it on the
# primary at every `up`) is picked up at the next start.
#
# Environment: HC_REPLICATION_USER, HC_REPLICATION_PASSWORD (required),
# HC_PRIMARY_HOST (db), HC_PRIMARY_PORT (5432), HC_REPLICATION_SLOT
# (hc_replica), PGDATA (/var/lib/postgresql/data).
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

# As root (the image's default user): own the data directory, then run as postgres.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec gosu postgres bash "$0" "$@"
fi

primary_host=${HC_PRIMARY_HOST:-db}
primary_port=${HC_PRIMARY_PORT:-5432}
user=${HC_REPLICATION_USER:?HC_REPLICATION_USER is not set}
password=${HC_REPLICATION_PASSWORD:?HC_REPLICATION_PASSWORD is not set}
slot=${HC_REPLICATION_SLOT:-hc_replica}

# ~/.pgpass: in its fields, backslash and colon are escaped with a backslash.
esc() { printf '%s' "$1" | sed 's/[\\:]/\\&/g'; }
export PGPASSFILE=${HOME:-/var/lib/postgresql}/.pgpass
(umask 077 && printf '%s:%s:*:%s:%s\n' "$(esc "$primary_host")" "$primary_port" "$(esc "$user")" \
    "$(esc "$password")" >"$PGPASSFILE")

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "db-replica: cloning $primary_host:$primary_port into $PGDATA"
    until pg_isready -q -h "$primary_host" -p "$primary_port"; do
        sleep 1
    done
    # what a failed earlier attempt left
    find "$PGDATA" -mindepth 1 -delete
    pg_receivewal -h "$primary_host" -p "$primary_port" -U "$user" --no-password \
        --slot="$slot" --create-slot --if-not-exists
    pg_basebackup -h "$primary_host" -p "$primary_port" -U "$user" --no-password \
        -D "$PGDATA" -R -X stream -S "$slot" --checkpoint=fast
    echo "db-replica: cloned; starting as a hot standby"
fi

exec "$@"
