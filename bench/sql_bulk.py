"""Bulk results for bench/sql.sh: every row of a query read into a polars DataFrame over the
PostgreSQL wire (psycopg, a named cursor), the HTTP API's Arrow stream and Arrow Flight SQL (ADBC),
one path at a time. Prints the time, rows/s and the server's peak memory of each, and how many
times the wire's speed each Arrow path reaches. Then the client's own ceiling: ADBC reading the
same Arrow table from a Flight server that only holds it in memory (pyarrow's, no scan, no
encoding of its own), with the client's CPU time, against khoso's answer and the server's CPU time
for it.

usage: sql_bulk.py SERVER_PID PG_PORT HTTP_BASE FLIGHT_PORT ACCOUNT TOKEN YEAR
"""

import os
import subprocess
import sys
import threading
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import polars as pl
import psycopg
import pyarrow.flight
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
    return pl.from_arrow(flight_table(f"grpc://127.0.0.1:{flight_port}", sql, {"username": account, "password": token}))


def flight_table(uri, sql, credentials):
    with flightsql.connect(uri, db_kwargs=credentials, autocommit=True) as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()


CLIENT = """
import resource, sys, time
import adbc_driver_flightsql.dbapi as flightsql
uri, sql, credentials = sys.argv[1], sys.argv[2], dict(zip(["username", "password"], sys.argv[3:]))
with flightsql.connect(uri, db_kwargs=credentials, autocommit=True) as conn:
    with conn.cursor() as cursor:
        used = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        cursor.execute(sql)
        rows = sum(batch.num_rows for batch in cursor.fetch_record_batch())
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
print(rows, seconds, after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
"""


def adbc_batches(uri, sql, *credentials):
    """Rows, seconds and the client's CPU seconds of ADBC reading `sql`'s batches (no DataFrame)."""
    answer = subprocess.run([sys.executable, "-c", CLIENT, uri, sql, *credentials], check=True,
                            capture_output=True, text=True).stdout.split()
    return int(answer[0]), float(answer[1]), float(answer[2])


class HeldTable(pyarrow.flight.FlightServerBase):
    """A Flight server answering every statement with one table held in memory."""

    def __init__(self, table):
        super().__init__("grpc://127.0.0.1:0")
        self.batches = table.combine_chunks().to_batches(max_chunksize=8192)
        self.schema = table.schema

    def get_flight_info(self, context, descriptor):
        if b"CommandStatementQuery" not in descriptor.command:
            raise pyarrow.flight.FlightUnimplementedError("only statements")
        return pyarrow.flight.FlightInfo(self.schema, descriptor, [pyarrow.flight.FlightEndpoint(b"held", [])], -1, -1)

    def do_get(self, context, ticket):
        return pyarrow.flight.GeneratorStream(self.schema, iter(self.batches))


def server_cpu():
    """The server's CPU seconds so far (user and system)."""
    with open(f"/proc/{server}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_ceiling(sql):
    """ADBC's speed and CPU time reading khoso's answer, then the same table from memory."""
    before = server_cpu()
    khoso = adbc_batches(f"grpc://127.0.0.1:{flight_port}", sql, account, token)
    print(f"khoso's CPU time for the answer: {server_cpu() - before:.2f} s")
    held = HeldTable(flight_table(f"grpc://127.0.0.1:{flight_port}", sql, {"username": account, "password": token}))
    threading.Thread(target=held.serve, daemon=True).start()
    ceiling = adbc_batches(f"grpc://127.0.0.1:{held.port}", sql)
    held.shutdown()
    for label, (rows, seconds, cpu) in [("ADBC batches from khoso", khoso), ("ADBC batches from memory", ceiling)]:
        print(f"{label:<32} {rows:>12,} rows {seconds:8.2f} s {rows / seconds:>14,.0f} rows/s  client CPU {cpu:5.2f} s")


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
    print("== the client's own ceiling on this machine (the last query, no DataFrame)")
    client_ceiling(sql)


if __name__ == "__main__":
    main()
