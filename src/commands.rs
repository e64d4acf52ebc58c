//! What each command does: argument handling and printing around the library crates.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ingest::{Problem, ReportKind, SchoolYear, SliceHint, ValidatedReport};
use warehouse::intake::steps::{Delivery, Intent, Outcome};
use warehouse::kpi::metrics::{Dimension, Metrics};
use warehouse::people::accounts::Accounts;
use warehouse::people::rights::Actor;
use warehouse::place::storage::Storage;
use warehouse::query::cluster::{Cluster, ExecutorPlace};
use warehouse::query::guard::QueryLimits;
use warehouse::{OutputFormat, RecordBatch, TableVersions, Warehouse};

use crate::cli::{
    Cli, ClusterCommand, Command, ConfigCommand, ExplainArgs, GenerateArgs, IngestArgs, InitArgs, KpiArgs, KpiCommand,
    MaintainArgs, ReportArgs, ServeArgs, SqlArgs, SqlFormat, TemplateArgs, TemplateFormat, UsersCommand,
};

/// Exit code when the input is at fault (a file with problems, a refused query).
const INVALID_INPUT: u8 = 2;

/// Problems shown on the terminal per file; all of them go to `--errors-out`.
const PROBLEMS_SHOWN: usize = 200;

/// Runs a command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let metrics_file = cli.metrics.as_deref();
    let data = &Place {
        location: cli.data.clone(),
        options: cli.storage_options.clone(),
        cluster: cli.cluster.as_deref().map(Cluster::parse).transpose()?,
    };
    match cli.command {
        Command::Template(args) => template(args),
        Command::Generate(args) => generate(args),
        Command::CheckMetrics(args) => check_metrics(args.file.as_deref().or(metrics_file)).await,
        // Everything that reads the warehouse needs valid KPIs: refuse to start without them.
        Command::Init(args) => init(data, load_metrics(metrics_file).await?, args).await,
        Command::Ingest(args) => ingest_command(data, load_metrics(metrics_file).await?, args).await,
        Command::Sql(args) => sql(&open(data, metrics_file).await?, args).await,
        Command::Kpi(args) => kpi(&open(data, metrics_file).await?, args).await,
        Command::Serve(args) => serve(data, load_metrics(metrics_file).await?, args).await,
        Command::Report(args) => report(open(data, metrics_file).await?, args).await,
        Command::Users(args) => users(data, args.command).await,
        Command::Cluster(args) => cluster_node(data, args.command).await,
        Command::Maintain(args) => maintain(data, args).await,
        Command::Backup { to } => backup(data, metrics_file, &to).await,
        Command::Restore { from } => restore(data, &from).await,
        Command::Verify { backup } => verify(data, backup.as_deref()).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(),
    }
}

/// Where the warehouse is, as the command line says (`--data`, `--storage-option`), and the
/// cluster its queries run on (`--cluster`).
struct Place {
    location: String,
    options: Vec<(String, String)>,
    cluster: Option<Cluster>,
}

impl Place {
    fn storage(&self, create: bool) -> warehouse::Result<Storage> {
        Storage::new(&self.location, &self.options, create)
    }

    /// The warehouse there.
    async fn open(&self) -> warehouse::Result<Warehouse> {
        Ok(self.on_cluster(Warehouse::open_in(self.storage(false)?).await?))
    }

    /// The warehouse there, made if need be.
    async fn init(&self) -> warehouse::Result<Warehouse> {
        Ok(self.on_cluster(Warehouse::init_in(self.storage(true)?).await?))
    }

