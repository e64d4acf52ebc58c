//! Planners' own tools against `khoso serve --pg-addr`, with the real clients: SQLAlchemy 2 and
//! pandas (through psycopg; what Superset, JupySQL and dbt use) read the catalogue and the
//! tables; psql's describe commands answer. Each leaves the same server answering its pages.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::wire::{cli_rows, free_port, has_psql, psql, psql_script};
use crate::{account, available, python_with, run, stderr, stdout};

/// A warehouse of generated reports (`years`, `seed`) served with the PostgreSQL wire on a free
/// port, and an analyst's token: (its folder, the data, the token, the port, the server).
fn served(years: &str, seed: &str) -> (tempfile::TempDir, std::path::PathBuf, String, String, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.01", years, seed, true);
    let analyst = account(&data, "phan-tich", "analyst", None);
    let port = free_port().to_string();
    let server = Server::start_with(&data, &["--pg-addr", &format!("127.0.0.1:{port}")]);
    (dir, data, analyst, port, server)
}

/// The dashboard's first page answers within two seconds.
fn assert_pages_answer(server: &Server, after: &str) {
    let asked = Instant::now();
    let page = server.get("/");
    assert!(page.contains("<html"), "after {after}: {page}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "after {after} the first page took {:?}",
        asked.elapsed()
    );
}

#[test]
fn sqlalchemy_and_pandas_read_the_catalogue_and_the_tables() {
    let python = python_with("sqlalchemy, pandas, psycopg");
    if !available(python.is_some(), "Python's SQLAlchemy and pandas") {
        return;
    }
    let (_dir, data, analyst, port, server) = served("2023-2024..2024-2025", "5");

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/tools_client.py");
    let output = run(Command::new(python.expect("python"))
        .arg(client)
        .args([&port, "phan-tich", &analyst]));
    assert!(output.status.success(), "{}", stderr(&output));
    let answers: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let texts = |name: &str| -> Vec<String> {
        serde_json::from_value(answers[name].clone()).unwrap_or_else(|e| panic!("{name}: {e}: {}", answers[name]))
    };

    // SQLAlchemy reads the version PostgreSQL's way, and the account is who it is.
    assert_eq!(answers["server_version_info"], serde_json::json!([16, 6]));
    assert_eq!(texts("who"), ["phan-tich", "phan-tich"]);
    // The inspector: the analyst's tables and views, no admin table, nothing of information_schema
    // among them; columns with SQLAlchemy's types; no keys or indexes, as khoso's tables have none.
    assert_eq!(texts("schemas"), ["public"]);
    let tables = texts("tables");
    for table in ["school_reports", "kpi_values", "submissions", "provinces"] {
        assert!(tables.contains(&table.to_string()), "{table} in {tables:?}");
    }
    for table in ["audit_log", "approvals", "columns", "tables"] {
        assert!(!tables.contains(&table.to_string()), "{table} is not in {tables:?}");
    }
    assert_eq!(texts("views"), ["educators", "institutions", "learners"]);
    let types = &answers["columns"];
    assert_eq!(types["school_year"], "TEXT");
    assert_eq!(types["students"], "BIGINT");
    assert_eq!(types["internet_for_teaching"], "BOOLEAN");
    assert_eq!(answers["kpi_columns"]["value"], "DOUBLE_PRECISION");
    assert_eq!(answers["kpi_columns"]["withheld"], "BOOLEAN");
    // Comments: what the report's schema says of each column, in Vietnamese and English.
    assert_eq!(
        answers["comments"]["school_year"],
        "Năm học, dạng 2024-2025 / School year, written 2024-2025"
    );
    assert!(
        answers["table_comment"]
            .as_str()
            .is_some_and(|c| c.contains("one row per school and school year")),
        "{}",
        answers["table_comment"]
    );
    for empty in ["primary_key", "foreign_keys", "indexes", "unique"] {
        assert_eq!(answers[empty], serde_json::json!([]), "{empty}");
    }
    // A savepoint reads as any query; a write is refused as read-only.
    assert_eq!(
        answers["in_savepoint"].to_string(),
        cli_rows(&data, "SELECT count(*) FROM regions")[0][0]
    );
    assert_eq!(answers["write"], "25006");

    // pandas: a whole table, and a query with bound parameters, as the CLI reads them.
    let whole = cli_rows(&data, "SELECT count(*), sum(students) FROM school_reports");
    assert_eq!(answers["table_shape"][0].to_string(), whole[0][0]);
    assert_eq!(answers["table_students"].to_string(), whole[0][1]);
    assert_eq!(answers["table_dtypes"]["students"], "int64");
    let query: Vec<Vec<String>> = answers["query"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| vec![row[0].as_str().expect("code").to_string(), row[1].to_string()])
        .collect();
    assert_eq!(
        query,
        cli_rows(
            &data,
            "SELECT province_code, sum(students) FROM school_reports WHERE school_year = '2024-2025' \
             AND students > 100 GROUP BY province_code ORDER BY province_code"
        )
    );
    assert!(!query.is_empty());
    assert_pages_answer(&server, "SQLAlchemy and pandas");
}

