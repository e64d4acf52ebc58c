//! Deterministic synthetic reports, one file per (kind, province, school year), written the
//! way provinces really send them: Vietnamese or English headers, `,` `;` or tab, UTF-8 with a
//! BOM or UTF-16, thousands separators, yes/no spelled several ways, now and then `.xlsx`.
//!
//! Sizes follow the real system at `scale = 1.0` (school year 2024-2025, MOET): about 27,000
//! (school, level) rows — 12,700 primary, 10,800 lower-secondary, 2,900 upper-secondary,
//! 640 continuing-education — and about 240 universities, spread over provinces by their 2019
//! census population (`sample-data/reference/population-2019.csv`, GSO, rounded to thousands).
//! Values rise year on year from the 2021-2022 baseline; the big cities lead and the northern
//! mountains and Central Highlands trail. Up to 2024-2025 files use the 63 old codes, from
//! 2025-2026 the 34 new ones; schools keep their ids across the merger.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::provinces::{Province, ProvinceRegistry};
use crate::schema::{Lang, ReportKind, ReportSchema};
use crate::text::SchoolYear;
use crate::{Error, Result};

mod records;

/// 2019 census population by old province code, in thousands (GSO, rounded).
const POPULATION_2019: &str = include_str!("../../sample-data/reference/population-2019.csv");

/// (level, schools nationally at scale 1, mean pupils per school, pupils per teacher,
/// curriculum periods per pupil-class in a year).
const LEVELS: [(&str, f64, f64, f64, i64); 4] = [
    ("primary", 12_700.0, 697.0, 21.0, 1_050),
    ("lower_secondary", 10_800.0, 603.0, 17.0, 1_190),
    ("upper_secondary", 2_900.0, 1_031.0, 19.0, 1_190),
    ("continuing", 640.0, 320.0, 22.0, 900),
];

/// Universities nationally at scale 1.
const UNIVERSITIES: f64 = 240.0;

/// Subjects of the 2018 general-education programme, by the grades that teach them.
const SUBJECTS: [(&str, u8, u8); 16] = [
    ("Toán", 1, 12),
    ("Tiếng Việt", 1, 5),
    ("Ngữ văn", 6, 12),
    ("Tiếng Anh", 3, 12),
    ("Đạo đức", 1, 5),
    ("Tự nhiên và Xã hội", 1, 3),
    ("Khoa học", 4, 5),
    ("Lịch sử và Địa lí", 4, 9),
    ("Khoa học tự nhiên", 6, 9),
    ("Tin học", 3, 12),
    ("Công nghệ", 3, 12),
    ("Giáo dục công dân", 6, 9),
    ("Vật lí", 10, 12),
    ("Hóa học", 10, 12),
    ("Sinh học", 10, 12),
    ("Giáo dục kinh tế và pháp luật", 10, 12),
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// 1.0 is the real national size.
    pub scale: f64,
    /// First school year (the baseline).
    pub first_year: SchoolYear,
    /// Last school year.
    pub last_year: SchoolYear,
    /// Seed: the same seed and options give the same bytes.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// The kinds to write (learner and teacher records follow the school reports of the same
    /// seed, whether these are written or not).
    pub kinds: Vec<ReportKind>,
    /// The first school year whose files are written: the years before it still shape the
    /// data (the roster, the trend from the baseline) but write nothing. None: from the first.
    pub write_from: Option<SchoolYear>,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Data rows written, by kind.
    pub rows: BTreeMap<&'static str, usize>,
}

impl GenerateSummary {
    /// The rows written, by kind: "1908751 learner rows, 100202 teacher rows".
    pub fn rows_written(&self) -> String {
        let rows: Vec<String> = self.rows.iter().map(|(kind, n)| format!("{n} {kind} rows")).collect();
        rows.join(", ")
    }
}

/// One school of the roster: it keeps its id and level every year.
#[derive(Debug, Clone)]
struct School {
    id: String,
    name: String,
    commune: String,
    old_province: String,
    levels: Vec<usize>,
    private: bool,
    size: f64,
}

#[derive(Debug, Clone)]
struct University {
    id: String,
    name: String,
    old_province: String,
    private: bool,
    size: f64,
}

