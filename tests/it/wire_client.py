"""A planner's Python session against `khoso serve --pg-addr`, with psycopg 3.

Usage: python wire_client.py PORT USER TOKEN

Runs parameterised queries (bound by the server: psycopg uses the extended protocol), a named
(server-side) cursor, the catalog queries DBeaver sends when it opens a connection, a write that
must be refused and a 10 MB query text. Prints one JSON object: for each check, its rows (every
value as text) or its error and SQLSTATE. The Rust test (wire.rs) decides what is right.
"""

import json
import sys

import psycopg


def main() -> None:
    port, user, token = sys.argv[1:4]
    conn = psycopg.connect(
        host="127.0.0.1",
        port=int(port),
        user=user,
        password=token,
        dbname="khoso",
        connect_timeout=10,
    )
    answers = {}

    def check(name, sql, params=None, cursor_name=None):
        try:
            with conn.cursor(name=cursor_name) if cursor_name else conn.cursor() as cur:
                cur.execute(sql, params)
                if cursor_name:
                    rows = cur.fetchmany(100) + cur.fetchall()
                else:
                    rows = cur.fetchall()
            answers[name] = {"rows": [[None if v is None else str(v) for v in row] for row in rows]}
        except psycopg.Error as error:
            answers[name] = {"error": str(error), "sqlstate": error.sqlstate}
        conn.rollback()

    check(
        "province_year",
        "SELECT count(*), sum(students) FROM school_reports WHERE province_code = %s AND school_year = %s",
        ("01", "2024-2025"),
    )
    check("students_over", "SELECT count(*) FROM school_reports WHERE students > %s", (500,))
    check(
        "typed",
        "SELECT %s::text AS t, %s::bigint AS b, %s::double precision AS f, %s::date AS d",
        ("xã Hòa Bình", 5, 1.5, "2025-01-01"),
    )
    check(
        "any_year",
        "SELECT school_year, sum(students) FROM school_reports WHERE school_year = ANY(%s) "
        "GROUP BY school_year ORDER BY school_year",
        (["2023-2024", "2024-2025"],),
    )
    check(
        "named_cursor",
        "SELECT school_id FROM school_reports WHERE province_code = %s ORDER BY school_id",
        ("01",),
        cursor_name="schools",
    )
    check("write", "DELETE FROM regions")
    # What DBeaver asks on connecting and when a table is opened in its navigator.
    check("version", "SELECT version()")
    check("session", "SELECT current_schema()")
    check("search_path", "SHOW search_path")
    check(
        "namespaces",
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n "
        "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 "
        "AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    )
    check(
        "relations",
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'v') ORDER BY c.relname",
        ("public",),
    )
    check(
        "attributes",
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = %s AND a.attnum > 0 ORDER BY a.attnum",
        ("provinces",),
    )
    check(
        "tables",
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'public' ORDER BY table_name",
    )
    check(
        "columns",
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        ("school_reports",),
    )
    check("types", "SELECT typname FROM pg_catalog.pg_type WHERE typname IN ('int8', 'text') ORDER BY typname")
    check("huge", "SELECT 1 -- " + "x" * (10 * 1024 * 1024))
    check("after_huge", "SELECT 1 + 1")
    # Connections left idle after their queries (their last portal kept) hold none of the
    # account's query slots.
    idle = [
        psycopg.connect(host="127.0.0.1", port=int(port), user=user, password=token, dbname="khoso", autocommit=True)
        for _ in range(2)
    ]
    for other in idle:
        other.execute("SELECT %s::BIGINT", (1,)).fetchall()
    check("after_idle", "SELECT 3")
    for other in idle:
        other.close()
    conn.close()
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
