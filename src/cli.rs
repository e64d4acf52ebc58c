//! The command line: what each command takes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// khoso — the education data warehouse for Decision 131/QĐ-TTg.
///
/// Provinces' yearly reports (CSV or Excel) are validated and committed to Delta tables;
/// SQL reads them. Start with `khoso init --sample`, then `khoso sql "SHOW TABLES"`.
#[derive(Debug, Parser)]
#[command(name = "khoso", version, about, long_about)]
pub struct Cli {
    /// Where the warehouse is: a folder, `file:///path`, or `s3://bucket/prefix` on any S3 API
    /// (endpoint and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY…, or --storage-option).
    #[arg(long, global = true, env = "KHOSO_DATA", default_value = "khoso-data")]
    pub data: String,

    /// An object-store setting, KEY=VALUE (repeatable), winning over the AWS variables:
    /// aws_endpoint_url, aws_region, aws_access_key_id, aws_secret_access_key, aws_allow_http…
    #[arg(long = "storage-option", global = true, value_name = "KEY=VALUE", value_parser = key_value)]
    pub storage_options: Vec<(String, String)>,

    /// Run SQL queries and the KPI refresh on a Ballista cluster: its scheduler, df://HOST:PORT
    /// (see `khoso cluster`). Its nodes read the tables from the same --data.
    #[arg(long, global = true, env = "KHOSO_CLUSTER", value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,

    /// The KPI definitions (default: ./metrics.toml if present, else the built-in copy).
    #[arg(long, global = true, env = "KHOSO_METRICS")]
    pub metrics: Option<PathBuf>,

    /// A folder of report schema files (`school.toml`…, as in `ingest/schemas/`) that replace
    /// the built-in ones: a column added or renamed by the ministry is a schema file edited.
    #[arg(long, global = true, env = "KHOSO_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// How log lines look on stderr: `text` for people, `json` (one object a line) for log
    /// collectors. `RUST_LOG` chooses what is logged (default:
    /// `warn,buoyant_kernel=off,deltalake_core=off,ballista_scheduler::display=off,ballista_core::execution_plans::distributed_query=off,khoso=info,dashboard=info,warehouse=info`).
    #[arg(long, global = true, value_enum, default_value_t, env = "KHOSO_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// A configuration file of settings (default: ./khoso.toml when there is one): variables
    /// (`KHOSO_*`) and flags win over it. See `khoso config check`.
    #[arg(long, global = true, env = "KHOSO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty warehouse, or with --sample load the bundled sample reports into it.
    Init(InitArgs),
    /// Validate report files and commit them, each replacing its (kind, province, year) slice.
    Ingest(IngestArgs),
    /// Write an empty report template to fill in Excel.
    Template(TemplateArgs),
    /// Generate synthetic reports, one file per (kind, province, school year).
    Generate(GenerateArgs),
    /// Run a read-only SQL query over the warehouse.
    Sql(SqlArgs),
    /// Check a metrics file: expressions, columns, views, years, ids.
    CheckMetrics(CheckMetricsArgs),
    /// The KPIs of Decision 131: value, target, status, trend and coverage.
    Kpi(KpiArgs),
    /// Figures that look wrong: the flags of metrics.toml's plausibility checks for a school
    /// year (a province), each with the unit, the two values, the rule and any explanation.
    Check(CheckArgs),
    /// Write a province's report for a school year, laid out for A4 (the page
    /// /province/CODE/report of the server, saved to a file: print it to PDF).
    Report(ReportArgs),
    /// Serve the dashboard (loading the sample data first when there is no warehouse yet).
    Serve(ServeArgs),
    /// Accounts of the upload portal: add (prints the token once), list, revoke.
    Users(UsersArgs),
    /// A node of a Ballista cluster reading this warehouse: its scheduler, or an executor.
    Cluster(ClusterArgs),
    /// Table upkeep: compact small files, write checkpoints, and (only with --retain-days)
    /// remove files older versions needed. Safe while the server runs.
    Maintain(MaintainArgs),
    /// Copy the warehouse, at one set of table versions, into a folder or bucket (incremental:
    /// what the last backup there copied is not copied again). Safe while the server runs.
    Backup {
        /// Where: a folder, or s3://bucket/prefix (with the same storage settings as --data).
        #[arg(long, value_name = "DIR|s3://…")]
        to: String,
    },
    /// Rebuild a warehouse at --data (which must not hold one) from a backup.
    Restore {
        /// The backup: a folder, or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|s3://…")]
        from: String,
    },
    /// The configuration: `khoso config check` prints every setting `khoso serve` would run
    /// with, and where each came from (file, variable, flag, default; secrets masked).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the warehouse (every fact row's submission exists, every submission's file is
    /// archived with its SHA-256, every data file is there), or with --backup a backup against
    /// its manifest.
    Verify {
        /// Check this backup instead of the warehouse.
        #[arg(long, value_name = "DIR|s3://…")]
        backup: Option<String>,
    },
}

