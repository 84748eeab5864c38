"""The SQL dialect used to read and re-render mapping SQL: sqlglot's MySQL, fixed for MariaDB.

sqlglot renders ``x REGEXP y`` as ``REGEXP_LIKE(x, y)``, which MariaDB does not have; the mapping
SQL is re-rendered for every back-query, so it must stay valid on both MySQL and MariaDB.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL


class CanalMySQL(MySQL):
    class Generator(MySQL.Generator):  # type: ignore[misc,valid-type]
        TRANSFORMS = {
            **MySQL.Generator.TRANSFORMS,
            exp.RegexpLike: lambda self, e: f"{self.sql(e, 'this')} REGEXP {self.sql(e, 'expression')}",
        }


#: Name to pass to sqlglot's ``read=`` / ``dialect=`` / ``.sql()``.
DIALECT: Any = CanalMySQL