/// How a province writes its files.
#[derive(Debug, Clone, Copy)]
enum FileStyle {
    /// Vietnamese headers, `,`, UTF-8 with BOM, "Có/Không".
    VietnameseComma,
    /// Headers without diacritics, `;`, `1.234`, "x"/blank, blank rows at the end.
    VietnameseSemicolon,
    /// English headers, `,`, TRUE/FALSE.
    English,
    /// UTF-16 with tabs, as Excel's "Unicode text".
    Utf16Tab,
    /// An Excel workbook.
    Workbook,
}

impl FileStyle {
    fn for_province(code: &str) -> Self {
        match code.bytes().map(u32::from).sum::<u32>() % 5 {
            0 => Self::VietnameseComma,
            1 => Self::VietnameseSemicolon,
            2 => Self::English,
            3 => Self::Utf16Tab,
            _ => Self::Workbook,
        }
    }
}

/// Writes the synthetic reports.
pub fn generate(options: &GenerateOptions, mut progress: impl FnMut(&Path)) -> Result<GenerateSummary> {
    if !(options.scale > 0.0 && options.scale <= 10.0) {
        return Err(Error::Schema(format!(
            "scale {} must be above 0 and at most 10",
            options.scale
        )));
    }
    if options.last_year < options.first_year {
        return Err(Error::Schema("the last school year comes before the first".into()));
    }
    let registry = ProvinceRegistry::shipped();
    let population = population_weights();
    let schools = school_roster(registry, &population, options);
    let universities = university_roster(registry, &population, options);
    let mut summary = GenerateSummary::default();
    let province_index = |code: &str| {
        registry
            .before_2025
            .iter()
            .position(|p| p.code == code)
            .unwrap_or(registry.before_2025.len()) as u64
    };

    let mut year = options.first_year;
    while year <= options.last_year {
        if options.write_from.is_some_and(|from| year < from) {
            year = year.next();
            continue;
        }
        let t = f64::from(year.start() - options.first_year.start());
        let new_list = registry.list_for(year).len() != registry.before_2025.len();
        // Notes one file written (none: a province without universities sends no such file).
        let mut emit = |kind: ReportKind, written: Option<(PathBuf, usize)>| {
            if let Some((path, rows)) = written {
                *summary.rows.entry(kind.as_str()).or_default() += rows;
                progress(&path);
                summary.files.push(path);
            }
        };
        for province in registry.list_for(year) {
            let members = |old: &str| {
                if new_list {
                    province.merged_from.iter().any(|c| c == old)
                } else {
                    province.code == old
                }
            };
            let style = FileStyle::for_province(&province.code);
            let file = ProvinceYear {
                registry,
                province,
                year,
                t,
                members: &members,
            };
            let mut rng = rng_for(options.seed, "school", &province.code, year);
            let rows = school_rows(&file, &schools, &mut rng);
            for kind in [ReportKind::Learner, ReportKind::Teacher] {
                if options.kinds.contains(&kind) {
                    let path = records_path(options, kind, &province.code, year)?;
                    let export = match style {
                        FileStyle::English | FileStyle::Utf16Tab => records::Export::English,
                        _ => records::Export::Vietnamese,
                    };
                    let mut rng = rng_for(options.seed, kind.as_str(), &province.code, year);
                    let written = records::write(kind, &path, &rows, year, province_index, &mut rng, export)?;
                    emit(kind, Some(written));
                }
            }
            if options.kinds.contains(&ReportKind::School) {
                let written = write_report(options, ReportKind::School, Some(&province.code), year, style, &rows)?;
                emit(ReportKind::School, written);
            }
            if options.kinds.contains(&ReportKind::University) {
                let mut rng = rng_for(options.seed, "university", &province.code, year);
                let rows = university_rows(&file, &universities, &mut rng);
                let written = write_report(
                    options,
                    ReportKind::University,
                    Some(&province.code),
                    year,
                    style,
                    &rows,
                )?;
                emit(ReportKind::University, written);
            }
        }
        if options.kinds.contains(&ReportKind::Content) {
            let mut rng = rng_for(options.seed, "content", "00", year);
            let rows = content_rows(year, t, &mut rng);
            let written = write_report(
                options,
                ReportKind::Content,
                None,
                year,
                FileStyle::VietnameseComma,
                &rows,
            )?;
            emit(ReportKind::Content, written);
        }
        year = year.next();
    }
    Ok(summary)
}

/// Where the records of a province and year go (made ready to write).
fn records_path(options: &GenerateOptions, kind: ReportKind, code: &str, year: SchoolYear) -> Result<PathBuf> {
    let dir = options.out.join(kind.as_str()).join(year.to_string());
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{kind}-{code}-{year}.csv")))
}