    fn on_cluster(&self, warehouse: Warehouse) -> Warehouse {
        match &self.cluster {
            Some(cluster) => warehouse.with_cluster(cluster.clone()),
            None => warehouse,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

/// The metrics text and where it came from: the given file, else ./metrics.toml, else the
/// built-in copy.
fn metrics_source(file: Option<&Path>) -> anyhow::Result<(String, String)> {
    let file = file.map(Path::to_path_buf).or_else(|| {
        let here = PathBuf::from("metrics.toml");
        here.is_file().then_some(here)
    });
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((text, path.display().to_string()))
        }
        None => Ok((
            warehouse::kpi::metrics::BUILT_IN.to_string(),
            "built-in metrics.toml".to_string(),
        )),
    }
}

async fn load_metrics(file: Option<&Path>) -> anyhow::Result<Arc<Metrics>> {
    let (text, origin) = metrics_source(file)?;
    match Metrics::load(&text).await {
        Ok(metrics) => Ok(Arc::new(metrics)),
        Err(problems) => {
            for problem in &problems {
                eprintln!("{origin}: {problem}");
            }
            bail!(
                "{origin} has {} problem(s); fix them (`khoso check-metrics`) or pass another --metrics",
                problems.len()
            )
        }
    }
}

async fn open(data: &Place, metrics_file: Option<&Path>) -> anyhow::Result<Warehouse> {
    let metrics = load_metrics(metrics_file).await?;
    Ok(data.open().await?.with_metrics(metrics))
}

async fn check_metrics(file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (text, origin) = metrics_source(file)?;
    match Metrics::load(&text).await {
        Ok(metrics) => {
            println!(
                "{origin}: {} KPIs, {} views, all valid",
                metrics.kpis.len(),
                metrics.views.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for problem in &problems {
                println!("{origin}: {problem}");
            }
            Ok(ExitCode::from(INVALID_INPUT))
        }
    }
}

fn progress_bar(len: u64, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(message.to_string());
    // A long file is one step: the spinner shows it is being worked on.
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

async fn serve(data: &Place, metrics: Arc<Metrics>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(mb) = args.max_memory_mb {
        // Before any work draws on the ceiling.
        warehouse::query::engine::set_memory_ceiling(mb.saturating_mul(1024 * 1024));
    }
    let session_key = args
        .session_key
        .as_deref()
        .map(dashboard::auth::SessionKey::from_configuration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--session-key / KHOSO_SESSION_KEY: {e}"))?;
    let warehouse = match data.open().await {
        Ok(warehouse) => warehouse.with_metrics(metrics),
        Err(warehouse::Error::NotAWarehouse(_)) => {
            println!("no warehouse at {data} yet: loading the sample data first");
            let sample = InitArgs {
                sample: true,
                sample_dir: args.sample_dir.clone(),
            };
            init(data, metrics.clone(), sample).await?;
            data.open().await?.with_metrics(metrics)
        }
        Err(e) => return Err(e.into()),
    };
    warehouse.recover().await?;
    let reconciled = warehouse.reconcile_audit().await?;
    if reconciled > 0 {
        println!("audit log: wrote the missing event of {reconciled} committed files");
    }
    warehouse.ensure_kpis_fresh().await?;
    // What an earlier process of this machine was receiving, and uploads staged a day ago
    // and never committed, go.
    warehouse.intake(args.require_approval).clear_received().await?;
    let settings = dashboard::Settings {
        private: args.private,
        max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
        max_record_upload_bytes: args.max_record_upload_mb.saturating_mul(1024 * 1024),
        require_approval: args.require_approval,
        query_limits: QueryLimits {
            timeout: std::time::Duration::from_secs(args.query_timeout_s),
            memory_bytes: args.query_memory_mb.saturating_mul(1024 * 1024),
            ..QueryLimits::default()
        },
        behind_proxy: args.behind_proxy,
        session_key,
    };
    let state = dashboard::AppState::with_settings(warehouse, settings);
    let audit = state.audit.clone();
    let wire = match &args.pg_addr {
        Some(pg_addr) => {
            let (address, wire) = dashboard::pg::serve_pg(pg_addr, dashboard::pg::WireState::of(&state))
                .await
                .with_context(|| format!("listening on {pg_addr}"))?;
            println!("khoso SQL for PostgreSQL clients: postgresql://ACCOUNT@{address}/khoso (password: the token)");
            Some(wire)
        }
        None => None,
    };
    let (address, server) = dashboard::serve(&args.addr, state)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    println!("khoso dashboard: http://{address}/  (Ctrl-C stops it)");
    match wire {
        // The wire server runs until the dashboard stops.
        Some(wire) => {
            tokio::select! {
                stopped = server => stopped?,
                () = wire => {}
            }
        }
        None => server.await?,
    }
    audit.flush().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `khoso report`: the server's report page, rendered without a server and written to a file.
async fn report(warehouse: Warehouse, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let encode = |text: &str| dashboard::percent_encode(text.as_bytes());
    let mut path = format!("/province/{}/report?lang={}", encode(&args.province), args.lang.code());
    for (name, value) in [("year", &args.year), ("list", &args.list)] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    let (status, html) = dashboard::render_page(dashboard::AppState::new(warehouse), &path).await?;
    if !status.is_success() {
        // The error page says what was wrong in its first paragraph.
        let said = html
            .split("<p")
            .nth(1)
            .and_then(|p| p.split_once('>'))
            .and_then(|(_, rest)| rest.split("</p>").next())
            .unwrap_or("no report");
        eprintln!("khoso report: {said}");
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    std::fs::write(&args.out, html).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} (print it to PDF from a browser: A4)", args.out.display());
    Ok(ExitCode::SUCCESS)
}

async fn users(data: &Place, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    match manage_accounts(&Accounts::new(warehouse.layout()), command).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_input_error() => {
            eprintln!("khoso: {e}");
            Ok(ExitCode::from(INVALID_INPUT))
        }
        Err(e) => Err(e.into()),
    }
}

async fn manage_accounts(accounts: &Accounts, command: UsersCommand) -> warehouse::Result<()> {
    match command {
        UsersCommand::Add { name, role, province } => {
            let (account, token) = accounts.add(&name, role.parse()?, province.as_deref()).await?;
            println!(
                "account {} ({}{}) made; its token, shown this once:",
                account.name,
                account.role.as_str(),
                account
                    .province
                    .as_deref()
                    .map(|p| format!(", province {p}"))
                    .unwrap_or_default()
            );
            println!("{token}");
        }
        UsersCommand::List => {
            println!("{:<24} {:<9} {:<8} {:<20} revoked", "name", "role", "province", "made");
            for account in accounts.list().await? {
                println!(
                    "{:<24} {:<9} {:<8} {:<20} {}",
                    account.name,
                    account.role.as_str(),
                    account.province.as_deref().unwrap_or("-"),
                    account.created_at.format("%Y-%m-%d %H:%M UTC"),
                    account
                        .revoked_at
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "-".to_string())
                );
            }
        }
        UsersCommand::Revoke { name } => {
            let account = accounts.revoke(&name).await?;
            println!("account {} revoked: its token no longer works", account.name);
        }
    }
    Ok(())
}

async fn init(data: &Place, metrics: Arc<Metrics>, args: InitArgs) -> anyhow::Result<ExitCode> {
    let warehouse = data
        .init()
        .await
        .with_context(|| format!("creating the warehouse at {data}"))?
        .with_metrics(metrics);
    println!("warehouse ready at {}", warehouse.storage().url());
    if !args.sample {
        return Ok(ExitCode::SUCCESS);
    }
    let sample_dir = sample_dir(args.sample_dir)?;
    let files = sample_files(&sample_dir)?;
    if files.is_empty() {
        bail!("no sample reports under {}", sample_dir.display());
    }
    let spinner = progress_bar(1, &format!("loading {} sample files", files.len()));
    let deliveries = files
        .iter()
        .map(|(kind, path)| Delivery::file(path.clone(), *kind, SliceHint::default()))
        .collect();
    let received = warehouse
        .intake(false)
        .receive(
            deliveries,
            &Actor::operator("sample"),
            Intent::Commit,
            chrono::Utc::now(),
        )
        .await?;
    spinner.finish_and_clear();
    let (mut committed, mut unchanged) = (0, 0);
    for file in &received {
        match &file.outcome {
            Outcome::Committed(_) => committed += 1,
            Outcome::Unchanged(_) => unchanged += 1,
            Outcome::Rejected(problems) => print_problems(&file.delivery.path, problems),
            Outcome::Checked(Some(preview)) => {
                for warning in &preview.warnings {
                    println!("  ! [{}] {} / {}", warning.rule, warning.message_vi, warning.message_en);
                }
            }
            Outcome::Checked(None) | Outcome::Held(_) => {}
        }
    }
    if committed + unchanged < received.len() {
        bail!("the sample data under {} is not valid", sample_dir.display());
    }
    println!(
        "loaded {} sample files from {} ({committed} committed, {unchanged} already there)",
        files.len(),
        sample_dir.display()
    );
    refresh_kpis(&warehouse).await?;
    Ok(ExitCode::SUCCESS)
}

/// The sample data: the given directory, else `sample-data` here, else the one in the source tree.
fn sample_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = match given {
        Some(dir) => vec![dir],
        None => vec![
            PathBuf::from("sample-data"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data"),
        ],
    };
    candidates
        .iter()
        .find(|d| d.join("school").is_dir())
        .cloned()
        .with_context(|| format!("no sample data found (looked in {candidates:?}); pass --sample-dir"))
}

/// Every report file under `DIR/{school,university,content}`, its kind from the folder, in
/// path order (so older school years load first).
fn sample_files(dir: &Path) -> anyhow::Result<Vec<(ReportKind, PathBuf)>> {
    let mut files = Vec::new();
    for kind in ReportKind::ALL {
        let mut stack = vec![dir.join(kind.as_str())];
        while let Some(folder) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("xlsx"))
                {
                    files.push((kind, path));
                }
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn print_problems(path: &Path, problems: &[Problem]) {
    eprintln!(
        "✗ {}: {} lỗi / {} problem{}",
        path.display(),
        problems.len(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems.iter().take(PROBLEMS_SHOWN) {
        eprintln!("  {problem}");
    }
    if problems.len() > PROBLEMS_SHOWN {
        eprintln!(
            "  … và {} lỗi khác / and {} more (--errors-out FILE writes them all)",
            problems.len() - PROBLEMS_SHOWN,
            problems.len() - PROBLEMS_SHOWN
        );
    }
}

async fn refresh_kpis(warehouse: &Warehouse) -> anyhow::Result<()> {
    let spinner = progress_bar(1, "computing KPIs");
    let tag = warehouse.ensure_kpis_fresh().await?;
    spinner.finish_and_clear();
    println!("KPIs up to date ({tag})");
    Ok(())
}

async fn ingest_command(data: &Place, metrics: Arc<Metrics>, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let kind = ReportKind::from(args.kind);
    let province = match &args.province {
        Some(code) => Some(
            code.parse::<ingest::ProvinceCode>()
                .with_context(|| format!("--province {code:?}"))?,
        ),
        None => None,
    };
    if !kind.is_provincial() && province.is_some() {
        bail!("--province does not apply to content reports (they are national)");
    }
    let hint = SliceHint {
        school_year: args.year,
        province_code: province,
    };
    // Open the warehouse first, so a missing one is said before any file is read. A dry run
    // needs none; where there is one, the files are also compared with what it holds.
    let warehouse = match args.dry_run {
        true => data.open().await.ok().map(|w| w.with_metrics(metrics)),
        false => Some(data.open().await?.with_metrics(metrics)),
    };
    let intent = match args.dry_run {
        true => Intent::Preview,
        false => Intent::Commit,
    };
    let deliveries: Vec<Delivery> = args
        .files
        .iter()
        .map(|path| Delivery {
            sheet: args.sheet.clone(),
            ..Delivery::file(path.clone(), kind, hint.clone())
        })
        .collect();
    let spinner = progress_bar(1, &format!("validating {} files", deliveries.len()));
    let received = match &warehouse {
        Some(warehouse) => {
            let actor = Actor::operator(&args.user);
            warehouse
                .intake(false)
                .receive(deliveries, &actor, intent, chrono::Utc::now())
                .await?
        }
        None => warehouse::intake::steps::validate_all(deliveries).await?,
    };
    spinner.finish_and_clear();
    let mut all_problems: Vec<(PathBuf, Problem)> = Vec::new();
    for file in &received {
        let path = &file.delivery.path;
        if let Some(report) = &file.report {
            print_valid(path, report);
        }
        match &file.outcome {
            Outcome::Rejected(problems) => {
                print_problems(path, problems);
                all_problems.extend(problems.iter().map(|p| (path.clone(), p.clone())));
            }
            Outcome::Checked(Some(preview)) => {
                for warning in &preview.warnings {
                    println!("  ! [{}] {} / {}", warning.rule, warning.message_vi, warning.message_en);
                }
            }
            Outcome::Checked(None) | Outcome::Held(_) => {}
            Outcome::Committed(s) => {
                let replaced = s
                    .supersedes
                    .as_deref()
                    .map(|id| format!(", replaces {id}"))
                    .unwrap_or_default();
                println!(
                    "  committed {}: {} version {}, submission {}{replaced}",
                    file.delivery.file_name,
                    warehouse::fact_table(kind),
                    s.table_version,
                    s.submission_id
                );
            }
            Outcome::Unchanged(s) => println!(
                "  unchanged {}: the same file is already the current submission {} (uploaded {} by {}); nothing written",
                file.delivery.file_name,
                s.submission_id,
                chrono::DateTime::from_timestamp_micros(s.uploaded_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                s.uploaded_by
            ),
        }
    }
    if let Some(out) = &args.errors_out {
        write_errors(out, &all_problems, args.files.len() > 1)?;
    }
    if !all_problems.is_empty() {
        eprintln!("không ghi gì vào kho / nothing was committed");
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    match (&warehouse, args.dry_run) {
        (Some(warehouse), false) => refresh_kpis(warehouse).await?,
        _ => println!("kiểm tra thử, không ghi / dry run: nothing committed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A valid file's slice and notices.
fn print_valid(path: &Path, report: &ValidatedReport) {
    let slice = match &report.province_code {
        Some(code) => format!("{} {}/{code}", report.kind, report.school_year),
        None => format!("{} {}", report.kind, report.school_year),
    };
    println!("✓ {}: {} dòng/rows hợp lệ/valid — {slice}", path.display(), report.rows);
    for notice in &report.notices {
        println!("  · {notice}");
    }
}

fn write_errors(out: &Path, problems: &[(PathBuf, Problem)], with_file: bool) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    if with_file {
        // Several files: prefix each line with its file.
        buffer.extend_from_slice(b"file,");
        let mut body = Vec::new();
        let only: Vec<Problem> = problems.iter().map(|(_, p)| p.clone()).collect();
        ingest::problem::write_problems_csv(&only, &mut body)?;
        let mut lines = body.split(|b| *b == b'\n');
        if let Some(header) = lines.next() {
            buffer.extend_from_slice(header);
            buffer.push(b'\n');
        }
        for ((path, _), line) in problems.iter().zip(lines) {
            buffer.extend_from_slice(ingest::problem::csv_field(&path.display().to_string()).as_bytes());
            buffer.push(b',');
            buffer.extend_from_slice(line);
            buffer.push(b'\n');
        }
    } else {
        let only: Vec<Problem> = problems.iter().map(|(_, p)| p.clone()).collect();
        ingest::problem::write_problems_csv(&only, &mut buffer)?;
    }
    std::fs::write(out, buffer).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn template(args: TemplateArgs) -> anyhow::Result<ExitCode> {
    let kind = ReportKind::from(args.kind);
    let lang = args.lang;
    let extension = if args.format == TemplateFormat::Xlsx {
        "xlsx"
    } else {
        "csv"
    };
    let lang_code = lang.code();
    let out = args.out.unwrap_or_else(|| match args.year {
        Some(year) => PathBuf::from(format!("{kind}-template-{year}-{lang_code}.{extension}")),
        None => PathBuf::from(format!("{kind}-template-{lang_code}.{extension}")),
    });
    match args.format {
        TemplateFormat::Csv if out.as_os_str() == "-" => {
            ingest::template::write_csv_template(kind.schema(), lang, args.year, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        TemplateFormat::Csv => {
            let mut file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            ingest::template::write_csv_template(kind.schema(), lang, args.year, &mut file)?;
        }
        TemplateFormat::Xlsx => ingest::template::write_xlsx_template(kind.schema(), lang, args.year, &out)?,
    }
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_years(text: &str) -> anyhow::Result<(SchoolYear, SchoolYear)> {
    let (first, last) = text.split_once("..").unwrap_or((text, text));
    let parse = |s: &str| {
        s.trim()
            .parse::<SchoolYear>()
            .map_err(|e| anyhow::anyhow!("--years {text:?}: {e}; write e.g. 2021-2022..2025-2026"))
    };
    Ok((parse(first)?, parse(last)?))
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let (first_year, last_year) = parse_years(&args.years)?;
    let options = ingest::generate::GenerateOptions {
        scale: args.scale,
        first_year,
        last_year,
        seed: args.seed,
        out: args.out.clone(),
        kinds: args.kinds.iter().map(|&k| k.into()).collect(),
    };
    let years = (last_year.start() - first_year.start() + 1).max(0) as u64;
    let bar = progress_bar(years * 100, "generating");
    let summary = ingest::generate::generate(&options, |path| {
        bar.set_message(file_name(path));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let rows: Vec<String> = summary
        .rows
        .iter()
        .map(|(kind, n)| format!("{n} {kind} rows"))
        .collect();
    println!(
        "wrote {} files to {} ({})",
        summary.files.len(),
        args.out.display(),
        rows.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

async fn sql(warehouse: &Warehouse, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let pins: TableVersions = args.at.into_iter().collect();
    let limits = QueryLimits {
        timeout: std::time::Duration::from_secs(args.timeout),
        ..QueryLimits::default()
    };
    let batches = match warehouse
        .query_limited(&args.query, &pins, &limits, args.role.into())
        .await
    {
        Ok(batches) => batches,
        Err(e) if e.is_input_error() => {
            eprintln!("khoso: {e}");
            return Ok(ExitCode::from(INVALID_INPUT));
        }
        Err(e) => return Err(e.into()),
    };
    print_batches(&batches, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_batches(batches: &[RecordBatch], format: SqlFormat) -> anyhow::Result<()> {
    let format = match format {
        SqlFormat::Table => OutputFormat::Table,
        SqlFormat::Csv => OutputFormat::Csv,
        SqlFormat::Json => OutputFormat::Json,
    };
    print!("{}", warehouse::render(batches, format)?);
    if format == OutputFormat::Table {
        println!();
    }
    Ok(())
}

/// A string as an SQL literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn kpi(warehouse: &Warehouse, args: KpiArgs) -> anyhow::Result<ExitCode> {
    if let Some(KpiCommand::Explain(explain)) = args.explain {
        return kpi_explain(warehouse, explain).await;
    }
    let metrics = warehouse.metrics()?;
    if let Some(id) = &args.kpi
        && metrics.kpi(id).is_none()
    {
        let ids: Vec<&str> = metrics.kpis.iter().map(|k| k.id.as_str()).collect();
        eprintln!("khoso: no KPI {id:?}; the KPIs are {}", ids.join(", "));
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    warehouse.ensure_kpis_fresh().await?;
    let dimension = Dimension::from(args.by);
    let mut conditions = vec![format!("dimension = {}", sql_text(dimension.as_str()))];
    if let Some(id) = &args.kpi {
        conditions.push(format!("kpi_id = {}", sql_text(id)));
    }
    if let Some(year) = args.year {
        conditions.push(format!("school_year = {}", sql_text(&year.to_string())));
    }
    if let Some(years) = &args.years {
        let (first, last) = parse_years(years)?;
        conditions.push(format!(
            "school_year BETWEEN {} AND {}",
            sql_text(&first.to_string()),
            sql_text(&last.to_string())
        ));
    }
    // The table is for reading; CSV and JSON keep every column at full precision.
    let columns = match args.format {
        SqlFormat::Table => {
            "kpi_id, unit, school_year, round(value, 1) AS value, target_year, comparison, target_value, status, \
             round(gap, 1) AS gap, round(projected, 1) AS projected, reach_year, \
             reported || '/' || coalesce(CAST(expected AS VARCHAR), '?') AS coverage"
        }
        _ => "*",
    };
    let order: Vec<String> = metrics
        .kpis
        .iter()
        .enumerate()
        .map(|(i, k)| format!("WHEN {} THEN {i}", sql_text(&k.id)))
        .collect();
    let query = format!(
        "SELECT {columns} FROM kpi_values WHERE {} ORDER BY CASE kpi_id {} END, unit, school_year",
        conditions.join(" AND "),
        order.join(" ")
    );
    // The values are materialised: read here, even when the KPIs are computed on a cluster.
    let batches = warehouse.without_cluster().query(&query, &TableVersions::new()).await?;
    print_batches(&batches, args.format)?;
    Ok(ExitCode::SUCCESS)
}

async fn kpi_explain(warehouse: &Warehouse, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let metrics = warehouse.metrics()?;
    let Some(kpi) = metrics.kpi(&args.kpi) else {
        eprintln!("khoso: no KPI {:?}", args.kpi);
        return Ok(ExitCode::from(INVALID_INPUT));
    };
    warehouse.ensure_kpis_fresh().await?;
    let (dimension, unit) = match &args.province {
        Some(code) => (
            Dimension::Province,
            code.parse::<ingest::ProvinceCode>()
                .with_context(|| format!("--province {code:?}"))?
                .to_string(),
        ),
        None => (Dimension::National, "VN".to_string()),
    };
    let pins = TableVersions::new();
    let year = match args.year {
        Some(year) => year.to_string(),
        None => {
            let latest = warehouse
                .query(
                    &format!(
                        "SELECT max(school_year) FROM kpi_values WHERE kpi_id = {}",
                        sql_text(&kpi.id)
                    ),
                    &pins,
                )
                .await?;
            let text = warehouse::render(&latest, OutputFormat::Csv)?;
            text.lines().nth(1).unwrap_or_default().to_string()
        }
    };
    println!("{} — {} / {}", kpi.id, kpi.name_vi, kpi.name_en);
    println!("Nguồn / source: \"{}\"", kpi.source);
    println!("Đơn vị / unit: {dimension} {unit}, năm học / school year {year}\n");
    println!(
        "SQL ({dimension}):\n{}\n",
        warehouse::kpi::compute::kpi_sql(kpi, dimension)
    );
    let figure = warehouse
        .query(
            &format!(
                "SELECT numerator, denominator, value, target_year, comparison, target_value, status, line_value, \
                 projected, reach_year, reported, expected, source_versions FROM kpi_values \
                 WHERE kpi_id = {} AND dimension = {} AND unit = {} AND school_year = {}",
                sql_text(&kpi.id),
                sql_text(dimension.as_str()),
                sql_text(&unit),
                sql_text(&year)
            ),
            &pins,
        )
        .await?;
    if figure.iter().all(|b| b.num_rows() == 0) {
        eprintln!("khoso: {} has no value for {dimension} {unit} in {year}", kpi.id);
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    print_batches(&figure, SqlFormat::Table)?;
    let scope = match &args.province {
        Some(_) => format!(" AND province_code = {}", sql_text(&unit)),
        None => String::new(),
    };
    let submissions = warehouse
        .query(
            &format!(
                "SELECT submission_id, kind, province_code, file_name, sha256, uploaded_by, uploaded_at FROM submissions \
                 WHERE submission_id IN (SELECT DISTINCT submission_id FROM {} WHERE ({}) AND school_year = {}{scope}) \
                 ORDER BY kind, province_code",
                kpi.table,
                kpi.filter.as_deref().unwrap_or("true"),
                sql_text(&year)
            ),
            &pins,
        )
        .await?;
    let count: usize = submissions.iter().map(RecordBatch::num_rows).sum();
    println!("\nCác tệp đứng sau số liệu / the {count} submissions behind it:");
    print_batches(&submissions, SqlFormat::Table)?;
    Ok(ExitCode::SUCCESS)
}

/// `khoso cluster`: runs a scheduler or an executor over the warehouse's storage until stopped.
async fn cluster_node(data: &Place, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let storage = data.storage(false)?;
    match command {
        ClusterCommand::Scheduler { bind, executor_timeout } => {
            let bind = first_address(&bind).await?;
            tracing::info!(%bind, warehouse = %data, "Ballista scheduler");
            let timeout = std::time::Duration::from_secs(executor_timeout);
            warehouse::query::cluster::run_scheduler(bind, timeout, storage).await?;
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            external_host,
            tasks,
            memory_mb,
        } => {
            let place = ExecutorPlace {
                scheduler: Cluster::parse(&scheduler)?,
                bind: first_address(&bind).await?,
                external_host,
                tasks,
                memory_bytes: memory_mb.map(|mb| mb * 1024 * 1024),
            };
            tracing::info!(scheduler = %place.scheduler, bind = %place.bind, warehouse = %data, "Ballista executor");
            warehouse::query::cluster::run_executor(place, storage).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first address `text` (HOST:PORT) names.
async fn first_address(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(text)
        .await
        .with_context(|| format!("{text:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{text:?} names no address"))
}

/// `khoso maintain`: upkeep of every table, with each table's files before and after.
async fn maintain(data: &Place, args: MaintainArgs) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    let upkeep = warehouse::ops::upkeep::Upkeep {
        target_bytes: std::num::NonZeroU64::new(args.target_mb.saturating_mul(1024 * 1024))
            .context("--target-mb must be at least 1")?,
        retain: args.retain_days.map(|days| chrono::Duration::days(days.into())),
    };
    let started = std::time::Instant::now();
    let done = warehouse.maintain(&upkeep).await?;
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{:<20} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "table", "version", "files", "→ files", "MB", "→ MB", "stored", "→ stored", "stored MB"
    );
    for table in &done {
        println!(
            "{:<20} {:>8} {:>8} {:>10} {:>10.1} {:>9.1} {:>9} {:>10} {:>10.1}",
            table.table,
            table.version,
            table.active_before.count,
            table.active_after.count,
            mb(table.active_before.bytes),
            mb(table.active_after.bytes),
            table.stored_before.count,
            table.stored_after.count,
            mb(table.stored_after.bytes),
        );
    }
    let (before, after): (usize, usize) = done.iter().fold((0, 0), |(b, a), t| {
        (b + t.active_before.count, a + t.active_after.count)
    });
    let removed: usize = done
        .iter()
        .map(|t| t.stored_before.count.saturating_sub(t.stored_after.count))
        .sum();
    println!(
        "upkeep done in {:.1} s: {before} data files read by queries before, {after} now; {removed} files removed from storage{}",
        started.elapsed().as_secs_f64(),
        match args.retain_days {
            Some(days) => format!(" (replaced more than {days} days ago)"),
            None => " (every version kept: --retain-days to remove old ones)".to_string(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso backup --to`.
async fn backup(data: &Place, metrics_file: Option<&Path>, to: &str) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    let (metrics, _) = metrics_source(metrics_file)?;
    let target = Storage::new(to, &data.options, true)?;
    let started = std::time::Instant::now();
    let done = warehouse.backup(&target, &metrics).await?;
    println!(
        "backup in {to}: {} files; {} copied ({:.1} MB), {} unchanged since the last backup there; {:.1} s",
        done.manifest.files.len(),
        done.copied.0,
        done.copied.1 as f64 / (1024.0 * 1024.0),
        done.kept,
        started.elapsed().as_secs_f64()
    );
    println!(
        "versions: {}",
        warehouse::ops::backup::versions_text(&done.manifest.versions)
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso restore --from`.
async fn restore(data: &Place, from: &str) -> anyhow::Result<ExitCode> {
    let backup = Storage::new(from, &data.options, false)?;
    let target = data.storage(true)?;
    let manifest = warehouse::ops::backup::restore(&backup, &target).await?;
    // The warehouse opens, and what a process stopped mid-commit left is repaired.
    data.open().await?.recover().await?;
    println!(
        "restored {} files of the backup made {} into {data}",
        manifest.files.len(),
        manifest.made_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!(
        "versions: {}",
        warehouse::ops::backup::versions_text(&manifest.versions)
    );
    println!(
        "the metrics in force then are {from}/{}: start the server with --metrics pointing at a copy of it if yours differ",
        warehouse::ops::backup::METRICS
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso verify`.
async fn verify(data: &Place, backup: Option<&str>) -> anyhow::Result<ExitCode> {
    let (what, findings) = match backup {
        Some(location) => {
            let storage = Storage::new(location, &data.options, false)?;
            let (manifest, findings) = warehouse::ops::backup::verify_backup(&storage).await?;
            let what = format!(
                "the backup in {location} ({} files, made {})",
                manifest.files.len(),
                manifest.made_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            (what, findings)
        }
        None => (format!("the warehouse in {data}"), data.open().await?.verify().await?),
    };
    for finding in &findings {
        println!("{finding}");
    }
    match findings.len() {
        0 => {
            println!("{what}: no problem found");
            Ok(ExitCode::SUCCESS)
        }
        n => {
            println!("{what}: {n} problems");
            Ok(ExitCode::from(1))
        }
    }
}

/// `khoso config check`.
fn config_check() -> anyhow::Result<ExitCode> {
    let settings = crate::config::effective_serve()?;
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or_default();
    for setting in settings {
        println!(
            "{:<width$} = {:<40} ({})",
            setting.key,
            setting.value.as_deref().unwrap_or("(unset)"),
            setting.source
        );
    }
    Ok(ExitCode::SUCCESS)
}
