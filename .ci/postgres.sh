# Start a throw-away PostgreSQL cluster on a free loopback port and export CRYOPLAN_TEST_POSTGRES_URL
# (sourced by .ci/run; needs root and Debian's postgresql package).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/cryoplan-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chown postgres "$pg_dir"
su postgres -c "$pg_bin/initdb -D $pg_dir/data -A trust -U postgres" >/dev/null
su postgres -c "$pg_bin/pg_ctl -D $pg_dir/data -o '-k $pg_dir -h 127.0.0.1 -p $pg_port' -l $pg_dir/log -w start" >/dev/null
su postgres -c "$pg_bin/createdb -h 127.0.0.1 -p $pg_port -U postgres cryoplan_test"
export CRYOPLAN_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/cryoplan_test"
