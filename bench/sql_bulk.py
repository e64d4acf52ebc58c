"""Bulk results for bench/sql.sh: every row of a query read into a polars DataFrame over the
PostgreSQL wire (psycopg, a named cursor), the HTTP API's Arrow stream and Arrow Flight SQL (ADBC),
one path at a time. Prints the time, rows/s and the server's peak memory of each, and how many
times the wire's speed each Arrow path reaches.

usage: sql_bulk.py SERVER_PID PG_PORT HTTP_BASE FLIGHT_PORT ACCOUNT TOKEN YEAR
"""

import sys
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import polars as pl
import psycopg
import pyarrow.ipc

server, pg_port, http_base, flight_port, account, token, year = sys.argv[1:8]

QUERIES = {
    "every row of school_reports": "SELECT * FROM school_reports",
    f"every learner record of {year}": f"SELECT * FROM learner_records WHERE school_year = '{year}'",
}


def reset_peak():
    """Starts the server's peak memory again from what it holds now (Linux's clear_refs)."""
    try:
        with open(f"/proc/{server}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_mb():
    with open(f"/proc/{server}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


def wire(sql):
    with psycopg.connect(host="127.0.0.1", port=int(pg_port), user=account, password=token, dbname="khoso") as conn:
        with conn.cursor(name="bulk") as cursor:
            cursor.execute(sql)
            frames, columns = [], None
            while rows := cursor.fetchmany(100_000):
                columns = columns or [column.name for column in cursor.description]
                frames.append(pl.DataFrame(rows, schema=columns, orient="row"))
    return pl.concat(frames) if frames else pl.DataFrame()


def http_arrow(sql):
    request = urllib.request.Request(
        http_base + "/api/v1/sql",
        data=sql.encode(),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.apache.arrow.stream"},
    )
    with urllib.request.urlopen(request) as answer:
        return pl.from_arrow(pyarrow.ipc.open_stream(answer).read_all())


def flight(sql):
    uri = f"grpc://127.0.0.1:{flight_port}"
    with flightsql.connect(uri, db_kwargs={"username": account, "password": token}, autocommit=True) as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return pl.from_arrow(cursor.fetch_arrow_table())


def main():
    resettable = reset_peak()
    for label, sql in QUERIES.items():
        print(f"== {label} into a polars DataFrame")
        speeds = {}
        for path, read in [("wire  (psycopg, named cursor)", wire), ("http  (Arrow IPC stream)", http_arrow),
                           ("flight (ADBC Flight SQL)", flight)]:
            reset_peak()
            started = time.perf_counter()
            frame = read(sql)
            seconds = time.perf_counter() - started
            speeds[path] = frame.height / seconds
            peak = f"server peak {peak_mb():6,} MB" if resettable else "server peak n/a"
            print(f"{path:<32} {frame.height:>12,} rows {seconds:8.2f} s {speeds[path]:>14,.0f} rows/s  {peak}")
            del frame
        wire_speed = next(iter(speeds.values()))
        for path, speed in list(speeds.items())[1:]:
            print(f"{path:<32} {speed / wire_speed:6.1f} x the wire")


if __name__ == "__main__":
    main()
