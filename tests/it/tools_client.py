"""A planner's tools against `khoso serve --pg-addr`: SQLAlchemy 2 with psycopg (what Superset,
JupySQL and dbt's PostgreSQL adapters use) and pandas through it.

Usage: python tools_client.py PORT USER TOKEN

Reads the catalogue with SQLAlchemy's inspector, a table with pandas.read_sql_table, a query with
bound parameters with pandas.read_sql_query, runs a savepoint inside a transaction as SQLAlchemy's
nested transactions do, and tries a write. Prints one JSON object; the Rust test (tools.rs)
decides what is right.
"""

import json
import sys

import pandas as pd
import sqlalchemy as sa


def main() -> None:
    port, user, token = sys.argv[1:4]
    engine = sa.create_engine(f"postgresql+psycopg://{user}:{token}@127.0.0.1:{port}/khoso")
    answers = {}
    with engine.connect() as conn:
        answers["server_version_info"] = list(engine.dialect.server_version_info)
        inspector = sa.inspect(conn)
        answers["schemas"] = inspector.get_schema_names()
        answers["tables"] = sorted(inspector.get_table_names())
        answers["views"] = sorted(inspector.get_view_names())
        answers["columns"] = {
            column["name"]: type(column["type"]).__name__ for column in inspector.get_columns("school_reports")
        }
        answers["kpi_columns"] = {
            column["name"]: type(column["type"]).__name__ for column in inspector.get_columns("kpi_values")
        }
        answers["comments"] = {
            column["name"]: column["comment"] for column in inspector.get_columns("school_reports")
        }
        answers["table_comment"] = inspector.get_table_comment("school_reports")["text"]
        answers["primary_key"] = inspector.get_pk_constraint("school_reports")["constrained_columns"]
        answers["foreign_keys"] = inspector.get_foreign_keys("school_reports")
        answers["indexes"] = inspector.get_indexes("school_reports")
        answers["unique"] = inspector.get_unique_constraints("school_reports")
        answers["who"] = list(conn.execute(sa.text("SELECT current_user, session_user")).one())
        # SQLAlchemy's nested transaction: SAVEPOINT, then RELEASE SAVEPOINT.
        with conn.begin_nested():
            answers["in_savepoint"] = conn.execute(sa.text("SELECT count(*) FROM regions")).scalar()
        conn.rollback()
        try:
            conn.execute(sa.text("DELETE FROM regions"))
            answers["write"] = "allowed"
        except sa.exc.DBAPIError as error:
            answers["write"] = getattr(error.orig, "sqlstate", str(error.orig))
        conn.rollback()
    table = pd.read_sql_table("school_reports", engine)
    answers["table_shape"] = list(table.shape)
    answers["table_students"] = int(table["students"].sum())
    answers["table_dtypes"] = {name: str(dtype) for name, dtype in table.dtypes.items()}
    query = pd.read_sql_query(
        sa.text(
            "SELECT province_code, sum(students) AS students FROM school_reports "
            "WHERE school_year = :year AND students > :least GROUP BY province_code ORDER BY province_code"
        ),
        engine,
        params={"year": "2024-2025", "least": 100},
    )
    answers["query"] = [[row.province_code, int(row.students)] for row in query.itertuples()]
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
