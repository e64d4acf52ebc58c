"""Clients for bench/sql.sh: planners' queries over the PostgreSQL wire protocol (psycopg) and the
HTTP API, from several accounts at once (each account may run two queries at a time).

Usage: python sql_clients.py PG_PORT HTTP_BASE SECONDS ACCOUNT=TOKEN [ACCOUNT=TOKEN ...]

Prints, for each query and path, queries per second and p50/p95/p99 latency, then the time to
read every row of school_reports over each path.
"""

import json
import sys
import threading
import time
import urllib.request

import psycopg

QUERIES = {
    "point (one province, bound parameters)": (
        "SELECT count(*), sum(students) FROM school_reports WHERE province_code = %s AND school_year = %s",
        ("79", "2024-2025"),
    ),
    "KPI by province (aggregate of every school row)": (
        "SELECT province_2025_code, sum(students_online_ready) * 1.0 / sum(students) AS share "
        "FROM school_reports WHERE school_year = %s GROUP BY 1 ORDER BY 1",
        ("2024-2025",),
    ),
    "kpi_values of a year": (
        "SELECT kpi_id, dimension, unit, value, status FROM kpi_values WHERE school_year = %s",
        ("2024-2025",),
    ),
}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def literal(sql, params):
    """The query with its parameters written in, for the HTTP API."""
    return sql % tuple("'" + str(p).replace("'", "''") + "'" for p in params)


def run_clients(make_call, accounts, seconds):
    latencies, errors = [], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(account, token):
        call = make_call(account, token)
        own = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                call()
            except Exception as error:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(str(error)[:120])
                continue
            own.append(time.perf_counter() - started)
        with lock:
            latencies.extend(own)

    threads = [
        threading.Thread(target=client, args=(account, token))
        for account, token in accounts
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def report(label, latencies, errors, seconds):
    if not latencies:
        print(f"{label:<62} no answer; errors: {errors[:3]}")
        return
    print(
        f"{label:<62} {len(latencies) / seconds:8.1f} q/s  p50 {percentile(latencies, 0.5) * 1000:7.1f} ms"
        f"  p95 {percentile(latencies, 0.95) * 1000:7.1f} ms  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms"
        + (f"  errors {len(errors)}: {errors[0]}" if errors else "")
    )


def main():
    pg_port, http_base, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    accounts = [pair.split("=", 1) for pair in sys.argv[4:]]

    def wire_call(sql, params):
        def make(account, token):
            conn = psycopg.connect(
                host="127.0.0.1", port=pg_port, user=account, password=token, dbname="khoso", autocommit=True
            )
            return lambda: conn.execute(sql, params).fetchall()

        return make

    def http_call(sql, params):
        body = literal(sql, params).encode()

        def make(_account, token):
            def call():
                request = urllib.request.Request(
                    http_base + "/api/v1/sql",
                    data=body,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
                with urllib.request.urlopen(request) as answer:
                    json.load(answer)

            return call

        return make

    print(f"== {len(accounts)} accounts x 2 clients, {seconds:.0f} s per query and path")
    for label, (sql, params) in QUERIES.items():
        report(f"wire  {label}", *run_clients(wire_call(sql, params), accounts, seconds), seconds)
        report(f"http  {label}", *run_clients(http_call(sql, params), accounts, seconds), seconds)

    account, token = accounts[0]
    conn = psycopg.connect(host="127.0.0.1", port=pg_port, user=account, password=token, dbname="khoso")
    started = time.perf_counter()
    with conn.cursor(name="every_row") as cursor:
        cursor.execute("SELECT * FROM school_reports")
        rows = sum(len(batch) for batch in iter(lambda: cursor.fetchmany(10_000), []))
    wire_seconds = time.perf_counter() - started
    conn.close()
    started = time.perf_counter()
    request = urllib.request.Request(
        http_base + "/api/v1/sql",
        data=b"SELECT * FROM school_reports",
        headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"},
    )
    with urllib.request.urlopen(request) as answer:
        size = sum(len(chunk) for chunk in iter(lambda: answer.read(1 << 20), b""))
    http_seconds = time.perf_counter() - started
    print(f"== every row of school_reports ({rows:,} rows)")
    print(f"wire  named cursor, fetchmany(10000)   {wire_seconds:6.2f} s  {rows / wire_seconds:10,.0f} rows/s")
    print(f"http  CSV download ({size / 1e6:.1f} MB)          {http_seconds:6.2f} s  {rows / http_seconds:10,.0f} rows/s")


if __name__ == "__main__":
    main()