#[test]
fn psql_describes_tables_views_schemas_functions_databases_and_roles() {
    if !has_psql() {
        return;
    }
    let (_dir, _, analyst, port, server) = served("2024-2025..2024-2025", "9");
    let answer = |command: &str| {
        let output = psql(&port, "phan-tich", &analyst, command);
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        stdout(&output)
    };

    assert!(answer("\\d").contains("school_reports|table"));
    assert!(answer("\\d school_reports").contains("students|bigint"));
    let sized = answer("\\dt+");
    assert!(
        sized.contains("school_reports|table") && !sized.contains("audit_log"),
        "{sized}"
    );
    assert!(answer("\\dv").contains("institutions|view"));
    assert_eq!(
        answer("\\dn").lines().next().map(|line| line.split('|').next()),
        Some(Some("public"))
    );
    answer("\\df");
    answer("\\l");
    // Roles: what an account reads as; none is a superuser, nobody signs in as one. Reading
    // pg_roles once ended the whole server (a provider calling itself).
    let roles = answer("\\du");
    assert!(
        roles.contains("admin|Cannot login") && roles.contains("analyst|Cannot login"),
        "{roles}"
    );
    assert_eq!(
        answer("SELECT rolname, rolsuper FROM pg_catalog.pg_roles ORDER BY rolname"),
        "admin|f\nanalyst|f\n"
    );
    // PostgreSQL's version and settings, the account's name, and what a read-only session does
    // nothing for.
    let version = answer("SELECT version()");
    assert!(
        version.starts_with("PostgreSQL 16.6 (khoso ") && version.contains("DataFusion"),
        "{version}"
    );
    assert_eq!(answer("SHOW server_version"), "16.6\n");
    assert_eq!(answer("SHOW server_version_num"), "160006\n");
    assert_eq!(
        answer("SELECT current_user, session_user, user"),
        "phan-tich|phan-tich|phan-tich\n"
    );
    let noops = answer(
        "BEGIN READ ONLY; SAVEPOINT a; SELECT 1; ROLLBACK TO SAVEPOINT a; RELEASE SAVEPOINT a; \
         SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; COMMIT; DISCARD ALL",
    );
    // Each answered with PostgreSQL's command tag.
    assert_eq!(
        noops,
        "BEGIN\nSAVEPOINT\n1\nROLLBACK\nRELEASE\nSET\nCOMMIT\nDISCARD ALL\n"
    );
    let data_types = answer(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'kpi_values' AND column_name IN ('kpi_id', 'value', 'people', 'withheld') \
         ORDER BY column_name",
    );
    assert_eq!(
        data_types,
        "kpi_id|text\npeople|bigint\nvalue|double precision\nwithheld|boolean\n"
    );
    // Descriptions are of the tables the account reads: none of the audit log's for an analyst.
    assert_eq!(
        answer("SELECT count(*) FROM pg_catalog.pg_description WHERE description LIKE '%sign-in and query%'"),
        "0\n"
    );
    assert!(
        answer("SELECT count(*) FROM pg_catalog.pg_description")
            .trim()
            .parse::<u32>()
            .expect("a count")
            > 20
    );
    // Writing stays refused, whatever the transaction statements around it.
    let write = psql(&port, "phan-tich", &analyst, "BEGIN; SAVEPOINT s; DELETE FROM regions");
    assert!(!write.status.success());
    assert!(stderr(&write).contains("read-only"), "{}", stderr(&write));
    assert_pages_answer(&server, "psql's describe commands");
}

/// pgjdbc's jar, as Debian's `libpostgresql-jdbc-java` puts it.
const PGJDBC: &str = "/usr/share/java/postgresql.jar";