fn population_weights() -> BTreeMap<String, f64> {
    POPULATION_2019
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (code, thousands) = line.split_once(',')?;
            Some((code.to_string(), thousands.trim().parse::<f64>().ok()?))
        })
        .collect()
}

fn rng_for(seed: u64, kind: &str, code: &str, year: SchoolYear) -> ChaCha8Rng {
    // FNV-1a over the parts: files do not depend on the order they are generated in.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in kind.bytes().chain(code.bytes()).chain(year.start().to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(hash)
}

/// How far ahead (+) or behind (−) a province is, in share points.
fn lead(province: &Province) -> f64 {
    match (province.code.as_str(), province.region_code.as_str()) {
        ("01" | "79" | "48" | "31" | "92", _) => 0.14,
        (_, "RRD" | "SE") => 0.06,
        (_, "NCC" | "MRD") => 0.0,
        _ => -0.12,
    }
}

fn school_roster(
    registry: &ProvinceRegistry,
    population: &BTreeMap<String, f64>,
    options: &GenerateOptions,
) -> Vec<School> {
    let total: f64 = population.values().sum();
    let mut roster = Vec::new();
    for province in &registry.before_2025 {
        let mut rng = rng_for(options.seed, "roster", &province.code, options.first_year);
        let weight = population.get(&province.code).copied().unwrap_or(1000.0) / total;
        let remote = lead(province) < 0.0;
        // Mountain provinces have more, smaller schools per head.
        let (count_factor, size_factor) = if remote { (1.35, 0.6) } else { (0.95, 1.1) };
        let mut number = 0;
        for (level, (_, national, ..)) in LEVELS.iter().enumerate() {
            let count = (national * options.scale * weight * count_factor).round().max(1.0) as usize;
            for _ in 0..count {
                number += 1;
                let combined = level == 0 && rng.random_bool(0.05);
                let prefix = ["TH", "THCS", "THPT", "GDTX"][level];
                roster.push(School {
                    id: format!("{}{:05}", province.code, number),
                    name: format!(
                        "Trường {} {} số {number}",
                        if combined { "TH&THCS" } else { prefix },
                        province.name_vi
                    ),
                    commune: format!("Xã {}", (b'A' + rng.random_range(0..20u8)) as char),
                    old_province: province.code.clone(),
                    levels: if combined { vec![0, 1] } else { vec![level] },
                    private: rng.random_bool(if level == 2 { 0.12 } else { 0.04 }),
                    size: size_factor * rng.random_range(0.45..1.55),
                });
            }
        }
    }
    roster
}

fn university_roster(
    registry: &ProvinceRegistry,
    population: &BTreeMap<String, f64>,
    options: &GenerateOptions,
) -> Vec<University> {
    // Universities cluster in the big cities; a weight of population² (capped) and a city boost
    // puts about 40% in Hà Nội and a quarter in Hồ Chí Minh City, as in reality.
    let weights: Vec<(&Province, f64)> = registry
        .before_2025
        .iter()
        .map(|p| {
            let people = population.get(&p.code).copied().unwrap_or(1000.0);
            let boost = match p.code.as_str() {
                "01" => 12.0,
                "79" => 7.0,
                "48" | "46" | "92" | "19" => 3.0,
                _ => 1.0,
            };
            (p, (people / 1000.0).powi(2) * boost)
        })
        .collect();
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut roster = Vec::new();
    for (province, weight) in weights {
        let mut rng = rng_for(options.seed, "universities", &province.code, options.first_year);
        let expected = UNIVERSITIES * options.scale * weight / total;
        let count = expected.floor() as usize + usize::from(rng.random_bool(expected.fract()));
        for number in 1..=count {
            roster.push(University {
                id: format!("DH{}{:03}", province.code, number),
                name: format!("Trường Đại học {} {number}", province.name_vi),
                old_province: province.code.clone(),
                private: rng.random_bool(0.3),
                size: rng.random_range(0.3..1.9),
            });
        }
    }
    roster
}

/// A share that starts at `base` in the baseline year and rises by `slope` a year, for a unit
/// `lead` ahead, with noise of up to half the baseline (6 points at most); clamped to [0, 1].
fn share(rng: &mut ChaCha8Rng, base: f64, slope: f64, t: f64, lead: f64) -> f64 {
    let spread = (base * 0.5).clamp(0.005, 0.06);
    (base + lead + slope * t + rng.random_range(-spread..spread)).clamp(0.0, 1.0)
}

