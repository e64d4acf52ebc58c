//! `khoso init`, `khoso ingest`, `khoso template`, `khoso generate`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use ingest::{Problem, ProvinceCode, ReportKind, SchoolYear, SliceHint, ValidatedReport};
use warehouse::Warehouse;
use warehouse::intake::steps::{Delivery, Intent, Outcome, Received};
use warehouse::kpi::metrics::Metrics;
use warehouse::people::rights::Actor;

use super::common::{INVALID_INPUT, PROBLEMS_SHOWN, Place, file_name, progress_bar};
use crate::cli::{GenerateArgs, IngestArgs, InitArgs, TemplateArgs, TemplateFormat};

pub(super) async fn init(data: &Place, metrics: Arc<Metrics>, args: InitArgs) -> anyhow::Result<ExitCode> {
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
    let received = commit_sample(&warehouse, deliveries).await?;
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
    sample_records(&warehouse, &sample_dir).await?;
    refresh_kpis(&warehouse).await?;
    Ok(ExitCode::SUCCESS)
}

/// Commits sample files through the normal ingest path, as the operator "sample".
async fn commit_sample(warehouse: &Warehouse, deliveries: Vec<Delivery>) -> anyhow::Result<Vec<Received>> {
    let sample = Actor::operator("sample");
    Ok(warehouse
        .intake(false)
        .receive(deliveries, &sample, Intent::Commit, chrono::Utc::now())
        .await?)
}

/// How a sample's learner and teacher records are made (`records.toml` beside its reports):
/// by khoso's generator, with the seed and scale its reports were generated with, for the
/// years from `write_from` — too many rows to ship as files.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleRecords {
    scale: f64,
    seed: u64,
    years: String,
    write_from: String,
}

/// Generates the sample's records as `records.toml` in `sample_dir` says (none without one)
/// and loads them through the normal ingest path.
async fn sample_records(warehouse: &Warehouse, sample_dir: &Path) -> anyhow::Result<()> {
    let recipe = sample_dir.join("records.toml");
    let Ok(text) = std::fs::read_to_string(&recipe) else {
        return Ok(());
    };
    let records: SampleRecords = toml::from_str(&text).with_context(|| format!("reading {}", recipe.display()))?;
    let (first_year, last_year) = parse_years(&records.years)?;
    let write_from = records
        .write_from
        .parse::<SchoolYear>()
        .map_err(|e| anyhow::anyhow!("{}: write_from: {e}", recipe.display()))?;
    let out = tempfile::tempdir().context("a folder for the sample's records")?;
    let options = ingest::generate::GenerateOptions {
        scale: records.scale,
        first_year,
        last_year,
        seed: records.seed,
        out: out.path().to_path_buf(),
        kinds: vec![ReportKind::Learner, ReportKind::Teacher],
        write_from: Some(write_from),
    };
    let spinner = progress_bar(1, "generating the sample's learner and teacher records");
    let summary = ingest::generate::generate(&options, |_| {})?;
    spinner.set_message("loading the sample's learner and teacher records");
    let deliveries = summary
        .files
        .iter()
        .map(|path| {
            let kind = match path.starts_with(out.path().join(ReportKind::Teacher.as_str())) {
                true => ReportKind::Teacher,
                false => ReportKind::Learner,
            };
            Delivery::file(path.clone(), kind, SliceHint::default())
        })
        .collect();
    let received = commit_sample(warehouse, deliveries).await?;
    spinner.finish_and_clear();
    for file in &received {
        if let Outcome::Rejected(problems) = &file.outcome {
            print_problems(&file.delivery.path, problems);
            bail!("the sample's generated records are not valid");
        }
    }
    println!(
        "loaded the sample's learner and teacher records from {} on ({})",
        records.write_from,
        summary.rows_written()
    );
    Ok(())
}

/// The sample data: the given directory, else `sample-data` here, else the one in the source tree.
pub(super) fn sample_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
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

