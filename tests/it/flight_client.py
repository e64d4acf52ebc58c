"""An Arrow Flight SQL client as a planner would run it: ADBC's Flight SQL driver from PyPI,
through its DB-API, with pandas and polars on top. Prints what it read as one JSON object.

usage: flight_client.py PORT ACCOUNT TOKEN YEAR PROVINCE_ACCOUNT PROVINCE_TOKEN
"""

import json
import sys
import threading

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import polars as pl
import pyarrow
import pyarrow.flight as flight

port, account, token, year, province_account, province_token = sys.argv[1:7]
uri = f"grpc://127.0.0.1:{port}"
answers = {}


def failure(work):
    """The error `work` raises, as its class and message (None when it raised nothing)."""
    try:
        work()
    except adbc_driver_manager.Error as error:
        return {"kind": type(error).__name__, "message": str(error)}
    return None


# Signed in with the account's name and token (a Basic handshake; the driver keeps the bearer
# token it is given for the calls that follow).
with flightsql.connect(uri, db_kwargs={"username": account, "password": token}, autocommit=True) as conn:
    info = conn.adbc_get_info()
    answers["vendor"] = info.get("vendor_name")
    answers["vendor_version"] = info.get("vendor_version")

    # The catalogue: catalogs, schemas, tables with their kinds and columns.
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = {}
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                name = f'{catalog["catalog_name"]}.{schema["db_schema_name"]}.{table["table_name"]}'
                tables[name] = {
                    "type": table["table_type"],
                    "columns": [c["column_name"] for c in table["table_columns"] or []],
                }
    answers["tables"] = tables
    answers["table_types"] = sorted(conn.adbc_get_table_types())
    schema = conn.adbc_get_table_schema("school_reports", db_schema_filter="public")
    answers["school_reports_schema"] = {field.name: str(field.type) for field in schema}

    with conn.cursor() as cur:
        # Every learner record of a year, as Arrow.
        cur.execute(f"SELECT * FROM learner_records WHERE school_year = '{year}'")
        records = cur.fetch_arrow_table()
        answers["records"] = {
            "rows": records.num_rows,
            "columns": records.column_names,
            "provinces": len(set(records.column("province_code").to_pylist())),
        }

        # A query with parameters, written with ? (the DB-API's style) and with $1.
        cur.execute(
            "SELECT count(*) AS n, sum(students) AS students FROM school_reports "
            "WHERE school_year = ? AND students > ?",
            (year, 100),
        )
        answers["bound_qmark"] = cur.fetchone()
        cur.execute("SELECT count(*) AS n FROM school_reports WHERE school_year = $1", (year,))
        answers["bound_dollar"] = cur.fetchone()
        # The same prepared statement run again with other values.
        cur.execute("SELECT count(*) AS n FROM school_reports WHERE school_year = $1", ("1999-2000",))
        answers["bound_again"] = cur.fetchone()

        # pandas and polars on the same connection.
        frame = cur.execute("SELECT province_code, students FROM school_reports WHERE school_year = ?", (year,))
        answers["pandas_rows"] = len(cur.fetch_df())
        polars_frame = pl.read_database(
            f"SELECT province_code, sum(students) AS students FROM school_reports "
            f"WHERE school_year = '{year}' GROUP BY province_code",
            connection=conn,
        )
        answers["polars"] = {"rows": polars_frame.height, "students": int(polars_frame["students"].sum())}

        # Writes are refused, whichever call carries them.
        answers["delete"] = failure(lambda: cur.execute("DELETE FROM school_reports"))
        answers["update"] = failure(lambda: cur.adbc_statement.set_sql_query("DROP TABLE school_reports")
                                    or cur.adbc_statement.execute_update())
        answers["set"] = failure(lambda: cur.execute("SET datafusion.execution.batch_size = 1"))
        # An admin table is not there for an analyst.
        answers["audit_log"] = failure(lambda: cur.execute("SELECT * FROM audit_log"))
        # A query past its time limit stops.
        answers["slow"] = failure(
            lambda: (
                cur.execute(
                    "SELECT count(*) FROM (SELECT grade FROM learner_records) a, "
                    "(SELECT grade FROM learner_records) b WHERE a.grade <> b.grade"
                ),
                cur.fetchall(),
            )
        )
        cur.execute("SELECT 'still here' AS answer")
        answers["after"] = cur.fetchone()[0]

# A wrong token is refused, with a name or as a bearer token.
answers["wrong_token"] = failure(
    lambda: flightsql.connect(uri, db_kwargs={"username": account, "password": token + "x"}).close()
)


def bearer_query():
    options = {"adbc.flight.sql.authorization_header": f"Bearer {token}x"}
    with flightsql.connect(uri, db_kwargs=options) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()


answers["wrong_bearer"] = failure(bearer_query)
# A province account uploads; it does not query.
answers["province"] = failure(
    lambda: flightsql.connect(uri, db_kwargs={"username": province_account, "password": province_token}).close()
)


def field(number, data):
    """A length-delimited protobuf field."""
    length, size = b"", len(data)
    while True:
        byte = size & 0x7F
        size >>= 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + data


def any_message(kind, value):
    """A protobuf `Any` holding `value` (the bytes of a Flight SQL message of `kind`)."""
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{kind}".encode()
    return field(1, url) + field(2, value)


def statement_ticket(handle):
    return flight.Ticket(any_message("TicketStatementQuery", field(1, handle)))


# Calls no honest client makes, with the analyst's bearer token: each is refused and the server
# goes on.
raw = flight.FlightClient(uri)
options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
hostile = {}
for name, ticket in {
    "random_ticket": flight.Ticket(bytes(range(256)) * 4),
    "foreign_handle": statement_ticket(b"not a handle of khoso"),
    "forged_delete": statement_ticket(b"khoso-statement-1\n" + (15).to_bytes(8, "little") + b"DELETE FROM kpi"),
    "forged_admin": statement_ticket(b"khoso-statement-1\n" + (23).to_bytes(8, "little") + b"SELECT * FROM audit_log"),
    "forged_length": statement_ticket(b"khoso-statement-1\n" + (2**63).to_bytes(8, "little") + b"SELECT 1"),
}.items():
    try:
        raw.do_get(ticket, options).read_all()
        hostile[name] = None
    except pyarrow.ArrowException as error:
        hostile[name] = type(error).__name__ + ": " + str(error).splitlines()[0]
try:
    list(raw.do_action(flight.Action("DropEverything", b""), options))
    hostile["unknown_action"] = None
except pyarrow.ArrowException as error:
    hostile["unknown_action"] = type(error).__name__
answers["hostile"] = hostile


def command(sql):
    return flight.FlightDescriptor.for_command(
        any_message("CommandStatementQuery", field(1, sql.encode()))
    )


# Three long statements of one account at once: two run, the third is refused.
slow = (
    "SELECT count(*) FROM (SELECT grade FROM learner_records) a, "
    "(SELECT grade FROM learner_records) b WHERE a.grade <> b.grade"
)
ticket = raw.get_flight_info(command(slow), options).endpoints[0].ticket
outcomes = []


def redeem():
    try:
        raw.do_get(ticket, options).read_all()
        outcomes.append("answered")
    except pyarrow.ArrowException as error:
        outcomes.append(str(error).splitlines()[0])


threads = [threading.Thread(target=redeem) for _ in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
answers["three_at_once"] = outcomes

print(json.dumps(answers, default=str))
