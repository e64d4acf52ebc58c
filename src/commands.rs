//! What each command does: argument handling and printing around the library crates.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ingest::{Lang, Problem, ReadOptions, ReportKind, SchoolYear, SliceHint, ValidatedReport};
use warehouse::{CommitOutcome, OutputFormat, TableVersions, Upload, Warehouse};

use crate::cli::{
    Cli, Command, GenerateArgs, IngestArgs, InitArgs, LangArg, SqlArgs, SqlFormat, TemplateArgs,
    TemplateFormat,
};

/// Exit code when the input is at fault (a file with problems, a refused query).
const INVALID_INPUT: u8 = 2;

/// Problems shown on the terminal per file; all of them go to `--errors-out`.
const PROBLEMS_SHOWN: usize = 200;

/// Runs a command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init(&cli.data, args).await,
        Command::Ingest(args) => ingest_command(&cli.data, args).await,
        Command::Template(args) => template(args),
        Command::Generate(args) => generate(args),
        Command::Sql(args) => sql(&cli.data, args).await,
    }
}

fn progress_bar(len: u64, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(message.to_string());
    // A long file is one step: the spinner shows it is being worked on.
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

async fn init(data: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    let warehouse = Warehouse::init(data)
        .await
        .with_context(|| format!("creating the warehouse at {}", data.display()))?;
    println!("warehouse ready at {}", warehouse.root().display());
    if !args.sample {
        return Ok(ExitCode::SUCCESS);
    }
    let sample_dir = sample_dir(args.sample_dir)?;
    let files = sample_files(&sample_dir)?;
    if files.is_empty() {
        bail!("no sample reports under {}", sample_dir.display());
    }
    let bar = progress_bar(files.len() as u64, "loading sample data");
    let (mut committed, mut unchanged) = (0, 0);
    for (kind, path) in &files {
        bar.set_message(file_name(path));
        let report =
            match read_report(path, *kind, SliceHint::default(), ReadOptions::default()).await? {
                Ok(report) => report,
                Err(problems) => {
                    bar.finish_and_clear();
                    print_problems(path, &problems);
                    bail!("sample file {} is not valid", path.display());
                }
            };
        match warehouse
            .commit(&report, path, &upload(path, "sample"))
            .await?
        {
            CommitOutcome::Committed(_) => committed += 1,
            CommitOutcome::Unchanged(_) => unchanged += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "loaded {} sample files from {} ({committed} committed, {unchanged} already there)",
        files.len(),
        sample_dir.display()
    );
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
        .with_context(|| {
            format!("no sample data found (looked in {candidates:?}); pass --sample-dir")
        })
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
                } else if path.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("xlsx")
                }) {
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

fn upload(path: &Path, user: &str) -> Upload {
    Upload {
        file_name: file_name(path),
        uploaded_by: user.to_string(),
        uploaded_at: chrono::Utc::now(),
    }
}

/// Reads and validates a file off the async threads (polars blocks).
async fn read_report(
    path: &Path,
    kind: ReportKind,
    hint: SliceHint,
    options: ReadOptions,
) -> anyhow::Result<Result<ValidatedReport, Vec<Problem>>> {
    let path = path.to_path_buf();
    let result =
        tokio::task::spawn_blocking(move || ingest::read_report(&path, kind, &hint, &options))
            .await?;
    Ok(result)
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

async fn ingest_command(data: &Path, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let kind = ReportKind::from(args.kind);
    let province = match &args.province {
        Some(code) => Some(
            ingest::text::normalize_province_code(code).with_context(|| {
                format!("--province {code:?}: a province code has 2 digits, e.g. 01")
            })?,
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
    let options = ReadOptions {
        sheet: args.sheet.clone(),
    };
    // Open the warehouse first, so a missing one is said before any file is read.
    let warehouse = if args.dry_run {
        None
    } else {
        Some(Warehouse::open(data).await?)
    };

    // Every file is validated before anything is committed: one bad file stops them all.
    let bar = progress_bar(args.files.len() as u64, "validating");
    let mut reports = Vec::new();
    let mut all_problems: Vec<(PathBuf, Problem)> = Vec::new();
    for path in &args.files {
        bar.set_message(file_name(path));
        match read_report(path, kind, hint.clone(), options.clone()).await? {
            Ok(report) => reports.push((path, report)),
            Err(problems) => {
                bar.suspend(|| print_problems(path, &problems));
                all_problems.extend(problems.into_iter().map(|p| (path.clone(), p)));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(out) = &args.errors_out {
        write_errors(out, &all_problems, args.files.len() > 1)?;
    }
    for (path, report) in &reports {
        let slice = match &report.province_code {
            Some(code) => format!("{} {}/{code}", report.kind, report.school_year),
            None => format!("{} {}", report.kind, report.school_year),
        };
        println!(
            "✓ {}: {} dòng/rows hợp lệ/valid — {slice}",
            path.display(),
            report.rows
        );
        for notice in &report.notices {
            println!("  · {notice}");
        }
    }
    if !all_problems.is_empty() {
        eprintln!("không ghi gì vào kho / nothing was committed");
        return Ok(ExitCode::from(INVALID_INPUT));
    }
    let Some(warehouse) = warehouse else {
        println!("kiểm tra thử, không ghi / dry run: nothing committed");
        return Ok(ExitCode::SUCCESS);
    };
    for (path, report) in &reports {
        match warehouse
            .commit(report, path, &upload(path, &args.user))
            .await?
        {
            CommitOutcome::Committed(s) => {
                let replaced = s
                    .supersedes
                    .as_deref()
                    .map(|id| format!(", replaces {id}"))
                    .unwrap_or_default();
                println!(
                    "  committed {}: {} version {}, submission {}{replaced}",
                    file_name(path),
                    warehouse::fact_table(report.kind),
                    s.table_version,
                    s.submission_id
                );
            }
            CommitOutcome::Unchanged(s) => println!(
                "  unchanged {}: the same file is already the current submission {} (uploaded {} by {}); nothing written",
                file_name(path),
                s.submission_id,
                chrono::DateTime::from_timestamp_micros(s.uploaded_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                s.uploaded_by
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_errors(
    out: &Path,
    problems: &[(PathBuf, Problem)],
    with_file: bool,
) -> anyhow::Result<()> {
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
            buffer.extend_from_slice(
                ingest::problem::csv_field(&path.display().to_string()).as_bytes(),
            );
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
    let lang = match args.lang {
        LangArg::Vi => Lang::Vi,
        LangArg::En => Lang::En,
    };
    let extension = if args.format == TemplateFormat::Xlsx {
        "xlsx"
    } else {
        "csv"
    };
    let lang_code = if lang == Lang::Vi { "vi" } else { "en" };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{kind}-template-{lang_code}.{extension}")));
    match args.format {
        TemplateFormat::Csv if out.as_os_str() == "-" => {
            ingest::template::write_csv_template(kind.schema(), lang, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        TemplateFormat::Csv => {
            let mut file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            ingest::template::write_csv_template(kind.schema(), lang, &mut file)?;
        }
        TemplateFormat::Xlsx => ingest::template::write_xlsx_template(kind.schema(), lang, &out)?,
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

async fn sql(data: &Path, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let warehouse = Warehouse::open(data).await?;
    let pins: TableVersions = args.at.into_iter().collect();
    let batches = match warehouse.query(&args.query, &pins).await {
        Ok(batches) => batches,
        Err(e) if e.is_input_error() => {
            eprintln!("khoso: {e}");
            return Ok(ExitCode::from(INVALID_INPUT));
        }
        Err(e) => return Err(e.into()),
    };
    let format = match args.format {
        SqlFormat::Table => OutputFormat::Table,
        SqlFormat::Csv => OutputFormat::Csv,
        SqlFormat::Json => OutputFormat::Json,
    };
    print!("{}", warehouse::render(&batches, format)?);
    if format == OutputFormat::Table {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