/// A yes/no draw whose chance follows [`share`].
fn chance(rng: &mut ChaCha8Rng, base: f64, slope: f64, t: f64, lead: f64) -> bool {
    let p = share(rng, base, slope, t, lead);
    rng.random_bool(p)
}

fn part(rng: &mut ChaCha8Rng, whole: i64, base: f64, slope: f64, t: f64, lead: f64) -> i64 {
    ((whole as f64) * share(rng, base, slope, t, lead)).round() as i64
}

/// One row of cells, by column name, before styling.
type Row = BTreeMap<&'static str, Cell>;

#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    Count(i64),
    Flag(bool),
}

/// Builds one row: identifying cells, then counts drawn as shares of their whole that follow
/// the year's trend and the unit's lead, then yes/no flags drawn the same way.
struct RowBuilder<'r> {
    row: Row,
    rng: &'r mut ChaCha8Rng,
    t: f64,
    lead: f64,
}

impl<'r> RowBuilder<'r> {
    fn new(rng: &'r mut ChaCha8Rng, t: f64, lead: f64) -> Self {
        Self {
            row: Row::new(),
            rng,
            t,
            lead,
        }
    }

    fn text(mut self, column: &'static str, value: impl Into<String>) -> Self {
        self.row.insert(column, Cell::Text(value.into()));
        self
    }

    fn count(mut self, column: &'static str, value: i64) -> Self {
        self.row.insert(column, Cell::Count(value));
        self
    }

    /// A whole and its parts, each part `(column, baseline share, yearly rise)`.
    fn parts_of(mut self, whole: (&'static str, i64), parts: &[(&'static str, f64, f64)]) -> Self {
        self.row.insert(whole.0, Cell::Count(whole.1));
        for &(column, base, slope) in parts {
            let value = part(self.rng, whole.1, base, slope, self.t, self.lead);
            self.row.insert(column, Cell::Count(value));
        }
        self
    }

    /// Flags, each `(column, baseline chance, yearly rise)`.
    fn flags(mut self, flags: &[(&'static str, f64, f64)]) -> Self {
        for &(column, base, slope) in flags {
            let value = chance(self.rng, base, slope, self.t, self.lead);
            self.row.insert(column, Cell::Flag(value));
        }
        self
    }
}

fn ownership(private: bool) -> &'static str {
    if private { "private" } else { "public" }
}

/// The file being generated: which province sends it, for which year, and which old
/// provinces' schools it covers.
struct ProvinceYear<'a> {
    registry: &'a ProvinceRegistry,
    province: &'a Province,
    year: SchoolYear,
    /// Years since the baseline.
    t: f64,
    members: &'a dyn Fn(&str) -> bool,
}

impl ProvinceYear<'_> {
    /// The lead of the old province a school or university belongs to.
    fn lead_of(&self, old_province: &str) -> f64 {
        let home = self.registry.before_2025.iter().find(|p| p.code == old_province);
        lead(home.unwrap_or(self.province))
    }
}

fn school_rows(file: &ProvinceYear<'_>, schools: &[School], rng: &mut ChaCha8Rng) -> Vec<Row> {
    let (province, year, t) = (file.province, file.year, file.t);
    let mut rows = Vec::new();
    for school in schools.iter().filter(|s| (file.members)(&s.old_province)) {
        let lead = file.lead_of(&school.old_province);
        for &level in &school.levels {
            let (name, _, pupils, ratio, periods_per_class) = LEVELS[level];
            let growth = 1.0 + 0.02 * t;
            let students = (pupils * school.size * growth * rng.random_range(0.93..1.07)).round() as i64;
            let teachers = ((students as f64) / ratio).round().max(3.0) as i64;
            let periods_total = (students / 35).max(1) * periods_per_class;
            // The plan's online share of the curriculum: 5% primary, 10% secondary by 2025.
            let (online_base, online_slope) = if level == 0 { (0.015, 0.012) } else { (0.03, 0.022) };
            let computers = (students as f64 / rng.random_range(15.0..40.0)).round() as i64;
            let mut builder = RowBuilder::new(rng, t, lead)
                .text("school_year", year.to_string())
                .text("province_code", province.code.clone())
                .text("school_id", school.id.clone())
                .text("school_name", school.name.clone())
                .text("commune", school.commune.clone())
                .text("level", name)
                .text("ownership", ownership(school.private))
                .parts_of(
                    ("students", students),
                    &[
                        ("students_online_ready", 0.32, 0.07),
                        ("students_domestic_platform", 0.22, 0.08),
                        ("students_digital_record", 0.45, 0.12),
                    ],
                )
                .parts_of(
                    ("teachers", teachers),
                    &[
                        ("teachers_online_ready", 0.45, 0.07),
                        ("teachers_digital_record", 0.5, 0.11),
                    ],
                )
                .count("computers_for_teaching", computers)
                .flags(&[
                    ("internet_for_teaching", 0.82, 0.04),
                    ("management_platform", 0.6, 0.09),
                    ("connected_national_db", 0.7, 0.07),
                    ("cashless_payment", 0.3, 0.13),
                ]);
            // Online teaching is a small share: a city leads it by a tenth of its general lead.
            builder.lead = lead * 0.1;
            let row = builder
                .parts_of(
                    ("periods_total", periods_total),
                    &[("periods_online", online_base, online_slope)],
                )
                .row;
            rows.push(row);
        }
    }
    rows
}

