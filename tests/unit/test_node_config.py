"""application.yml loading: canal's sample, every error case (file + key path), env overrides, client ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import services
import yaml

from adapter.errors import ConfigError
from adapter.node.config import CANAL_CLIENT_ID, effective_client_id
from adapter.node.configload import load_config, translate_url

COMPAT = Path(services.COMPAT) / "adapter-conf"


def write(tmp_path: Path, body: Any) -> Path:
    text = body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False)
    (tmp_path / "application.yml").write_text(text)
    return tmp_path


def base(**conf: Any) -> dict[str, Any]:
    cc: dict[str, Any] = {
        "mode": "tcp",
        "consumerProperties": {"canal.tcp.server.host": "127.0.0.1:11111"},
        "canalAdapters": [
            {"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [{"name": "logger"}]}]}
        ],
    }
    cc.update(conf)
    return {"server": {"port": 8081}, "canal.conf": cc}


def test_canal_sample_loads_unchanged() -> None:
    cfg = load_config(COMPAT)
    assert cfg.server.port == 8081
    assert cfg.canal.mode == "tcp"
    assert cfg.canal.sync_batch_size == 1000
    assert cfg.canal.attempts is None  # retries: -1 → forever
    assert cfg.canal.poll_timeout_ms == 100  # blank timeout: our default (bounds low-rate latency)
    assert cfg.canal.zookeeper_hosts is None
    assert cfg.canal.prop("canal.tcp.server.host") == "127.0.0.1:11111"
    assert cfg.canal.prop("canal.tcp.batch.size") == "500"
    assert cfg.canal.on_exhausted == "stop"
    [task] = cfg.tasks
    assert (task.destination, task.group_id, task.client_id) == ("example", "g1", CANAL_CLIENT_ID)
    [w] = task.writers
    assert (w.name, w.key, w.keyed) == ("logger", "AUTO_GENERATED_-example-g1-0", False)
    assert any("spring" in n for n in cfg.notes)
    assert any("kafka.bootstrap.servers" in n for n in cfg.notes)


def test_config_file_path_and_dir_are_both_accepted(tmp_path: Path) -> None:
    d = write(tmp_path, base())
    assert load_config(d).file == load_config(d / "application.yml").file


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "server:\n  port: 8081\ncanal.conf:\n  mode: tcp\n   bad: [\n")
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.source == str(tmp_path / "application.yml")
    assert "line 5" in str(ei.value) or "line 4" in str(ei.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"application\.yml"):
        load_config(tmp_path)


def test_missing_canal_conf(tmp_path: Path) -> None:
    write(tmp_path, {"server": {"port": 1}})
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf"


@pytest.mark.parametrize(
    ("patch", "key", "expected"),
    [
        ({"syncBatchSize": "abc"}, "canal.conf.syncBatchSize", "integer"),
        ({"retries": -5}, "canal.conf.retries", "greater than or equal to -1"),
        ({"mode": "kafka"}, "canal.conf.mode", "tcp"),
        ({"onExhausted": "ignore"}, "canal.conf.onExhausted", "'stop' or 'skip'"),
        ({"canalAdapters": "x"}, "canal.conf.canalAdapters", "list"),
        ({"srcDataSources": {"ds": {"username": "u"}}}, "canal.conf.srcDataSources.ds.url", "required"),
    ],
)
def test_wrong_values_name_the_key_path(tmp_path: Path, patch: dict[str, Any], key: str, expected: str) -> None:
    write(tmp_path, base(**patch))
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == key
    assert ei.value.source == str(tmp_path / "application.yml")
    assert expected in str(ei.value)


def test_missing_writer_name_names_the_entry(tmp_path: Path) -> None:
    cfg = base()
    cfg["canal.conf"]["canalAdapters"][0]["groups"][0]["outerAdapters"].append({"key": "k1"})
    write(tmp_path, cfg)
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf.canalAdapters[0].groups[0].outerAdapters[1].name"
    assert "required" in str(ei.value)


def test_wrong_port_type(tmp_path: Path) -> None:
    cfg = base()
    cfg["server"]["port"] = "eighty"
    write(tmp_path, cfg)
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "server.port"


def test_numeric_group_id_and_nested_spring_form(tmp_path: Path) -> None:
    write(tmp_path, "canal:\n  conf:\n    canalAdapters:\n    - instance: ' ex '\n      groups:\n"
                    "      - groupId: 1\n        outerAdapters:\n        - name: logger\n")
    cfg = load_config(tmp_path)
    assert (cfg.tasks[0].destination, cfg.tasks[0].group_id) == ("ex", "1")


def test_client_ids_are_distinct_and_stable(tmp_path: Path) -> None:
    groups = [{"groupId": g, "outerAdapters": [{"name": "logger"}]} for g in ("g1", "g2", "g3")]
    groups.append({"groupId": "g4", "clientId": 1234, "outerAdapters": [{"name": "logger"}]})
    write(tmp_path, base(canalAdapters=[{"instance": "example", "groups": groups}]))
    cfg = load_config(tmp_path)
    ids = [t.client_id for t in cfg.tasks]
    assert ids[0] == CANAL_CLIENT_ID and ids[3] == 1234
    assert len(set(ids)) == 4 and all(1 <= i <= 32767 for i in ids)
    # the id of g2 does not depend on its position
    inst = cfg.canal.canal_adapters[0]
    assert effective_client_id(inst, 1) == load_config(tmp_path).tasks[1].client_id


def test_duplicate_client_id_is_rejected(tmp_path: Path) -> None:
    groups = [{"groupId": "a", "outerAdapters": []}, {"groupId": "b", "clientId": 1001, "outerAdapters": []}]
    write(tmp_path, base(canalAdapters=[{"instance": "example", "groups": groups}]))
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf.canalAdapters[0].groups[1].clientId"


def test_duplicate_group_and_duplicate_writer_key(tmp_path: Path) -> None:
    g = {"groupId": "g1", "outerAdapters": [{"name": "rdb", "key": "k"}]}
    write(tmp_path, base(canalAdapters=[{"instance": "e", "groups": [g, g]}]))
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf.canalAdapters[0].groups[1].groupId"
    write(tmp_path, base(canalAdapters=[{"instance": "e", "groups": [g]}, {"instance": "f", "groups": [g]}]))
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf.canalAdapters[1].groups[0].outerAdapters[0].key"


def test_retries_semantics(tmp_path: Path) -> None:
    for retries, attempts in ((None, 1), (0, 1), (3, 3), (-1, None)):
        write(tmp_path, base(retries=retries))
        assert load_config(tmp_path).canal.attempts == attempts


def test_jdbc_urls_are_translated() -> None:
    url, db = translate_url("jdbc:mysql://127.0.0.1:3306/mytest?useUnicode=true&characterEncoding=UTF-8", "root",
                            "p@ss", source="f", key="k")
    assert url == "mysql+pymysql://root:p%40ss@127.0.0.1:3306/mytest?charset=utf8mb4"
    assert db == "mytest"
    url, db = translate_url("jdbc:postgresql://localhost:5432/postgres", "pg", None, source="f", key="k")
    assert (url, db) == ("postgresql+psycopg://pg@localhost:5432/postgres", "postgres")
    url, db = translate_url("mysql+pymysql://h/db", "u", "p", source="f", key="k")
    assert (url, db) == ("mysql+pymysql://u:p@h/db", "db")
    with pytest.raises(ConfigError) as ei:
        translate_url("jdbc:oracle:thin:@localhost:49161:XE", None, None, source="f", key="the.key")
    assert ei.value.key == "the.key"


def test_env_overrides_secrets(tmp_path: Path) -> None:
    cfg = base(srcDataSources={"defaultDS": {"url": "jdbc:mysql://h:1/db", "username": "u", "password": "file"}})
    cfg["canal.conf"]["consumerProperties"]["canal.tcp.password"] = "file"
    cfg["canal.conf"]["canalAdapters"][0]["groups"][0]["outerAdapters"].append(
        {"name": "rdb", "key": "mysql1", "properties": {"jdbc.url": "x", "jdbc.password": None}})
    write(tmp_path, cfg)
    env = {"CANAL_TCP_PASSWORD": "envtcp", "CANAL_SRC_DEFAULTDS_PASSWORD": "envsrc",
           "CANAL_WRITER_MYSQL1_JDBC_PASSWORD": "envw"}
    c = load_config(tmp_path, env=env)
    assert c.tcp_password == "envtcp"
    assert c.data_sources["defaultDS"].url == "mysql+pymysql://u:envsrc@h:1/db?charset=utf8mb4"
    assert c.data_sources["defaultDS"].database == "db"
    assert c.tasks[0].writers[1].properties["jdbc.password"] == "envw"
    c = load_config(tmp_path, env={})
    assert c.tcp_password == "file"
    assert c.tasks[0].writers[1].properties["jdbc.password"] is None


def test_nested_properties_are_flattened(tmp_path: Path) -> None:
    cfg = base()
    cfg["canal.conf"]["canalAdapters"][0]["groups"][0]["outerAdapters"] = [
        {"name": "rdb", "key": "k", "properties": {"jdbc": {"url": "u", "username": "x"}, "threads": 2}}]
    write(tmp_path, cfg)
    props = load_config(tmp_path).tasks[0].writers[0].properties
    assert props == {"jdbc.url": "u", "jdbc.username": "x", "threads": 2}


def test_secrets_are_not_echoed_in_errors(tmp_path: Path) -> None:
    write(tmp_path, base(srcDataSources={"ds": {"url": "jdbc:mysql://h/db", "password": ["s3cret"]}}))
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path)
    assert ei.value.key == "canal.conf.srcDataSources.ds.password"
    assert "s3cret" not in str(ei.value)


def test_dead_letter_dir_and_node_id(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf, base(deadLetterDir="/var/dl", nodeId="n1"))
    c = load_config(conf)
    assert (c.dead_letter_dir, c.node_id) == ("/var/dl", "n1")
    write(conf, base())
    assert load_config(conf).dead_letter_dir == str(tmp_path.resolve() / "logs" / "dead-letter")
