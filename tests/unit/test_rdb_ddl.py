"""rdb writer: MySQL DDL translated for PostgreSQL/SQLite/MySQL targets, idempotent, retargeted."""

from __future__ import annotations

import pytest

from adapter.writers.rdb.ddlxlate import add_column, column_type_sql, translate_ddl


def plan(sql: str, family: str, existing: set[str] | None = None, only_add: bool = False) -> list[str]:
    cols = {"id", "name", "a"} if existing is None else existing
    p = translate_ddl(sql, source_db="mytest", family=family, target_of=lambda db, t: ("tgt", t),
                      columns_of=lambda s, t: cols, only_add_columns=only_add)
    return p.statements


CREATE = ("CREATE TABLE `t2` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, `j` json, b tinyint(1), "
          "e enum('a','b'), bt bit(8), d decimal(30,10), bl longblob, ts timestamp(6) NULL DEFAULT CURRENT_TIMESTAMP "
          "ON UPDATE CURRENT_TIMESTAMP, dt datetime default '0000-00-00 00:00:00', c varchar(5) character set utf8 "
          "comment 'x', PRIMARY KEY (`id`), UNIQUE KEY u (b), KEY idx_b (b)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def test_create_table_for_postgresql() -> None:
    (stmt,) = plan(CREATE, "postgresql")
    assert stmt.startswith('CREATE TABLE IF NOT EXISTS "tgt"."t2" (')
    for part in ('"id" DECIMAL(20, 0) NOT NULL', '"j" JSON', '"b" SMALLINT', '"e" TEXT', '"bt" BIT(8)',
                 '"d" DECIMAL(30, 10)', '"bl" BYTEA', '"ts" TIMESTAMPTZ(6) NULL DEFAULT CURRENT_TIMESTAMP',
                 '"dt" TIMESTAMP,', '"c" VARCHAR(5),', 'PRIMARY KEY ("id")', 'UNIQUE ("b")'):
        assert part in stmt, part
    for mysql_only in ("AUTO_INCREMENT", "ENGINE", "ON UPDATE", "COMMENT", "CHARACTER SET", "idx_b", "0000"):
        assert mysql_only not in stmt, mysql_only


def test_create_table_for_sqlite_keeps_decimals_exact() -> None:
    (stmt,) = plan(CREATE, "sqlite")
    assert '"d" DECIMAL(30, 10)' in stmt and "REAL" not in stmt and '"ts" DATETIME' in stmt


def test_create_table_for_mysql_keeps_mysql_types() -> None:
    (stmt,) = plan(CREATE, "mysql")
    assert "`tgt`.`t2`" in stmt and "BIGINT UNSIGNED" in stmt and "ENUM('a', 'b')" in stmt


def test_alter_add_and_drop_columns_are_replay_safe() -> None:
    sql = "ALTER TABLE user ADD COLUMN c1 INT UNSIGNED NOT NULL DEFAULT 0 AFTER name, ADD COLUMN name int"
    assert plan(sql, "postgresql") == ['ALTER TABLE "tgt"."user" ADD COLUMN "c1" BIGINT NOT NULL DEFAULT 0']
    assert plan(sql, "postgresql", existing={"id", "name", "c1"}) == []
    assert plan("alter table mytest.user drop column a, drop column zz", "postgresql") == [
        'ALTER TABLE "tgt"."user" DROP COLUMN "a"']


def test_modify_change_rename_and_drop() -> None:
    assert plan("ALTER TABLE user CHANGE a b varchar(10)", "postgresql") == [
        'ALTER TABLE "tgt"."user" RENAME COLUMN "a" TO "b"',
        'ALTER TABLE "tgt"."user" ALTER COLUMN "b" SET DATA TYPE VARCHAR(10)',
        'ALTER TABLE "tgt"."user" ALTER COLUMN "b" DROP NOT NULL']
    assert plan("ALTER TABLE user MODIFY COLUMN a BIGINT NOT NULL", "mysql") == [
        "ALTER TABLE `tgt`.`user` MODIFY COLUMN `a` BIGINT NOT NULL"]
    assert plan("rename table user to user2", "postgresql") == ['ALTER TABLE "tgt"."user" RENAME TO "user2"']
    assert plan("drop table user", "sqlite") == ['DROP TABLE IF EXISTS "tgt"."user"']


@pytest.mark.parametrize("sql", ["CREATE DATABASE x", "alter table user engine=innodb",
                                 "ALTER TABLE t ADD (a int, b int)", "ALTER TABLE user MODIFY a BIGINT"])
def test_unsupported_ddl_is_skipped_with_a_reason_on_sqlite(sql: str) -> None:
    p = translate_ddl(sql, source_db="mytest", family="sqlite", target_of=lambda db, t: (None, t),
                      columns_of=lambda s, t: {"a"})
    assert p.statements == [] and p.skipped


def test_only_add_columns_ignores_everything_else() -> None:
    assert plan("ALTER TABLE user DROP COLUMN a, ADD COLUMN z int", "postgresql", only_add=True) == [
        'ALTER TABLE "tgt"."user" ADD COLUMN "z" INT']
    assert plan("DROP TABLE user", "postgresql", only_add=True) == []


def test_column_types_from_row_metadata() -> None:
    assert column_type_sql("bigint(20) unsigned", "postgresql") == "DECIMAL(20, 0)"
    assert column_type_sql("timestamp(3)", "postgresql") == "TIMESTAMPTZ(3)"
    assert column_type_sql("enum('a')", "sqlite") == "TEXT"
    assert add_column("s", "User", "newCol", "tinyint(1)", "postgresql") == \
        'ALTER TABLE "s"."User" ADD COLUMN "newCol" SMALLINT'
