//! The work on Apache Ballista: a scheduler and two executors started from khoso's binary on
//! loopback, over a warehouse in the test's S3 server, give the local engine's answers (every
//! KPI by every dimension, planners' queries), keep the functions' limits and the time limit,
//! and an executor killed during a query gives a clear error or the right answer, never a
//! wrong one.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::s3::{Bucket, S3Server};
use crate::{khoso, run, stderr, stdout};

/// One process of the cluster, its log in a file, stopped when dropped.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(command: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("khoso cluster starts");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on, with the next one free too (an executor takes two).
fn free_ports() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16, node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}: {}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and executors over `bucket`'s warehouse.
struct TestCluster {
    scheduler: Node,
    executors: Vec<Node>,
    url: String,
}

impl TestCluster {
    fn start(bucket: &Bucket, dir: &Path, executors: usize) -> Self {
        let port = free_ports();
        let scheduler = Node::start(
            khoso(bucket)
                .args(["cluster", "scheduler", "--executor-timeout", "10", "--bind"])
                .arg(format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "warn,ballista_scheduler=info"),
            dir.join("scheduler.log"),
        );
        wait_for_port(port, &scheduler);
        let url = format!("df://127.0.0.1:{port}");
        let mut cluster = Self {
            scheduler,
            executors: Vec::new(),
            url,
        };
        for i in 0..executors {
            let port = free_ports();
            let executor = Node::start(
                khoso(bucket)
                    .args([
                        "cluster",
                        "executor",
                        "--tasks",
                        "2",
                        "--memory-mb",
                        "512",
                        "--scheduler",
                    ])
                    .arg(&cluster.url)
                    .arg("--bind")
                    .arg(format!("127.0.0.1:{port}")),
                dir.join(format!("executor-{i}.log")),
            );
            wait_for_port(port, &executor);
            cluster.executors.push(executor);
        }
        let registered = crate::eventually(
            || cluster.scheduler.log().matches("register executor request").count(),
            |&n| n >= executors,
        );
        assert!(registered >= executors, "{}", cluster.scheduler.log());
        cluster
    }

    /// `command` sending its queries to the cluster.
    fn on<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("KHOSO_CLUSTER", &self.url)
    }

    fn finished_jobs(&self) -> usize {
        self.scheduler.log().matches("Job finished successfully").count()
    }
}

/// A failed test shows what the cluster's nodes said.
impl Drop for TestCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for node in std::iter::once(&self.scheduler).chain(&self.executors) {
            let log = node.log();
            let tail = &log[log.floor_char_boundary(log.len().saturating_sub(6000))..];
            eprintln!("== {}\n{tail}", node.log.display());
        }
    }
}

/// Two CSV answers are the same: the same rows and texts, numbers equal to 1e-9 relative (a
/// sum's last bits depend on the order the cluster adds in).
fn same_answer(local: &str, cluster: &str) -> Result<(), String> {
    let (local, cluster): (Vec<&str>, Vec<&str>) = (local.lines().collect(), cluster.lines().collect());
    if local.len() != cluster.len() {
        return Err(format!("{} rows here, {} on the cluster", local.len(), cluster.len()));
    }
    for (here, there) in local.iter().zip(&cluster) {
        let (a, b): (Vec<&str>, Vec<&str>) = (here.split(',').collect(), there.split(',').collect());
        let same = a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                    _ => x == y,
                });
        if !same {
            return Err(format!("here {here:?}\nthere {there:?}"));
        }
    }
    Ok(())
}

/// A process whose output is read as it comes (a full pipe would stop it).
struct Running {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("khoso starts");
        let read = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes).ok();
                bytes
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr")));
        Self { child, stdout, stderr }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Its output, failing the test if it has not ended within `limit` (a query the cluster
    /// never finishes).
    fn finish_within(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while self.is_running() {
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("khoso did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Output {
            status: self.child.wait().expect("status"),
            stdout: self.stdout.join().expect("stdout"),
            stderr: self.stderr.join().expect("stderr"),
        }
    }
}

fn within_two_minutes(command: &mut Command) -> Output {
    Running::start(command).finish_within(Duration::from_secs(120))
}

fn answered(output: &Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}", stderr(output));
    stdout(output)
}

/// A warehouse of two school years with learner records, made on disk and copied into a
/// bucket: the same tables, at the same versions, in both places.
fn warehouse_in_both(server: &S3Server, bucket: &Bucket, dir: &Path) -> PathBuf {
    let data = crate::generated_with_learners(dir, "0.02", "14");
    server.upload_folder(bucket, &data, "warehouse");
    data
}