/// What to do with the configuration.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings `khoso serve` would run with, and where each came from.
    Check,
}

/// `khoso maintain`.
#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// The size compacted files aim at, in MB.
    #[arg(long, default_value_t = warehouse::ops::upkeep::Upkeep::DEFAULT_TARGET_MB, value_parser = clap::value_parser!(u64).range(1..))]
    pub target_mb: u64,
    /// Remove the data files replaced more than this many days ago (at least 1). Versions older
    /// than that can then no longer be read (time travel, slice histories). Default: keep every
    /// version, since published figures and the audit refer to them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub retain_days: Option<u32>,
}

/// `khoso cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// Which node of a cluster to run (until stopped). Every node takes the same --data and
/// storage settings as the servers.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: takes queries (`--cluster df://HOST:PORT`) and hands their stages to the
    /// executors.
    Scheduler {
        /// Address to listen on: this machine only by default; the address of the cluster's
        /// private network for a cluster of several machines (its ports carry no sign-in).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: String,
        /// Seconds without a heartbeat (sent every 5 s) after which an executor is lost: its
        /// work runs again on the others.
        #[arg(long, default_value_t = 30)]
        executor_timeout: u64,
    },
    /// An executor: runs stages, reading the tables from the warehouse's storage.
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long, value_name = "df://HOST:PORT")]
        scheduler: String,
        /// Address of its data service (this machine only by default, as the scheduler's); its
        /// gRPC service takes the next port.
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: String,
        /// The name the other nodes reach it by (default: this machine's address as bound).
        #[arg(long)]
        external_host: Option<String>,
        /// Stages run at once (default: the cores).
        #[arg(long)]
        tasks: Option<usize>,
        /// Memory its stages may hold together, in MB (default: a share of the machine's);
        /// past it they spill to disk or fail cleanly.
        #[arg(long)]
        memory_mb: Option<u64>,
    },
}

/// `khoso users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// What to do with accounts.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Make an account; its token is printed once, alone on the last line.
    Add {
        /// The account's name (e.g. so-gd-ha-noi).
        name: String,
        /// province (uploads for its province), analyst (reads, SQL) or admin (everything).
        #[arg(long)]
        role: String,
        /// The province code a province account speaks for.
        #[arg(long)]
        province: Option<String>,
    },
    /// Every account: name, role, province, made, revoked.
    List,
    /// Revoke an account: its token stops working at once.
    Revoke {
        /// The account's name.
        name: String,
    },
}

/// `khoso serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where the sample reports are, for a first start without a warehouse.
    #[arg(long, env = "KHOSO_SAMPLE_DIR")]
    pub sample_dir: Option<PathBuf>,
    /// Dashboards need a signed-in account too (by default anyone may read them).
    #[arg(long)]
    pub private: bool,
    /// The largest report file accepted, in MB.
    #[arg(long, default_value_t = 50)]
    pub max_upload_mb: u64,
    /// The largest learner or teacher record file accepted, in MB.
    #[arg(long, default_value_t = 1024)]
    pub max_record_upload_mb: u64,
    /// A province's file waits for an admin's approval (on /review) before it reaches the
    /// tables; until then its slice stays on its last approved version.
    #[arg(long)]
    pub require_approval: bool,
    /// Also answer PostgreSQL clients (psql, psycopg, DBeaver) here, e.g. 127.0.0.1:5433: user =
    /// account name, password = its token, read-only.
    #[arg(long)]
    pub pg_addr: Option<String>,
    /// Also answer Arrow Flight SQL clients (ADBC, JDBC, polars, pandas) here, e.g.
    /// 127.0.0.1:5434: results as Arrow record batches; a bearer token, or Basic with the
    /// account's name and token; read-only.
    #[arg(long)]
    pub flight_addr: Option<String>,
    /// Longest a SQL query may run, in seconds (it is cancelled past it).
    #[arg(long, default_value_t = 30)]
    pub query_timeout_s: u64,
    /// Most memory a SQL query may hold, in MB (past it the query spills or fails cleanly).
    #[arg(long, default_value_t = 1024)]
    pub query_memory_mb: usize,
    /// The server's memory ceiling, in MB: every query, download, upload being read and chart
    /// being drawn draws from it, and new work is refused (503, SQLSTATE 53200) rather than let
    /// the server grow past it (default: half the machine's memory).
    #[arg(long)]
    pub max_memory_mb: Option<usize>,
    /// The server is behind a reverse proxy (nginx, a load balancer): a client's address is the
    /// last one of X-Forwarded-For (for the sign-in limits), and X-Forwarded-Proto: https makes
    /// the session cookie Secure. Only with a proxy that sets both.
    #[arg(long)]
    pub behind_proxy: bool,

    /// The key web sessions are signed with: at least 32 characters, the same on every web node
    /// of the warehouse (default: the warehouse's own, made on first use in `secret/`).
    #[arg(long, env = "KHOSO_SESSION_KEY", hide_env_values = true)]
    pub session_key: Option<String>,
}

