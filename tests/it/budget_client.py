"""Work on the wire that tries to outlive its budget, against `khoso serve --pg-addr`, with psycopg 3.

Usage: python budget_client.py SCENARIO PORT USER TOKEN [SECONDS]

Scenarios:
  cursor    DECLARE a cursor whose query never ends, FETCH its first row, keep the connection
            SECONDS seconds, then FETCH again.
  cursors   DECLARE cursors one after another on one connection until one is refused.
  unread    send a query with a parameter (Execute with max_rows = 0) whose rows never end, and
            read nothing for SECONDS seconds.
  fetch_all DECLARE a cursor over rows that never end and FETCH ALL.
  cancel    run a query that never ends and cancel it (CancelRequest) after a second.
  prepared  prepare statements under new names, none closed, until one is refused.

Prints one JSON object: what happened (rows, or the error and its SQLSTATE) and how long it took.
The Rust test (budget.rs) decides what is right.
"""

import json
import sys
import threading
import time

import psycopg

ENDLESS = (
    "SELECT sum(a.n * b.n) AS n FROM generate_series(1, 1000000) a(n), generate_series(1, 1000000) b(n)"
)
ENDLESS_ROWS = "SELECT n, repeat('x', 200) AS padding FROM generate_series(1, 1000000000) t(n) WHERE n > %s"


def connect(port, user, token):
    return psycopg.connect(
        host="127.0.0.1", port=int(port), user=user, password=token, dbname="khoso", connect_timeout=10
    )


def outcome(action):
    started = time.monotonic()
    try:
        rows = action()
        answer = {"rows": len(rows) if isinstance(rows, list) else rows}
    except psycopg.Error as error:
        answer = {"error": str(error).strip(), "sqlstate": error.sqlstate}
    answer["seconds"] = round(time.monotonic() - started, 3)
    return answer


def main() -> None:
    scenario, port, user, token = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    conn = connect(port, user, token)
    answers = {}
    if scenario == "cursor":
        cur = conn.cursor()
        answers["declare"] = outcome(lambda: cur.execute(f"DECLARE c CURSOR FOR SELECT 1 AS n UNION ALL {ENDLESS}") and 0)
        answers["first"] = outcome(lambda: cur.execute("FETCH 1 FROM c").fetchall())
        time.sleep(seconds)
        answers["after"] = outcome(lambda: cur.execute("FETCH 1 FROM c").fetchall())
    elif scenario == "cursors":
        cur = conn.cursor()
        declared = 0
        refusal = None
        for i in range(40):
            try:
                cur.execute(f"DECLARE c{i} CURSOR FOR SELECT 1 AS n UNION ALL {ENDLESS}")
                declared += 1
            except psycopg.Error as error:
                refusal = {"error": str(error).strip(), "sqlstate": error.sqlstate}
                break
        answers["declared"] = declared
        answers["refusal"] = refusal
        time.sleep(seconds)
    elif scenario == "unread":
        conn.pgconn.send_query_params(ENDLESS_ROWS.replace("%s", "$1").encode(), [b"0"])
        conn.pgconn.flush()
        time.sleep(seconds)
        answers["sent"] = True
    elif scenario == "fetch_all":
        cur = conn.cursor()
        cur.execute(f"DECLARE c CURSOR FOR {ENDLESS_ROWS.replace('%s', '0')}")
        answers["fetch_all"] = outcome(lambda: cur.execute("FETCH ALL FROM c").fetchall())
    elif scenario == "cancel":
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        answers["cancelled"] = outcome(lambda: conn.execute(ENDLESS).fetchall())
        timer.cancel()
        conn.rollback()
        answers["after"] = outcome(lambda: conn.execute("SELECT 1").fetchall())
    elif scenario == "prepared":
        prepared = 0
        refusal = None
        for i in range(1500):
            result = conn.pgconn.prepare(f"s{i}".encode(), b"SELECT 1 AS one")
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                refusal = {"error": result.error_message.decode().strip(), "sqlstate": result.error_field(
                    psycopg.pq.DiagnosticField.SQLSTATE).decode()}
                break
            prepared += 1
        answers["prepared"] = prepared
        answers["refusal"] = refusal
        answers["after"] = outcome(lambda: conn.execute("SELECT 1").fetchall())
    else:
        raise SystemExit(f"no scenario {scenario}")
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