/// The metrics file with another fingerprint: the KPIs are computed again from the tables.
fn metrics_again(dir: &Path) -> PathBuf {
    let built_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("metrics.toml");
    let file = dir.join("metrics.toml");
    std::fs::write(&file, format!("{built_in}\n# the same KPIs, computed again\n")).expect("write");
    file
}

#[test]
fn on_a_cluster_every_kpi_and_planners_queries_answer_as_the_local_engine() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = server.bucket("cluster");
    let data = warehouse_in_both(&server, &bucket, dir.path());
    let metrics = metrics_again(dir.path());
    let cluster = TestCluster::start(&bucket, dir.path(), 2);

    // Every KPI by every dimension: computed here on the folder, and on the cluster from the
    // bucket (the first `kpi` there refreshes every value on the cluster).
    for by in [
        "national",
        "region",
        "province",
        "province_2025",
        "level",
        "ownership",
        "grade",
        "gender",
    ] {
        let args = ["kpi", "--format", "csv", "--by", by];
        let here = answered(&run(khoso(&data).arg("--metrics").arg(&metrics).args(args)), by);
        let there = answered(
            &within_two_minutes(cluster.on(khoso(&bucket).arg("--metrics").arg(&metrics).args(args))),
            by,
        );
        assert!(here.lines().count() > 1, "{by}: {here}");
        if let Err(difference) = same_answer(&here, &there) {
            panic!("KPIs by {by} differ:\n{difference}");
        }
    }
    let after_kpis = cluster.finished_jobs();
    assert!(
        after_kpis >= 8,
        "the refresh's queries ran on the cluster: {after_kpis} jobs"
    );
    let plans = cluster.scheduler.log();
    assert!(
        plans.contains("s3://cluster") || plans.contains("warehouse/tables/school_reports"),
        "the cluster read the tables from the bucket: {}",
        &plans[..plans.len().min(4000)]
    );

    for sql in [
        // A join with a reference table, the merger roll-up to the 34 provinces of 2025.
        "SELECT p.province_2025_code, r.school_year, sum(r.students) AS students, count(*) AS schools \
         FROM school_reports r JOIN provinces p ON p.code = r.province_code AND p.valid_to IS NOT NULL \
         GROUP BY 1, 2 ORDER BY 1, 2",
        // Window functions over an aggregate.
        "SELECT school_year, province_code, students, \
         rank() OVER (PARTITION BY school_year ORDER BY students DESC, province_code) AS place, \
         sum(students) OVER (PARTITION BY school_year) AS national \
         FROM (SELECT school_year, province_code, sum(students) AS students FROM school_reports GROUP BY 1, 2) \
         ORDER BY school_year, place",
        // Learner records (pseudonymised) by grade and gender, with text built by `||`.
        "SELECT grade || '-' || gender AS cell, count(*) AS learners, count(DISTINCT learner_id) AS people \
         FROM learner_records GROUP BY 1 ORDER BY 1",
        // A join of two fact tables and a subquery.
        "SELECT s.province_code, count(*) AS learners FROM learner_records s \
         WHERE s.school_id IN (SELECT school_id FROM school_reports WHERE school_year = '2024-2025') \
         GROUP BY 1 ORDER BY 1",
        // Empty inputs side by side with others: a table without files (teacher records), a
        // filter that is never true, a row of constants.
        "SELECT province_code, count(*) AS n FROM school_reports WHERE 1 = 0 GROUP BY 1 \
         UNION ALL SELECT province_code, count(*) FROM teacher_records GROUP BY 1 \
         UNION ALL SELECT '00', count(*) FROM learner_records \
         UNION ALL SELECT 'all', 1 ORDER BY 1",
        // What Ballista cannot send or run is answered by the node itself: the catalogue, a
        // table's columns, a recursive query, a table function.
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        "DESCRIBE school_reports",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 40) \
         SELECT count(*) FROM school_reports WHERE CAST(province_code AS INT) IN (SELECT n FROM r)",
        "SELECT sum(value) FROM generate_series(1, 10) AS t(value)",
    ] {
        let args = ["sql", "--format", "csv", sql];
        let here = answered(&run(khoso(&data).args(args)), sql);
        let there = answered(&within_two_minutes(cluster.on(khoso(&bucket).args(args))), sql);
        assert!(here.lines().count() > 1, "{sql}: {here}");
        if let Err(difference) = same_answer(&here, &there) {
            panic!("{sql}\ndiffers:\n{difference}");
        }
    }
    assert!(
        cluster.finished_jobs() >= after_kpis + 4,
        "the queries ran on the cluster"
    );

    // A function's limit holds on the executors.
    let refused = within_two_minutes(cluster.on(khoso(&bucket).args([
        "sql",
        "SELECT length(repeat(province_code, 2000000000)) FROM school_reports",
    ])));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("limit"), "{}", stderr(&refused));
}