pub(super) async fn ingest_command(data: &Place, metrics: Arc<Metrics>, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let province = match &args.province {
        Some(code) => Some(
            code.parse::<ProvinceCode>()
                .with_context(|| format!("--province {code:?}"))?,
        ),
        None => None,
    };
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
    let kinds = match args.kind {
        Some(kind) => vec![ReportKind::from(kind); args.files.len()],
        None => match kinds_of(&args.files, &args.sheet).await? {
            Ok(kinds) => kinds,
            Err(problems) => {
                for (path, problem) in &problems {
                    print_problems(path, std::slice::from_ref(problem));
                }
                if let Some(out) = &args.errors_out {
                    write_errors(out, &problems, args.files.len() > 1)?;
                }
                eprintln!("không ghi gì vào kho / nothing was committed");
                return Ok(ExitCode::from(INVALID_INPUT));
            }
        },
    };
    if hint.province_code.is_some() && kinds.iter().any(|k| !k.is_provincial()) {
        bail!("--province does not apply to content reports (they are national)");
    }
    let deliveries: Vec<Delivery> = args
        .files
        .iter()
        .zip(&kinds)
        .map(|(path, kind)| Delivery {
            sheet: args.sheet.clone(),
            ..Delivery::file(path.clone(), *kind, hint.clone())
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
                    warehouse::fact_table(file.delivery.kind),
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
        (Some(warehouse), false) => {
            let committed: BTreeSet<Slice> = received
                .iter()
                .filter(|f| matches!(f.outcome, Outcome::Committed(_)))
                .filter_map(|f| f.report.as_ref())
                .map(|r| (r.kind, r.school_year, r.province_code.clone()))
                .collect();
            // The flags read the fact tables only: they are found while the KPIs are computed.
            let (refreshed, flags) = tokio::join!(refresh_kpis(warehouse), flag_lines(warehouse, &committed));
            refreshed?;
            flags?.iter().for_each(|line| println!("{line}"));
        }
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

pub(super) fn template(args: TemplateArgs) -> anyhow::Result<ExitCode> {
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

pub(super) fn parse_years(text: &str) -> anyhow::Result<(SchoolYear, SchoolYear)> {
    let (first, last) = text.split_once("..").unwrap_or((text, text));
    let parse = |s: &str| {
        s.trim()
            .parse::<SchoolYear>()
            .map_err(|e| anyhow::anyhow!("--years {text:?}: {e}; write e.g. 2021-2022..2025-2026"))
    };
    Ok((parse(first)?, parse(last)?))
}

pub(super) fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let (first_year, last_year) = parse_years(&args.years)?;
    let write_from = match args.write_from.as_deref() {
        Some(year) => Some(
            year.parse::<SchoolYear>()
                .map_err(|e| anyhow::anyhow!("--write-from {year:?}: {e}; write e.g. 2024-2025"))?,
        ),
        None => None,
    };
    let options = ingest::generate::GenerateOptions {
        scale: args.scale,
        first_year,
        last_year,
        seed: args.seed,
        out: args.out.clone(),
        kinds: args.kinds.iter().map(|&k| k.into()).collect(),
        write_from,
    };
    let years = (last_year.start() - first_year.start() + 1).max(0) as u64;
    let bar = progress_bar(years * 100, "generating");
    let summary = ingest::generate::generate(&options, |path| {
        bar.set_message(file_name(path));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    println!(
        "wrote {} files to {} ({})",
        summary.files.len(),
        args.out.display(),
        summary.rows_written()
    );
    Ok(ExitCode::SUCCESS)
}

/// The kind of each file by its header row, or every file whose header does not say.
async fn kinds_of(
    files: &[PathBuf],
    sheet: &Option<String>,
) -> anyhow::Result<Result<Vec<ReportKind>, Vec<(PathBuf, Problem)>>> {
    let (files, options) = (files.to_vec(), ingest::ReadOptions { sheet: sheet.clone() });
    let found = tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|path| (ingest::read::report_kind_of(&path, &options), path))
            .collect::<Vec<_>>()
    })
    .await?;
    let mut kinds = Vec::with_capacity(found.len());
    let mut problems = Vec::new();
    for (kind, path) in found {
        match kind {
            Ok(kind) => kinds.push(kind),
            Err(problem) => problems.push((path, problem)),
        }
    }
    Ok(match problems.is_empty() {
        true => Ok(kinds),
        false => Err(problems),
    })
}

/// A slice a file was committed to: its kind, school year and province.
type Slice = (ReportKind, SchoolYear, Option<ProvinceCode>);

/// The flags nobody has explained that the checks reading the committed kinds' tables raise on
/// the slices just committed, as lines to print: the files are in, and these are worth a second
/// look. Only those checks are run.
async fn flag_lines(warehouse: &Warehouse, committed: &BTreeSet<Slice>) -> anyhow::Result<Vec<String>> {
    const SHOWN: usize = 10;
    let metrics = warehouse.metrics()?;
    let tables: BTreeSet<&str> = committed
        .iter()
        .map(|(kind, _, _)| warehouse::fact_table(*kind))
        .collect();
    let bearing = |check: &warehouse::quality::checks::Check| {
        metrics.check_tables(check).iter().any(|t| tables.contains(t.as_str()))
    };
    let mut lines = Vec::new();
    if !metrics.checks.iter().any(bearing) {
        return Ok(lines);
    }
    // Each year's flags of its one province, or the year's of every province for files of many
    // (then kept to the provinces sent).
    let years: BTreeSet<SchoolYear> = committed.iter().map(|(_, year, _)| *year).collect();
    let provinces_of = |year: SchoolYear| -> BTreeSet<Option<&ProvinceCode>> {
        committed
            .iter()
            .filter(|(_, y, _)| *y == year)
            .map(|(_, _, p)| p.as_ref())
            .collect()
    };
    let asked_of = |year: SchoolYear| match provinces_of(year) {
        provinces if provinces.len() == 1 => provinces.first().copied().flatten().cloned(),
        _ => None,
    };
    let slices: Vec<(SchoolYear, Option<ProvinceCode>)> = years.iter().map(|&year| (year, asked_of(year))).collect();
    let all_flags = warehouse.flags_of(&slices, bearing).await?;
    for (year, asked) in &slices {
        let provinces = provinces_of(*year);
        let flags: Vec<_> = all_flags
            .iter()
            .filter(|f| f.school_year == *year && f.explanation.is_none())
            .filter(|f| {
                provinces
                    .iter()
                    .any(|p| p.is_none_or(|p| p.as_str() == f.province_code))
            })
            .collect();
        for flag in flags.iter().take(SHOWN) {
            lines.push(format!(
                "  ! [{}] {}: {} / {}",
                flag.check_id,
                flag.named_unit(),
                flag.message_vi,
                flag.message_en
            ));
        }
        if !flags.is_empty() {
            let place = asked
                .as_ref()
                .map(|p| format!(" --province {}", p.as_str()))
                .unwrap_or_default();
            lines.push(format!(
                "  {} cảnh báo số liệu bất thường, xem /quality / {} flags of figures that look wrong: khoso check --year \
                 {year}{place}",
                flags.len(),
                flags.len()
            ));
        }
    }
    Ok(lines)
}
