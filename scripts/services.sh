#!/usr/bin/env bash
# Install (apt, pip) and run the test services on 127.0.0.1 private ports, without systemd.
#   MariaDB 13306 | ZooKeeper 12181 | ZK ensemble 22181-22183 | Redis 16379 | PostgreSQL 15432
#   noida-db (Elasticsearch API) 19201
# Usage: scripts/services.sh up [mariadb zookeeper redis postgres noida] | down | status | install
#   (idempotent; a service already answering on its port is left alone; down stops only what it started)
# Env: SERVICES_DIR (default <project>/.services), VENV (default <project>/.venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${SERVICES_DIR:-$ROOT/.services}
VENV=${VENV:-$ROOT/.venv}
mkdir -p "$BASE"

log() { printf '%s %s\n' "[services]" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
wait_for() { # wait_for SECONDS CMD...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && { echo "TIMEOUT waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}
zk_mode() { echo srvr | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; cat >&3; cat <&3" 2>/dev/null | grep -qE '^Mode: (standalone|leader|follower)'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
PGBIN() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  local need=()
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server mariadb-client)
  [ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  [ -n "$(PGBIN)" ] && [ -x "$(PGBIN)/initdb" ] || need+=(postgresql)
  command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  "$VENV/bin/python" -c 'import noida_db' 2>/dev/null || "$VENV/bin/pip" install -q 'noida-db>=0.2.3'
}

up_mariadb() {
  local M=$BASE/mariadb; mkdir -p "$M"
  if mariadb-admin -h127.0.0.1 -P13306 -uapp -papppass ping >/dev/null 2>&1; then log "mariadb already up"; return; fi
  cat > "$M/my.cnf" <<CNF
[mysqld]
user=root
datadir=$M/data
port=13306
bind-address=127.0.0.1
socket=$M/mysqld.sock
pid-file=$M/mysqld.pid
log-error=$M/error.log
server_id=1
log_bin=$M/data/mysql-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
gtid_domain_id=0
gtid_strict_mode=ON
log_slave_updates=ON
expire_logs_days=1
max_connections=500
innodb_buffer_pool_size=256M
innodb_log_file_size=64M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
[client]
port=13306
socket=$M/mysqld.sock
CNF
  [ -d "$M/data/mysql" ] || mariadb-install-db --defaults-file="$M/my.cnf" --skip-test-db > "$M/install-db.log" 2>&1
  nohup /usr/sbin/mariadbd --defaults-file="$M/my.cnf" > "$M/stdout.log" 2>&1 < /dev/null &
  wait_for 60 mariadb-admin --defaults-file="$M/my.cnf" -uroot ping
  mariadb --defaults-file="$M/my.cnf" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'canal'@'127.0.0.1' IDENTIFIED BY 'canal';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'canal'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'apppass';
GRANT ALL ON *.* TO 'app'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS cdc_test;
SQL
  log "mariadb up on 13306"
}

zk_cfg() { # zk_cfg DIR PORT [ensemble]
  cat > "$1/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,conf
minSessionTimeout=1000
maxSessionTimeout=60000
CFG
  if [ "${3:-}" = ensemble ]; then
    printf 'server.1=127.0.0.1:22888:23888\nserver.2=127.0.0.1:22889:23889\nserver.3=127.0.0.1:22890:23890\n' >> "$1/zoo.cfg"
  fi
}
ZKCP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
zk_start() { # zk_start DIR
  nohup java -Xmx256m -cp $ZKCP org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg" > "$1/zk.log" 2>&1 < /dev/null &
  echo $! > "$1/zk.pid"
}
up_zk() {
  local Z=$BASE/zk; mkdir -p "$Z/data"
  if zk_mode 12181; then log "zookeeper already up"; else
    zk_cfg "$Z" 12181; zk_start "$Z"; wait_for 60 zk_mode 12181; log "zookeeper up on 12181"; fi
  local started=0
  for n in 1 2 3; do
    local d=$BASE/zk-ens/n$n; mkdir -p "$d/data"; echo $n > "$d/data/myid"
    if ! zk_mode $((22180+n)) && ! alive "$d/zk.pid"; then zk_cfg "$d" $((22180+n)) ensemble; zk_start "$d"; started=1; fi
  done
  for p in 22181 22182 22183; do wait_for 60 zk_mode $p; done
  [ $started = 1 ] && log "zookeeper ensemble up on 22181-22183" || log "zookeeper ensemble already up"
}
up_redis() {
  local R=$BASE/redis; mkdir -p "$R"
  if redis-cli -p 16379 ping >/dev/null 2>&1; then log "redis already up"; return; fi
  redis-server --port 16379 --bind 127.0.0.1 --dir "$R" --save '' --appendonly no \
    --daemonize yes --pidfile "$R/redis.pid" --logfile "$R/redis.log"
  wait_for 30 redis-cli -p 16379 ping
  log "redis up on 16379"
}
up_pg() {
  local P=$BASE/pg B; B=$(PGBIN)
  if "$B/pg_isready" -h 127.0.0.1 -p 15432 >/dev/null 2>&1; then log "postgres already up"; return; fi
  mkdir -p "$P"; as_root chown postgres:postgres "$P"
  [ -f "$P/data/PG_VERSION" ] || su postgres -c "$B/initdb -D $P/data -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" > "$BASE/pg-initdb.log" 2>&1
  su postgres -c "$B/pg_ctl -D $P/data -l $P/pg.log -w -t 60 -o '-p 15432 -k $P -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300' start" > /dev/null
  log "postgres up on 15432"
}
up_noida() {
  local N=$BASE/noida
  if curl -sf http://127.0.0.1:19201/ >/dev/null 2>&1; then log "noida-db already up"; return; fi
  local bin; bin=$("$VENV/bin/python" -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')
  rm -rf "$N"; mkdir -p "$N"
  nohup "$bin" start --data-dir "$N/data" --only elasticsearch --elasticsearch-port 19201 > "$N/noida.log" 2>&1 < /dev/null &
  echo $! > "$N/noida.pid"
  wait_for 30 curl -sf http://127.0.0.1:19201/
  log "noida-db (Elasticsearch API) up on 19201"
}

stop_pid() { # stop_pid PIDFILE NAME
  [ -f "$1" ] || return 0
  local p; p=$(cat "$1")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$1"; log "$2 stopped"
}
down() {
  if [ -S "$BASE/mariadb/mysqld.sock" ]; then mariadb-admin --defaults-file="$BASE/mariadb/my.cnf" -uroot shutdown 2>/dev/null && log "mariadb stopped" || true; fi
  if [ -f "$BASE/pg/data/postmaster.pid" ]; then su postgres -c "$(PGBIN)/pg_ctl -D $BASE/pg/data -m fast stop" >/dev/null 2>&1 && log "postgres stopped" || true; fi
  if [ -f "$BASE/redis/redis.pid" ]; then redis-cli -p 16379 shutdown nosave >/dev/null 2>&1 || true; rm -f "$BASE/redis/redis.pid"; log "redis stopped"; fi
  stop_pid "$BASE/zk/zk.pid" zookeeper
  for n in 1 2 3; do stop_pid "$BASE/zk-ens/n$n/zk.pid" "zk-ensemble n$n"; done
  stop_pid "$BASE/noida/noida.pid" noida-db
}
status() {
  mariadb-admin --defaults-file="$BASE/mariadb/my.cnf" -uroot ping >/dev/null 2>&1 && echo "mariadb   up   127.0.0.1:13306" || echo "mariadb   down"
  zk_mode 12181 && echo "zookeeper up   127.0.0.1:12181" || echo "zookeeper down"
  for p in 22181 22182 22183; do zk_mode $p && echo "zk-ens    up   127.0.0.1:$p" || echo "zk-ens    down $p"; done
  redis-cli -p 16379 ping >/dev/null 2>&1 && echo "redis     up   127.0.0.1:16379" || echo "redis     down"
  [ -n "$(PGBIN)" ] && "$(PGBIN)/pg_isready" -h 127.0.0.1 -p 15432 >/dev/null 2>&1 && echo "postgres  up   127.0.0.1:15432" || echo "postgres  down"
  curl -sf http://127.0.0.1:19201/ >/dev/null 2>&1 && echo "noida-db  up   127.0.0.1:19201" || echo "noida-db  down"
}

case "${1:-}" in
  install) install ;;
  up)
    shift; install; t0=$(date +%s)
    want=${*:-mariadb zookeeper redis postgres noida}
    for svc in $want; do
      case $svc in
        mariadb) up_mariadb ;; zookeeper) up_zk ;; redis) up_redis ;; postgres) up_pg ;; noida) up_noida ;;
        *) echo "unknown service: $svc (mariadb zookeeper redis postgres noida)" >&2; exit 2 ;;
      esac
    done
    log "services ready in $(( $(date +%s) - t0 ))s: $want" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