#[test]
fn on_a_cluster_an_executor_killed_during_a_query_gives_an_error_or_the_right_answer() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = server.bucket("killed");
    let data = warehouse_in_both(&server, &bucket, dir.path());
    let mut cluster = TestCluster::start(&bucket, dir.path(), 2);

    // Long enough to be running when the executor dies: every pair of learners of a school.
    let sql = "SELECT a.grade, count(*) AS pairs, sum(b.grade) AS grades \
               FROM learner_records a JOIN learner_records b ON a.school_id = b.school_id \
               GROUP BY 1 ORDER BY 1";
    // The executor's loss is noticed after its timeout (10 s here), then its tasks run again.
    let args = ["sql", "--timeout", "150", "--format", "csv", sql];
    let here = answered(&run(khoso(&data).args(args)), "the query here");

    // Past its time limit a query is stopped on the cluster too, not only in the client.
    // (Every triple of learners of a school: hours of work.)
    let endless = "SELECT count(*) FROM learner_records a JOIN learner_records b ON a.school_id = b.school_id \
                   JOIN learner_records c ON b.school_id = c.school_id";
    let stopped = within_two_minutes(cluster.on(khoso(&bucket).args(["sql", "--timeout", "8", endless])));
    assert!(!stopped.status.success());
    assert!(stderr(&stopped).contains("was stopped"), "{}", stderr(&stopped));
    let cancelled = crate::eventually(|| cluster.scheduler.log().matches("Job cancelled").count(), |&n| n > 0);
    assert_eq!(cancelled, 1, "the job was cancelled: {}", cluster.scheduler.log());
    // And its tasks stop with it (a join's output yields), leaving the executors to the next job.
    let aborted = crate::eventually(
        || {
            cluster
                .executors
                .iter()
                .map(|e| e.log().matches("Task has been aborted").count())
                .sum::<usize>()
        },
        |&n| n > 0,
    );
    assert!(
        aborted > 0,
        "the job's running task was stopped: {}",
        cluster.executors[0].log()
    );

    let submitted = cluster.scheduler.log().matches("Job submitted").count();
    let mut query = Running::start(cluster.on(khoso(&bucket).args(args)));
    let started = crate::eventually(
        || cluster.scheduler.log().matches("Job submitted").count(),
        |&n| n > submitted,
    );
    assert!(
        started > submitted,
        "the job reached the scheduler: {}",
        cluster.scheduler.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(query.is_running(), "the query still runs when the executor is killed");
    cluster.executors[0].stop();

    let there = query.finish_within(Duration::from_secs(180));
    eprintln!("after the kill: {:?}\n{}", there.status, stderr(&there));
    match there.status.success() {
        true => {
            if let Err(difference) = same_answer(&here, &stdout(&there)) {
                panic!("a wrong answer after the executor died:\n{difference}");
            }
        }
        false => {
            let message = stderr(&there);
            assert!(
                message.contains("the cluster could not run the query"),
                "a clear error: {message}"
            );
        }
    }

    // With no executor left, a query fails with a clear message in bounded time.
    cluster.executors[1].stop();
    let started = Instant::now();
    let alone = within_two_minutes(
        cluster.on(khoso(&bucket).args(["sql", "SELECT count(*) FROM school_reports WHERE students > 1"])),
    );
    assert!(!alone.status.success(), "{}", stdout(&alone));
    let message = stderr(&alone);
    assert!(
        message.contains("the cluster could not run the query") && message.contains("khoso cluster executor"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(120), "{:?}", started.elapsed());

    // With the scheduler gone too, the KPIs are still refreshed: by the process itself.
    cluster.scheduler.stop();
    let metrics = metrics_again(dir.path());
    let args = ["kpi", "--format", "csv", "--by", "province"];
    let here = answered(&run(khoso(&data).arg("--metrics").arg(&metrics).args(args)), "here");
    let alone = within_two_minutes(cluster.on(khoso(&bucket).arg("--metrics").arg(&metrics).args(args)));
    assert!(
        stderr(&alone).contains("the cluster could not refresh the KPIs: this process does"),
        "{}",
        stderr(&alone)
    );
    if let Err(difference) = same_answer(&here, &answered(&alone, "without the cluster")) {
        panic!("KPIs computed without the cluster differ:\n{difference}");
    }
}
