# Start a throw-away PostgreSQL cluster on loopback and export CRYOPLAN_TEST_POSTGRES_URL (sourced by .ci/run).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/cryoplan-pg.XXXXXX)
chown postgres "$pg_dir"
su postgres -c "$pg_bin/initdb -D $pg_dir/data -A trust -U postgres" >/dev/null
su postgres -c "$pg_bin/pg_ctl -D $pg_dir/data -o '-k $pg_dir -h 127.0.0.1 -p 54329' -l $pg_dir/log -w start" >/dev/null
su postgres -c "$pg_bin/createdb -h 127.0.0.1 -p 54329 -U postgres cryoplan_test"
export CRYOPLAN_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:54329/cryoplan_test"