fn university_rows(file: &ProvinceYear<'_>, universities: &[University], rng: &mut ChaCha8Rng) -> Vec<Row> {
    let (province, year, t) = (file.province, file.year, file.t);
    let mut rows = Vec::new();
    for university in universities.iter().filter(|u| (file.members)(&u.old_province)) {
        let lead = file.lead_of(&university.old_province) * 0.5;
        let growth = 1.0 + 0.03 * t;
        let students = (8_600.0 * university.size * growth * rng.random_range(0.95..1.05)).round() as i64;
        let lecturers = (students / 23).max(20);
        let programs_total = (20.0 + 40.0 * university.size).round() as i64;
        let offers_online = chance(rng, 0.2, 0.1, t, lead);
        let online_programs = if offers_online {
            rng.random_range(1..=programs_total.min(6))
        } else {
            0
        };
        let classes_total = (students / 40).max(10);
        let second_degree = (students as f64 * rng.random_range(0.01..0.04)).round() as i64;
        let row = RowBuilder::new(rng, t, lead)
            .text("school_year", year.to_string())
            .text("province_code", province.code.clone())
            .text("institution_id", university.id.clone())
            .text("institution_name", university.name.clone())
            .text("ownership", ownership(university.private))
            .parts_of(
                ("students", students),
                &[
                    ("students_online_ready", 0.55, 0.07),
                    ("students_domestic_platform", 0.3, 0.07),
                    ("students_digital_record", 0.6, 0.09),
                ],
            )
            .parts_of(("lecturers", lecturers), &[("lecturers_online_ready", 0.6, 0.07)])
            .count("programs_total", programs_total)
            .count("online_degree_programs", online_programs)
            .parts_of(("classes_total", classes_total), &[("classes_online", 0.07, 0.035)])
            .parts_of(
                ("second_degree_learners", second_degree),
                &[("second_degree_online", 0.2, 0.07)],
            )
            .flags(&[
                ("management_platform", 0.7, 0.07),
                ("connected_national_db", 0.75, 0.06),
            ])
            .row;
        rows.push(row);
    }
    rows
}

fn content_rows(year: SchoolYear, t: f64, rng: &mut ChaCha8Rng) -> Vec<Row> {
    let mut rows = Vec::new();
    for (subject, first, last) in SUBJECTS {
        for grade in first..=last {
            let lessons_total = rng.random_range(30..=70);
            let bank = if chance(rng, 0.45, 0.12, t, 0.0) {
                rng.random_range(50..=600)
            } else {
                0
            };
            let row = RowBuilder::new(rng, t, 0.0)
                .text("school_year", year.to_string())
                .text("subject", subject)
                .count("grade", i64::from(grade))
                .parts_of(
                    ("lessons_total", lessons_total),
                    &[("lessons_with_materials", 0.18, 0.09)],
                )
                .count("question_bank_items", bank)
                .row;
            rows.push(row);
        }
    }
    rows
}