/// `khoso check-metrics`.
#[derive(Debug, Args)]
pub struct CheckMetricsArgs {
    /// The file to check (default: as --metrics).
    pub file: Option<PathBuf>,
}

/// `khoso check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The school year to check.
    #[arg(long)]
    pub year: ingest::SchoolYear,
    /// One province: its code on that year's list (01, 79, …).
    #[arg(long)]
    pub province: Option<String>,
    /// Only the flags nobody has explained.
    #[arg(long)]
    pub unexplained: bool,
    /// Every flag as a JSON array (with its explanation), instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

/// How to split KPI values.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ByArg {
    /// The whole country.
    #[default]
    National,
    /// The six regions.
    Region,
    /// Provinces as reported (63 up to 2024-2025, 34 after).
    Province,
    /// The 34 provinces of 2025, earlier years rolled up across the merger.
    #[value(name = "province_2025")]
    Province2025,
    /// School level.
    Level,
    /// Public or private.
    Ownership,
    /// Grade (learner records).
    Grade,
    /// Gender (learner records).
    Gender,
}

impl From<ByArg> for warehouse::kpi::metrics::Dimension {
    fn from(by: ByArg) -> Self {
        use warehouse::kpi::metrics::Dimension;
        match by {
            ByArg::National => Dimension::National,
            ByArg::Region => Dimension::Region,
            ByArg::Province => Dimension::Province,
            ByArg::Province2025 => Dimension::Province2025,
            ByArg::Level => Dimension::Level,
            ByArg::Ownership => Dimension::Ownership,
            ByArg::Grade => Dimension::Grade,
            ByArg::Gender => Dimension::Gender,
        }
    }
}

/// `khoso kpi`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct KpiArgs {
    #[command(subcommand)]
    pub explain: Option<KpiCommand>,
    /// One KPI (default: all).
    #[arg(long)]
    pub kpi: Option<String>,
    /// One school year.
    #[arg(long, conflicts_with = "years")]
    pub year: Option<ingest::SchoolYear>,
    /// A range of school years, first..last.
    #[arg(long)]
    pub years: Option<String>,
    /// Split by.
    #[arg(long, value_enum, default_value_t)]
    pub by: ByArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: SqlFormat,
}

/// `khoso kpi …` subcommands.
#[derive(Debug, Subcommand)]
pub enum KpiCommand {
    /// How a figure was computed: its SQL, numerator, denominator, and the submissions behind it.
    Explain(ExplainArgs),
}

/// `khoso kpi explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The KPI.
    pub kpi: String,
    /// A province (as reported in that year); default: national.
    #[arg(long)]
    pub province: Option<String>,
    /// The school year (default: the latest with data).
    #[arg(long)]
    pub year: Option<ingest::SchoolYear>,
}

/// `khoso init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Load the bundled sample reports through the normal ingest path.
    #[arg(long)]
    pub sample: bool,
    /// Where the sample reports are (default: `sample-data` here, else the one built in).
    #[arg(long, env = "KHOSO_SAMPLE_DIR")]
    pub sample_dir: Option<PathBuf>,
}

/// Report kinds on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// General and continuing education schools.
    School,
    /// Universities.
    University,
    /// The national learning-materials repository.
    Content,
    /// Learner records from the national education database.
    Learner,
    /// Teacher records from the national education database.
    Teacher,
}

impl From<KindArg> for ingest::ReportKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::School => ingest::ReportKind::School,
            KindArg::University => ingest::ReportKind::University,
            KindArg::Content => ingest::ReportKind::Content,
            KindArg::Learner => ingest::ReportKind::Learner,
            KindArg::Teacher => ingest::ReportKind::Teacher,
        }
    }
}

