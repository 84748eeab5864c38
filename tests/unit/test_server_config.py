"""canal-server configuration: canal's own files load unchanged; overrides; bad values name file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import services

from adapter.errors import ConfigError
from adapter.server.config import load_config

COMPAT = Path(services.COMPAT) / "server-conf"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "myconf"  # not named "conf": ../conf must still mean the conf directory
    shutil.copytree(COMPAT, d)
    return d


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write("\n" + text + "\n")


def test_compat_files_load_unchanged(conf: Path) -> None:
    cfg = load_config(conf, env={})
    assert cfg.port == 11111 and cfg.metrics_port == 11112
    assert cfg.user == "" and cfg.passwd == ""
    assert cfg.destinations == ("example",)
    inst = cfg.instances["example"]
    assert inst.meta_kind == "file"
    assert inst.data_dir == conf.resolve()
    assert inst.buffer_size == 16384 and inst.memunit == 1024 and inst.batch_mode == "MEMSIZE"
    assert inst.buffer_bytes == 16384 * 1024
    assert inst.file_flush_period_ms == 1000 and not inst.lazy
    p = inst.parser
    assert (p.master_host, p.master_port, p.username, p.password) == ("127.0.0.1", 3306, "canal", "canal")
    assert p.filter_regex == r".*\..*" and p.black_regex == r"mysql\.slave_.*"
    assert p.charset == "utf8mb4" and not p.gtid_on and p.position is None and p.journal_name == ""
    assert p.slave_id > 0 and not p.ddl_isolation


def test_instance_properties_override_canal_properties(conf: Path) -> None:
    append(conf / "example" / "instance.properties",
           "canal.instance.memory.buffer.size = 1024\ncanal.instance.memory.batch.mode=ITEMSIZE\n"
           "canal.instance.get.ddl.isolation=true\ncanal.instance.master.journal.name=mysql-bin.000003\n"
           "canal.instance.master.position=4\ncanal.instance.mysql.slaveId=77\ncanal.instance.gtidon=true\n"
           "canal.instance.master.gtid=0-1-5\ncanal.instance.master.timestamp=1700000000000")
    inst = load_config(conf, env={}).instances["example"]
    assert inst.buffer_size == 1024 and inst.batch_mode == "ITEMSIZE"
    p = inst.parser
    assert p.ddl_isolation and p.gtid_on and p.gtid == "0-1-5" and p.slave_id == 77
    assert (p.journal_name, p.position, p.timestamp) == ("mysql-bin.000003", 4, 1700000000000)


def test_spring_xml_selects_meta_and_lazy(conf: Path) -> None:
    append(conf / "canal.properties", "canal.instance.global.spring.xml = classpath:spring/memory-instance.xml\n"
           "canal.instance.global.lazy = true")
    inst = load_config(conf, env={}).instances["example"]
    assert inst.meta_kind == "memory" and inst.lazy
    append(conf / "canal.properties", "canal.instance.example.lazy = false")
    assert not load_config(conf, env={}).instances["example"].lazy


def test_default_instance_needs_zk(conf: Path) -> None:
    append(conf / "canal.properties", "canal.instance.global.spring.xml = classpath:spring/default-instance.xml")
    with pytest.raises(ConfigError, match=r"canal\.zkServers"):
        load_config(conf, env={})
    append(conf / "canal.properties", "canal.zkServers = 127.0.0.1:2181")
    assert load_config(conf, env={}).instances["example"].meta_kind == "zookeeper"


def test_user_without_passwd_refuses_to_start(conf: Path) -> None:
    append(conf / "canal.properties", "canal.user = canal")
    with pytest.raises(ConfigError, match=r"canal\.properties.*canal\.passwd"):
        load_config(conf, env={})
    append(conf / "canal.properties", "canal.passwd = E3619321C1A937C46A0D8BD1DAC39F93B27D4458")
    assert load_config(conf, env={}).passwd == "e3619321c1a937c46a0d8bd1dac39f93b27d4458"


@pytest.mark.parametrize(
    ("where", "line", "key"),
    [
        ("canal.properties", "canal.port = abc", "canal.port"),
        ("canal.properties", "canal.passwd = nothex", "canal.passwd"),
        ("canal.properties", "canal.serverMode = kafka", "canal.serverMode"),
        ("canal.properties", "canal.instance.memory.buffer.size = 1000", "canal.instance.memory.buffer.size"),
        ("instance", "canal.instance.memory.batch.mode = BYTES", "canal.instance.memory.batch.mode"),
        ("instance", "canal.instance.gtidon = yes", "canal.instance.gtidon"),
        ("instance", "canal.instance.master.position = -3", "canal.instance.master.position"),
        ("instance", "canal.instance.master.address = ", "canal.instance.master.address"),
        ("instance", "canal.instance.master.address = host:port", "canal.instance.master.address"),
        ("canal.properties", "canal.instance.global.spring.xml = classpath:spring/group-instance.xml",
         "canal.instance.global.spring.xml"),
        ("canal.properties", "canal.file.flush.period = 0", "canal.file.flush.period"),
    ],
)
def test_bad_values_name_file_and_key(conf: Path, where: str, line: str, key: str) -> None:
    path = conf / "canal.properties" if where == "canal.properties" else conf / "example" / "instance.properties"
    append(path, line)
    with pytest.raises(ConfigError) as err:
        load_config(conf, env={})
    assert err.value.key == key
    assert err.value.source == str(path.resolve())


def test_missing_destination_dir_names_the_file(conf: Path) -> None:
    append(conf / "canal.properties", "canal.destinations = example,other")
    with pytest.raises(ConfigError, match=r"other/instance\.properties"):
        load_config(conf, env={})


def test_environment_overrides(conf: Path) -> None:
    cfg = load_config(conf, env={"canal.port": "0", "canal.instance.master.address": "db:13306"})
    assert cfg.port == 0
    assert cfg.instances["example"].source.port == 13306


def test_own_keys(conf: Path) -> None:
    append(conf / "canal.properties", "canal.server.max.frame.bytes = 4096\ncanal.metrics.pull.port =")
    cfg = load_config(conf, env={})
    assert cfg.max_frame == 4096 and cfg.metrics_port is None


def test_zookeeper_timeout_and_running_delay_keys(tmp_path: Path) -> None:

    (tmp_path / "canal.properties").write_text(
        "canal.destinations =\ncanal.zookeeper.session.timeout = 4000\ncanal.zookeeper.running.delay = 1500\n")
    cfg = load_config(tmp_path)
    assert (cfg.zk_session_timeout_ms, cfg.zk_running_delay_ms) == (4000, 1500)
    (tmp_path / "canal.properties").write_text("canal.destinations =\n")
    cfg = load_config(tmp_path)
    assert (cfg.zk_session_timeout_ms, cfg.zk_running_delay_ms) == (10_000, 5_000)
