#!/usr/bin/env bash
# Quick start on embedded defaults: install what is missing, start a local MariaDB with binlog,
# canal-server and canal-adapter (logger + SQLite rdb writer), write sample rows and show them synced.
# Ctrl-C stops everything this script started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export VENV=${VENV:-$ROOT/.venv}
QS=${QUICKSTART_DIR:-$ROOT/.quickstart}
export SERVICES_DIR=$QS/services
PY=$VENV/bin/python
mkdir -p "$QS"
CANAL_PORT=${CANAL_PORT:-11111}
ADAPTER_PORT=${ADAPTER_PORT:-8081}

scripts/services.sh install
"$VENV/bin/pip" install -q --disable-pip-version-check -e .
scripts/services.sh up mariadb

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "[quickstart] stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVICES_DIR=$QS/services scripts/services.sh down >/dev/null 2>&1 || true
  echo "[quickstart] stopped"
}
trap cleanup INT TERM EXIT

# ---- source schema
"$PY" - <<'PYEOF'
import pymysql
c = pymysql.connect(host="127.0.0.1", port=13306, user="app", password="apppass", autocommit=True)
with c.cursor() as cur:
    cur.execute("CREATE DATABASE IF NOT EXISTS quickstart")
    cur.execute("CREATE TABLE IF NOT EXISTS quickstart.user (id INT PRIMARY KEY, name VARCHAR(64), "
                "email VARCHAR(128), balance DECIMAL(12,2), updated DATETIME(3))")
PYEOF

# ---- canal-server conf (canal's layout)
S=$QS/server-conf; mkdir -p "$S/example" "$QS/data"
cat > "$S/canal.properties" <<CFG
canal.port = ${CANAL_PORT}
canal.metrics.pull.port = $((CANAL_PORT+1))
canal.destinations = example
canal.conf.dir = $S
canal.file.data.dir = $QS/data
canal.instance.global.spring.xml = classpath:spring/file-instance.xml
CFG
cat > "$S/example/instance.properties" <<CFG
canal.instance.master.address = 127.0.0.1:13306
canal.instance.dbUsername = canal
canal.instance.dbPassword = canal
canal.instance.mysql.slaveId = 4242
canal.instance.connectionCharset = UTF-8
canal.instance.filter.regex = quickstart\\\\..*
CFG

# ---- canal-adapter conf (canal's layout): logger + SQLite rdb writer
A=$QS/adapter-conf; mkdir -p "$A/rdb"
DB=$QS/target.db
"$PY" -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, name TEXT, email TEXT, balance NUMERIC, updated TEXT)'); c.commit()"
cat > "$A/application.yml" <<CFG
server:
  port: ${ADAPTER_PORT}
canal.conf:
  mode: tcp
  syncBatchSize: 1000
  retries: 3
  consumerProperties:
    canal.tcp.server.host: 127.0.0.1:${CANAL_PORT}
    canal.tcp.batch.size: 500
  srcDataSources:
    defaultDS:
      url: jdbc:mysql://127.0.0.1:13306/quickstart?useUnicode=true
      username: app
      password: apppass
  canalAdapters:
  - instance: example
    groups:
    - groupId: g1
      outerAdapters:
      - name: logger
      - name: rdb
        key: sqlite1
        properties:
          url: sqlite:///$DB
CFG
cat > "$A/rdb/user.yml" <<CFG
dataSourceKey: defaultDS
destination: example
groupId: g1
outerAdapterKey: sqlite1
dbMapping:
  database: quickstart
  table: user
  targetTable: user
  targetPk:
    id: id
  mapAll: true
CFG

echo "[quickstart] starting canal-server (conf $S) and canal-adapter (conf $A)"
"$VENV/bin/canal-server" --conf "$S" > "$QS/canal-server.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$CANAL_PORT) 2>/dev/null && break; sleep 0.1; done
"$VENV/bin/canal-adapter" --config "$A" > "$QS/canal-adapter.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$ADAPTER_PORT/health >/dev/null 2>&1 && break; sleep 0.1; done

echo "[quickstart] writing sample rows to MariaDB quickstart.user"
"$PY" - <<'PYEOF'
import pymysql, time
c = pymysql.connect(host="127.0.0.1", port=13306, user="app", password="apppass", database="quickstart", autocommit=True)
with c.cursor() as cur:
    cur.execute("DELETE FROM user")
    cur.executemany("INSERT INTO user VALUES (%s,%s,%s,%s,NOW(3))",
                    [(i, f"user{i}", f"user{i}@example.com", i * 10.5) for i in range(1, 6)])
    cur.execute("UPDATE user SET name='renamed', balance=balance+1 WHERE id=2")
    cur.execute("DELETE FROM user WHERE id=5")
PYEOF

"$PY" - "$DB" <<'PYEOF'
import sqlite3, sys, time
deadline = time.time() + 30
while True:
    rows = sqlite3.connect(sys.argv[1]).execute("SELECT id, name, email, balance FROM user ORDER BY id").fetchall()
    if len(rows) == 4 and rows[1][1] == "renamed" or time.time() > deadline:
        break
    time.sleep(0.2)
print("[quickstart] rows synced into SQLite (" + sys.argv[1] + "):")
for r in rows:
    print("   ", r)
PYEOF
echo "[quickstart] logger writer output (last lines of $QS/canal-adapter.log):"
grep -E '"type": ?"(INSERT|UPDATE|DELETE)"|INSERT|UPDATE|DELETE' "$QS/canal-adapter.log" | tail -4 || true
echo "[quickstart] running: write to quickstart.user (mariadb -h127.0.0.1 -P13306 -uapp -papppass quickstart) and watch"
echo "[quickstart] $QS/canal-adapter.log. REST: curl localhost:$ADAPTER_PORT/destinations. Ctrl-C to stop."
wait "${pids[@]}"