/// `khoso ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Report files: .csv (UTF-8 or UTF-16; `,` `;` or tab) or .xlsx.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The report kind of every file; without it, each file's kind is known by its header row
    /// (the kind whose columns it names most), so one command loads files of several kinds.
    #[arg(long)]
    pub kind: Option<KindArg>,
    /// School year of the file (e.g. 2024-2025): fills a missing column, must match a present one.
    #[arg(long)]
    pub year: Option<ingest::SchoolYear>,
    /// Province code of the file (e.g. 01): fills a missing column, must match a present one.
    #[arg(long)]
    pub province: Option<String>,
    /// Validate and report, but commit nothing; with a warehouse, also warn where a file
    /// disagrees with what it holds (records against schools' reports and back, KPIs that move).
    #[arg(long)]
    pub dry_run: bool,
    /// Write every problem found to this CSV file.
    #[arg(long)]
    pub errors_out: Option<PathBuf>,
    /// Who is uploading (recorded in `submissions`).
    #[arg(long, env = "USER", default_value = "cli")]
    pub user: String,
    /// Worksheet of an .xlsx file (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
}

/// `khoso report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The province's code: of the 34 provinces of 1 July 2025, or with --list province of the
    /// 63 as reported up to 2024-2025.
    #[arg(long)]
    pub province: String,
    /// The school year (default: the latest with figures).
    #[arg(long)]
    pub year: Option<String>,
    /// `province` for a province of the 63 as reported; default: the 34 of 2025.
    #[arg(long)]
    pub list: Option<String>,
    /// Language.
    #[arg(long, default_value = "vi", value_parser = str::parse::<ingest::Lang>)]
    pub lang: ingest::Lang,
    /// The HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Template file formats.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum TemplateFormat {
    /// CSV (UTF-8 with a byte-order mark, so Excel shows Vietnamese).
    #[default]
    Csv,
    /// Excel workbook with an explanation sheet.
    Xlsx,
}

/// `khoso template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The report kind.
    pub kind: KindArg,
    /// Header language.
    #[arg(long, default_value = "vi", value_parser = str::parse::<ingest::Lang>)]
    pub lang: ingest::Lang,
    /// File format.
    #[arg(long, value_enum, default_value_t)]
    pub format: TemplateFormat,
    /// The school year the template is for: a column added in a later year is left out
    /// (default: the newest template, every column).
    #[arg(long, value_parser = str::parse::<ingest::SchoolYear>)]
    pub year: Option<ingest::SchoolYear>,
    /// Output file (default: KIND-template-LANG.csv|xlsx here; `-` writes CSV to stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `khoso generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Size relative to the real national system (1.0 ≈ 27,000 school rows and 240 universities a year).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// School years, first..last (e.g. 2021-2022..2025-2026).
    #[arg(long, default_value = "2021-2022..2025-2026")]
    pub years: String,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 131)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// The kinds to write (repeat the flag, or separate with commas); learner and teacher
    /// records agree with the school reports of the same seed and scale.
    #[arg(long = "kind", value_delimiter = ',', default_values = ["school", "university", "content"])]
    pub kinds: Vec<KindArg>,
    /// Write only the files of this school year and later; the years before it still shape
    /// the data, so the files equal those of a run that writes every year.
    #[arg(long)]
    pub write_from: Option<String>,
}

/// SQL output formats.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum SqlFormat {
    /// Aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON array of objects.
    Json,
}

/// `khoso sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (SELECT, WITH, EXPLAIN, SHOW or DESCRIBE).
    pub query: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: SqlFormat,
    /// Read a table at an earlier version (time travel), e.g. --at school_reports=3; repeatable.
    #[arg(long, value_parser = parse_pin)]
    pub at: Vec<(String, u64)>,
    /// Read as an account of this role would: `analyst` cannot read the audit log and the
    /// review decisions. Whoever runs the CLI holds the data directory, so the default is admin.
    #[arg(long, value_enum, default_value_t)]
    pub role: ReaderArg,
    /// Longest the query may run, in seconds; past it, it is stopped (on a cluster too).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// A line of text per event.
    #[default]
    Text,
    /// A JSON object per event.
    Json,
}

/// The role a `khoso sql` query reads as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReaderArg {
    /// Every table.
    #[default]
    Admin,
    /// The tables an analyst account reads.
    Analyst,
}

impl From<ReaderArg> for warehouse::people::rights::Role {
    fn from(reader: ReaderArg) -> Self {
        match reader {
            ReaderArg::Admin => warehouse::people::rights::Role::Admin,
            ReaderArg::Analyst => warehouse::people::rights::Role::Analyst,
        }
    }
}

fn parse_pin(text: &str) -> Result<(String, u64), String> {
    let (table, version) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write TABLE=VERSION, e.g. school_reports=3"))?;
    let version = version
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{version:?} is not a table version number"))?;
    Ok((table.trim().to_string(), version))
}