#[test]
fn pgjdbc_answers_a_jdbc_tools_first_sync() {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(
        java && Path::new(PGJDBC).exists(),
        "Java and pgjdbc (libpostgresql-jdbc-java)",
    ) {
        return;
    }
    let (_dir, data, analyst, port, server) = served("2024-2025..2024-2025", "9");

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/JdbcClient.java");
    let output = run(Command::new("java")
        .args(["-cp", PGJDBC])
        .arg(client)
        .args([&port, "phan-tich", &analyst]));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let answer = |name: &str| -> String {
        let line = printed
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} in {printed}"));
        assert!(!line.starts_with("ERROR"), "{name}: {line}");
        line.to_string()
    };
    let rows = |name: &str| -> Vec<String> {
        let answer = answer(name);
        answer
            .split(';')
            .filter(|row| !row.is_empty())
            .map(str::to_string)
            .collect()
    };

    assert_eq!(answer("version"), "16.6");
    assert!(rows("schemas").contains(&"public".to_string()));
    let tables = rows("tables");
    for table in ["school_reports,TABLE", "kpi_values,TABLE", "institutions,VIEW"] {
        assert!(tables.contains(&table.to_string()), "{table} in {tables:?}");
    }
    assert!(!tables.iter().any(|t| t.starts_with("audit_log")), "{tables:?}");
    // JDBC types: -5 BIGINT, 12 VARCHAR, 8 DOUBLE, -7 BIT (pgjdbc's boolean).
    let columns = rows("columns");
    for column in ["kpi_id,12,text", "people,-5,int8", "value,8,float8", "withheld,-7,bool"] {
        assert!(columns.contains(&column.to_string()), "{column} in {columns:?}");
    }
    for none in ["primary_keys", "imported_keys", "index_info"] {
        assert_eq!(rows(none), Vec::<String>::new(), "{none}");
    }
    let types = rows("type_info");
    assert!(
        types.contains(&"int8,-5".to_string()) && types.contains(&"text,12".to_string()),
        "{types:?}"
    );
    assert_eq!(
        answer("prepared"),
        cli_rows(
            &data,
            "SELECT count(*) FROM school_reports WHERE province_code = '01' AND students > 100"
        )[0][0]
    );
    assert_eq!(
        answer("cursor"),
        cli_rows(&data, "SELECT count(*) FROM school_reports")[0][0]
    );
    let delete = printed
        .lines()
        .find(|line| line.starts_with("delete\t"))
        .unwrap_or_default();
    assert!(delete.starts_with("delete\tERROR 25006"), "{delete}");
    assert_pages_answer(&server, "pgjdbc's metadata calls");
}

#[test]
fn node_postgres_binds_parameters_and_reads_through_a_cursor() {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node/node_modules");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(
        node && modules.join("pg-cursor").exists(),
        "Node.js with pg and pg-cursor (target/node)",
    ) {
        return;
    }
    let (_dir, data, analyst, port, server) = served("2024-2025..2024-2025", "9");

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/node_client.js");
    let output = run(Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(client)
        .args([&port, "phan-tich", &analyst]));
    assert!(output.status.success(), "{}", stderr(&output));
    let answers: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let expected = cli_rows(
        &data,
        "SELECT count(*), sum(students) FROM school_reports WHERE province_code = '01' AND students > 100",
    );
    assert_eq!(answers["bound"], serde_json::json!(expected[0]));
    let total: u64 = cli_rows(&data, "SELECT count(*) FROM school_reports")[0][0]
        .parse()
        .expect("a count");
    assert_eq!(answers["cursor"]["rows"], total);
    assert_eq!(
        answers["cursor"]["batches"],
        total.div_ceil(100),
        "read 100 rows at a time"
    );
    assert_eq!(answers["write"], "25006");
    assert_pages_answer(&server, "node-postgres");
}

#[test]
fn every_catalogue_table_and_function_is_read_and_the_server_stays_up() {
    if !has_psql() {
        return;
    }
    let (_dir, _, analyst, port, server) = served("2024-2025..2024-2025", "9");
    let listed = psql(
        &port,
        "phan-tich",
        &analyst,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_schema IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let tables: Vec<String> = stdout(&listed).lines().map(str::to_string).collect();
    assert!(tables.len() > 50, "{tables:?}");
    // Every catalogue table read whole, and the catalogue functions called with nulls and
    // with values: an error is an answer, a server gone is not (reading pg_roles once was).
    let mut script: String = tables
        .iter()
        .map(|table| format!("SELECT count(*) FROM {table};\n"))
        .collect();
    for call in [
        "to_regtype(NULL)",
        "to_regtype('int4[]')",
        "json_build_object(NULL, 1)",
        "json_build_object('a')",
        "pg_size_pretty(NULL)",
        "pg_size_pretty(-9223372036854775808)",
        "pg_get_indexdef(NULL, NULL, NULL)",
        "khoso_subscripts(NULL, NULL)",
        "khoso_subscripts(make_array(1, 2), -1)",
        "khoso_expand_array(NULL)",
        "khoso_expand_array(make_array())",
        "khoso_integer_array('{1,x,99999999}')",
        "version()",
    ] {
        script.push_str(&format!("SELECT {call};\n"));
    }
    script.push_str("SELECT 'still here';\n");
    let output = psql_script(&port, "phan-tich", &analyst, &[], script.as_bytes());
    assert!(
        stdout(&output).trim_end().ends_with("still here"),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("server closed the connection"),
        "{}",
        stderr(&output)
    );
    assert_pages_answer(&server, "every catalogue table and function");
}