fn write_report(
    options: &GenerateOptions,
    kind: ReportKind,
    province: Option<&str>,
    year: SchoolYear,
    style: FileStyle,
    rows: &[Row],
) -> Result<Option<(PathBuf, usize)>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let dir = options.out.join(kind.as_str()).join(year.to_string());
    std::fs::create_dir_all(&dir)?;
    let stem = match province {
        Some(code) => format!("{kind}-{code}-{year}"),
        None => format!("{kind}-{year}"),
    };
    let schema = kind.schema();
    let table = styled_cells(schema, style, rows);
    let path = match style {
        FileStyle::Workbook => {
            let path = dir.join(format!("{stem}.xlsx"));
            write_workbook(&path, &table, year)?;
            path
        }
        _ => {
            let path = dir.join(format!("{stem}.csv"));
            let separator = match style {
                FileStyle::VietnameseSemicolon => ";",
                FileStyle::Utf16Tab => "\t",
                _ => ",",
            };
            let mut text = String::new();
            for line in &table {
                let fields: Vec<String> = line.iter().map(|f| crate::problem::csv_field(f)).collect();
                text.push_str(&fields.join(separator));
                text.push_str("\r\n");
            }
            if matches!(style, FileStyle::VietnameseSemicolon) {
                // Excel leaves rows of empty cells where something was deleted.
                text.push_str(&separator.repeat(schema.columns.len() - 1));
                text.push_str("\r\n");
            }
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            match style {
                FileStyle::Utf16Tab => {
                    file.write_all(&[0xFF, 0xFE])?;
                    for unit in text.encode_utf16() {
                        file.write_all(&unit.to_le_bytes())?;
                    }
                }
                FileStyle::VietnameseComma => {
                    file.write_all("\u{feff}".as_bytes())?;
                    file.write_all(text.as_bytes())?;
                }
                _ => file.write_all(text.as_bytes())?,
            }
            file.flush()?;
            path
        }
    };
    Ok(Some((path, rows.len())))
}

/// The header row and the data rows as text, written in the style's conventions.
fn styled_cells(schema: &ReportSchema, style: FileStyle, rows: &[Row]) -> Vec<Vec<String>> {
    let header: Vec<String> = schema
        .columns
        .iter()
        .map(|c| match style {
            FileStyle::English => c.name.clone(),
            FileStyle::VietnameseSemicolon => crate::text::fold_header(c.header(Lang::Vi)),
            _ => c.header(Lang::Vi).to_string(),
        })
        .collect();
    let mut table = vec![header];
    for row in rows {
        let line = schema
            .columns
            .iter()
            .map(|c| match row.get(c.name.as_str()) {
                None => String::new(),
                Some(Cell::Text(text)) => match (style, c.values.iter().find(|v| &v.value == text)) {
                    (FileStyle::English, _) | (_, None) => text.clone(),
                    (_, Some(value)) => value.aliases.first().cloned().unwrap_or_else(|| text.clone()),
                },
                Some(Cell::Count(n)) => match style {
                    FileStyle::VietnameseSemicolon => thousands(*n, '.'),
                    _ => n.to_string(),
                },
                Some(Cell::Flag(b)) => match (style, b) {
                    (FileStyle::English | FileStyle::Workbook, true) => "TRUE".into(),
                    (FileStyle::English | FileStyle::Workbook, false) => "FALSE".into(),
                    (FileStyle::VietnameseSemicolon, true) => "x".into(),
                    (FileStyle::VietnameseSemicolon, false) => String::new(),
                    (_, true) => "Có".into(),
                    (_, false) => "Không".into(),
                },
            })
            .collect();
        table.push(line);
    }
    table
}

fn thousands(n: i64, separator: char) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

fn write_workbook(path: &Path, table: &[Vec<String>], year: SchoolYear) -> Result<()> {
    let xlsx = |e: rust_xlsxwriter::XlsxError| Error::Template(e.to_string());
    let mut workbook = rust_xlsxwriter::Workbook::new();
    // A fixed creation date (the end of the school year) keeps the bytes reproducible.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(year.end() as u16, 5, 31).map_err(xlsx)?;
    workbook.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
    let sheet = workbook.add_worksheet();
    for (r, line) in table.iter().enumerate() {
        for (c, cell) in line.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            // Numbers as numbers, as a person typing into Excel would leave them.
            match cell.parse::<f64>() {
                Ok(n) if r > 0 && (!cell.starts_with('0') || cell == "0") => sheet.write_number(r, c, n),
                _ => sheet.write_string(r, c, cell),
            }
            .map_err(xlsx)?;
        }
    }
    workbook.save(path).map_err(xlsx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_234_567, '.'), "1.234.567");
        assert_eq!(thousands(999, '.'), "999");
        assert_eq!(thousands(1000, ','), "1,000");
    }
}
