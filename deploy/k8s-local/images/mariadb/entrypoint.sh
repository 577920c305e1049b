#!/bin/sh
# First start (empty data directory): create the system tables, the root password, the
# database and its user, on a server without networking; then run the real server with
# the arguments the manifest gives.
set -eu
datadir=/var/lib/mysql
sql_quote() { printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g"; }

if [ ! -d "$datadir/mysql" ]; then
	for v in MYSQL_ROOT_PASSWORD MYSQL_USER MYSQL_PASSWORD MYSQL_DATABASE; do
		eval "test -n \"\${$v:-}\"" || { echo "tickmesh-mariadb: $v is not set" >&2; exit 2; }
	done
	echo "tickmesh-mariadb: initialising $datadir"
	mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
		--skip-test-db >/dev/null
	sock=/run/mysqld/init.sock
	mariadbd --datadir="$datadir" --skip-networking --socket="$sock" --pid-file=/run/mysqld/init.pid &
	pid=$!
	i=0
	until mariadb-admin --socket="$sock" ping --silent >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 120 ] || { echo "tickmesh-mariadb: init server did not start" >&2; exit 1; }
		sleep 0.5
	done
	db=$(printf '%s' "$MYSQL_DATABASE" | sed 's/`/``/g')
	mariadb --socket="$sock" -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_quote "$MYSQL_ROOT_PASSWORD")';
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$(sql_quote "$MYSQL_USER")'@'%' IDENTIFIED BY '$(sql_quote "$MYSQL_PASSWORD")';
GRANT ALL PRIVILEGES ON \`$db\`.* TO '$(sql_quote "$MYSQL_USER")'@'%';
SQL
	kill "$pid"
	wait "$pid" || true
	echo "tickmesh-mariadb: initialised"
fi
# Debian's configuration binds to 127.0.0.1: a pod serves on every address.
exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 "$@"
