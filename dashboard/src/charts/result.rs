//! A query's result as a chart (`/sql`, `POST /api/v1/sql/chart`): a kind and the columns to
//! draw, picked by the user or guessed from the result, drawn as SVG with the dashboard's look —
//! its colours, its number formats, its two languages. Pure functions of the result, so that
//! each chart can be snapshot-tested.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use ingest::{ProvinceRegistry, SchoolYear};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::charts::map::Area;
use crate::charts::{self, SHADES, Shading, chart_error, escape_xml};
use crate::i18n::{Lang, Words};

/// The kinds of chart a result can be drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// One bar per label (horizontal, longest first as the result orders them).
    Bar,
    /// One bar per label, split by a second text column.
    StackedBar,
    /// Values along school years (or any ordered label), a line per series.
    Line,
    /// Two numbers against each other, a dot per row.
    Scatter,
    /// The provinces' tile map, shaded by value.
    Map,
}

impl ChartKind {
    /// Every kind, in the order the picker shows them.
    pub const ALL: [ChartKind; 5] = [
        ChartKind::Bar,
        ChartKind::StackedBar,
        ChartKind::Line,
        ChartKind::Scatter,
        ChartKind::Map,
    ];

    /// Its name in forms and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Bar => "bar",
            ChartKind::StackedBar => "stacked_bar",
            ChartKind::Line => "line",
            ChartKind::Scatter => "scatter",
            ChartKind::Map => "map",
        }
    }

    /// The kind a name names.
    pub fn parse(name: &str) -> Option<ChartKind> {
        ChartKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Its name for people.
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            ChartKind::Bar => lang.pick("Cột", "Bar"),
            ChartKind::StackedBar => lang.pick("Cột chồng", "Stacked bar"),
            ChartKind::Line => lang.pick("Đường (theo năm học)", "Line (by school year)"),
            ChartKind::Scatter => lang.pick("Điểm (hai số)", "Scatter (two numbers)"),
            ChartKind::Map => lang.pick("Bản đồ tỉnh", "Province map"),
        }
    }
}

/// What to draw: the kind, the column of labels along the chart (`x`; for a scatter, the first
/// number), the number drawn (`y`), and the column splitting the values into series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartSpec {
    /// The kind.
    pub kind: ChartKind,
    /// The column along the chart.
    pub x: String,
    /// The number drawn.
    pub y: String,
    /// The column whose values are the series (stacked bars, lines).
    pub series: Option<String>,
}

/// The most labels (bars, years, tiles) a chart draws; the rest of the result is left out, and
/// the chart says so.
pub const MAX_LABELS: usize = 100;

/// The most series a chart draws (lines, stacks); the rest are added up as "other".
pub const MAX_SERIES: usize = 8;

/// A column of a result as a chart reads it.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Text(Vec<Option<String>>),
    Number(Vec<Option<f64>>),
}

/// A query's result, column by column: text, or numbers (integers, decimals, floats).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumns {
    names: Vec<String>,
    values: Vec<Values>,
}

impl ResultColumns {
    /// Reads a result's batches; a column of another type (dates, booleans…) is read as text.
    pub fn read(batches: &[RecordBatch]) -> Result<ResultColumns, String> {
        let Some(first) = batches.first() else {
            return Ok(ResultColumns {
                names: Vec::new(),
                values: Vec::new(),
            });
        };
        let schema = first.schema();
        let mut values = Vec::with_capacity(schema.fields().len());
        for (index, field) in schema.fields().iter().enumerate() {
            let numeric = field.data_type().is_numeric();
            let mut column = match numeric {
                true => Values::Number(Vec::new()),
                false => Values::Text(Vec::new()),
            };
            for batch in batches {
                let array = batch.column(index);
                match &mut column {
                    Values::Number(numbers) => {
                        let array = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
                        let array = array
                            .as_any()
                            .downcast_ref::<Float64Array>()
                            .ok_or("a number column did not read as numbers")?;
                        numbers.extend(array.iter());
                    }
                    Values::Text(texts) => {
                        let array = cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
                        let array = array
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .ok_or("a column did not read as text")?;
                        texts.extend(array.iter().map(|t| t.map(str::to_string)));
                    }
                }
            }
            values.push(column);
        }
        Ok(ResultColumns {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            values,
        })
    }

    /// The columns' names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn rows(&self) -> usize {
        match self.values.first() {
            Some(Values::Text(v)) => v.len(),
            Some(Values::Number(v)) => v.len(),
            None => 0,
        }
    }

    fn column(&self, name: &str) -> Option<&Values> {
        self.names.iter().position(|n| n == name).map(|i| &self.values[i])
    }

    fn texts(&self) -> impl Iterator<Item = (&str, &Vec<Option<String>>)> {
        self.names.iter().zip(&self.values).filter_map(|(n, v)| match v {
            Values::Text(t) => Some((n.as_str(), t)),
            Values::Number(_) => None,
        })
    }

    fn numbers(&self) -> impl Iterator<Item = &str> {
        self.names.iter().zip(&self.values).filter_map(|(n, v)| match v {
            Values::Number(_) => Some(n.as_str()),
            Values::Text(_) => None,
        })
    }

    /// The first guess of a chart for this result: a school-year column over several years → a
    /// line; a province code column → the map; two text columns and a number → stacked bars;
    /// a text and a number → bars; two numbers → a scatter. None when nothing fits.
    pub fn guess(&self) -> Option<ChartSpec> {
        let number = self.numbers().next()?.to_string();
        let years = self.texts().find(|(_, v)| is_years(v));
        let provinces = self.texts().find(|(name, v)| is_provinces(name, v));
        let others = |skip: &[&str]| {
            self.texts()
                .map(|(name, _)| name)
                .find(|name| !skip.contains(name))
                .map(str::to_string)
        };
        if let Some((year, values)) = years
            && distinct(values) > 1
        {
            return Some(ChartSpec {
                kind: ChartKind::Line,
                x: year.to_string(),
                y: number,
                series: others(&[year]),
            });
        }
        if let Some((code, _)) = provinces {
            return Some(ChartSpec {
                kind: ChartKind::Map,
                x: code.to_string(),
                y: number,
                series: None,
            });
        }
        let labels: Vec<&str> = self.texts().map(|(name, _)| name).collect();
        match labels.as_slice() {
            [] => {
                let second = self.numbers().nth(1)?.to_string();
                Some(ChartSpec {
                    kind: ChartKind::Scatter,
                    x: number,
                    y: second,
                    series: None,
                })
            }
            [label] => Some(ChartSpec {
                kind: ChartKind::Bar,
                x: label.to_string(),
                y: number,
                series: None,
            }),
            [label, series, ..] => Some(ChartSpec {
                kind: ChartKind::StackedBar,
                x: label.to_string(),
                y: number,
                series: Some(series.to_string()),
            }),
        }
    }

    /// Draws the chart `spec` asks for, or says in `lang` why it cannot.
    pub fn draw(&self, spec: &ChartSpec, lang: Lang) -> Result<String, String> {
        if self.rows() == 0 {
            return Err(lang
                .pick("Kết quả không có dòng nào để vẽ.", "The result has no rows to draw.")
                .to_string());
        }
        let numbers = |name: &str| match self.column(name) {
            Some(Values::Number(v)) => Ok(v),
            Some(Values::Text(_)) => Err(format!(
                "{} \"{name}\" {}",
                lang.pick("Cột", "Column"),
                lang.pick(
                    "không phải số; hãy chọn một cột số để vẽ.",
                    "is not a number; pick a column of numbers to draw."
                )
            )),
            None => Err(self.no_column(name, lang)),
        };
        let labels = |name: &str| match self.column(name) {
            Some(Values::Text(v)) => Ok(v.iter().map(|t| t.clone().unwrap_or_default()).collect::<Vec<_>>()),
            Some(Values::Number(v)) => Ok(v
                .iter()
                .map(|n| n.map(|n| lang.number(n, decimals(&[n]))).unwrap_or_default())
                .collect()),
            None => Err(self.no_column(name, lang)),
        };
        let (y, mut off_scale) = on_scale(numbers(&spec.y)?);
        let y = &y;
        let drawn = match spec.kind {
            ChartKind::Scatter => {
                let (x, off) = on_scale(numbers(&spec.x)?);
                off_scale += off;
                let points: Vec<(f64, f64)> = x.iter().zip(y).filter_map(|(x, y)| Some(((*x)?, (*y)?))).collect();
                if points.is_empty() && off_scale == 0 {
                    return Err(lang
                        .pick("Không có dòng nào có đủ hai số.", "No row has both numbers.")
                        .to_string());
                }
                scatter(&points, (&spec.x, &spec.y), lang)
            }
            ChartKind::Map => map(&labels(&spec.x)?, y, &spec.y, lang),
            ChartKind::Bar => Ok(bars(&stack(&labels(&spec.x)?, None, y, lang), lang)),
            ChartKind::StackedBar => {
                let series = match &spec.series {
                    Some(name) => Some(labels(name)?),
                    None => None,
                };
                Ok(bars(&stack(&labels(&spec.x)?, series.as_deref(), y, lang), lang))
            }
            ChartKind::Line => {
                let series = match &spec.series {
                    Some(name) => Some(labels(name)?),
                    None => None,
                };
                line(&stack(&labels(&spec.x)?, series.as_deref(), y, lang), &spec.y, lang)
            }
        }?;
        Ok(match off_scale {
            0 => drawn,
            count => with_note(&drawn, &off_scale_note(count, lang)),
        })
    }

    /// [`ResultColumns::draw`] on the blocking pool, off the threads that answer pages, and
    /// given up past `within` (the request's time limit).
    pub async fn draw_within(
        self: &Arc<Self>,
        spec: &ChartSpec,
        lang: Lang,
        within: Duration,
    ) -> Result<String, String> {
        let (columns, spec) = (Arc::clone(self), spec.clone());
        let drawing = tokio::task::spawn_blocking(move || columns.draw(&spec, lang));
        match tokio::time::timeout(within, drawing).await {
            Ok(Ok(drawn)) => drawn,
            Ok(Err(stopped)) => Err(format!("chart: {stopped}")),
            Err(_) => Err(too_long(lang)),
        }
    }

    fn no_column(&self, name: &str, lang: Lang) -> String {
        format!(
            "{} \"{name}\"; {}: {}",
            lang.pick("Kết quả không có cột", "The result has no column"),
            lang.pick("các cột là", "its columns are"),
            self.names.join(", ")
        )
    }
}

/// The fonts a PNG chart is drawn with: DejaVu Sans (Vietnamese included) and its bold,
/// bundled so that a chart looks the same on every server (`static/fonts`, with their licence).
const FONTS: [&[u8]; 2] = [
    include_bytes!("../../static/fonts/DejaVuSans.ttf"),
    include_bytes!("../../static/fonts/DejaVuSans-Bold.ttf"),
];

/// A chart's SVG as a PNG image, at twice its size (sharp on a projector and in a document); a
/// chart taller than 2,000 pixels at its own.
pub fn png(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    static OPTIONS: std::sync::OnceLock<usvg::Options<'static>> = std::sync::OnceLock::new();
    let options = OPTIONS.get_or_init(|| {
        let mut options = usvg::Options::default();
        let fonts = options.fontdb_mut();
        for font in FONTS {
            fonts.load_font_data(font.to_vec());
        }
        fonts.set_sans_serif_family("DejaVu Sans");
        options.font_family = "DejaVu Sans".to_string();
        options
    });
    let tree = usvg::Tree::from_str(svg, options).map_err(|e| format!("chart: {e}"))?;
    let size = tree.size().to_int_size();
    // Twice the size, but a tall chart (a hundred bars) at its own: at most about 30 MB of pixels.
    let scale = if size.height() > 2000 { 1 } else { 2 };
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width() * scale, size.height() * scale).ok_or("chart: no room to draw")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale as f32, scale as f32),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| format!("chart: {e}"))
}

/// The most a PNG's pixels take while it is rasterised (see [`png`]), and its encoding.
const PNG_BYTES: usize = 48 * 1024 * 1024;

/// A chart's PNG ([`png`]) on the blocking pool, its memory reserved from the server's ceiling,
/// given up past `within`.
pub async fn png_within(svg: String, lang: Lang, within: Duration) -> Result<Vec<u8>, String> {
    let _memory = warehouse::query::engine::reserve("việc vẽ ảnh PNG", "drawing a PNG chart", PNG_BYTES)
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(within, tokio::task::spawn_blocking(move || png(&svg))).await {
        Ok(Ok(png)) => png,
        Ok(Err(stopped)) => Err(format!("chart: {stopped}")),
        Err(_) => Err(too_long(lang)),
    }
}

fn too_long(lang: Lang) -> String {
    lang.pick(
        "Biểu đồ vẽ lâu hơn giới hạn thời gian của truy vấn.",
        "The chart took longer to draw than a query's time limit.",
    )
    .to_string()
}

/// Whether every value is a school year (2024-2025).
fn is_years(values: &[Option<String>]) -> bool {
    values.iter().flatten().next().is_some() && values.iter().flatten().all(|v| v.parse::<SchoolYear>().is_ok())
}

/// Whether a column holds province codes: named so, or every value a code of either list.
fn is_provinces(name: &str, values: &[Option<String>]) -> bool {
    if name.ends_with("province_code") || name.ends_with("province_2025_code") {
        return true;
    }
    let registry = ProvinceRegistry::shipped();
    values.iter().flatten().next().is_some()
        && values.iter().flatten().all(|v| {
            registry
                .before_2025
                .iter()
                .chain(&registry.from_2025)
                .any(|p| &p.code == v)
        })
}

fn distinct(values: &[Option<String>]) -> usize {
    values.iter().flatten().collect::<std::collections::BTreeSet<_>>().len()
}

/// Decimals that show values as they are: none for whole numbers, two below 10, else one.
fn decimals(values: &[f64]) -> usize {
    match values.iter().all(|v| v.fract() == 0.0) {
        true => 0,
        false if values.iter().all(|v| v.abs() < 10.0) => 2,
        false => 1,
    }
}

/// Values by label and series, in the result's order of labels (the first [`MAX_LABELS`]) and
/// of series (the [`MAX_SERIES`] largest, the rest added up as "other"); a label or series
/// given twice is added up.
#[derive(Debug, Clone, PartialEq)]
struct Stack {
    labels: Vec<String>,
    series: Vec<String>,
    /// `values[label][series]`.
    values: Vec<Vec<Option<f64>>>,
    /// Labels left out past [`MAX_LABELS`].
    left_out: usize,
}

fn stack(labels: &[String], series: Option<&[String]>, values: &[Option<f64>], lang: Lang) -> Stack {
    let series_of = |row: usize| series.map_or(String::new(), |s| s[row].clone());
    let mut totals: Vec<(String, f64)> = Vec::new();
    for (row, value) in values.iter().enumerate() {
        let name = series_of(row);
        match totals.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += value.unwrap_or(0.0).abs(),
            None => totals.push((name, value.unwrap_or(0.0).abs())),
        }
    }
    let mut kept: Vec<String> = totals.iter().map(|(n, _)| n.clone()).collect();
    let other = lang.pick("khác", "other").to_string();
    if kept.len() > MAX_SERIES {
        let mut by_size = totals.clone();
        by_size.sort_by(|a, b| b.1.total_cmp(&a.1));
        let largest: Vec<String> = by_size.into_iter().take(MAX_SERIES - 1).map(|(n, _)| n).collect();
        kept.retain(|n| largest.contains(n));
        kept.push(other.clone());
    }
    let mut out = Stack {
        labels: Vec::new(),
        series: kept.clone(),
        values: Vec::new(),
        left_out: 0,
    };
    let mut seen = std::collections::HashSet::new();
    for (row, value) in values.iter().enumerate() {
        let label = &labels[row];
        let place = match out.labels.iter().position(|l| l == label) {
            Some(place) => place,
            None if out.labels.len() < MAX_LABELS => {
                out.labels.push(label.clone());
                out.values.push(vec![None; kept.len()]);
                out.labels.len() - 1
            }
            None => {
                if seen.insert(label.clone()) {
                    out.left_out += 1;
                }
                continue;
            }
        };
        let name = series_of(row);
        let column = kept.iter().position(|n| *n == name).unwrap_or(kept.len() - 1);
        if let Some(value) = value {
            let cell = &mut out.values[place][column];
            *cell = Some(cell.unwrap_or(0.0) + value);
        }
    }
    out
}

/// The colours of series, in order (the dashboard's blue first).
const PALETTE: [&str; MAX_SERIES] = [
    "#1d4ed8", "#d95f0e", "#1b7f3b", "#7c3aed", "#c01f1f", "#0f766e", "#b45309", "#6b7280",
];

const WIDTH: u32 = 720;
const ROW: u32 = 30;
const LABEL: u32 = 220;

/// Horizontal bars, a row per label, each split by series, the total written at its end; a
/// legend when there are series; a note when labels were left out.
fn bars(stack: &Stack, lang: Lang) -> String {
    let legend = if stack.series.len() > 1 { ROW } else { 0 };
    let note = if stack.left_out > 0 { ROW } else { 0 };
    let height = stack.labels.len() as u32 * ROW + legend + note + 10;
    let totals: Vec<f64> = stack
        .values
        .iter()
        .map(|row| row.iter().flatten().filter(|v| **v > 0.0).sum())
        .collect();
    let all: Vec<f64> = stack.values.iter().flatten().flatten().copied().collect();
    let places = decimals(&all);
    let high = totals.iter().copied().fold(0.0f64, f64::max).max(f64::MIN_POSITIVE) * 1.18;
    let room = f64::from(WIDTH - LABEL - 8);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" class="result-chart" font-family="sans-serif" font-size="15">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    if legend > 0 {
        svg.push_str(&legend_svg(&stack.series, 4));
    }
    for (index, label) in stack.labels.iter().enumerate() {
        let top = legend + index as u32 * ROW + 4;
        let middle = top + ROW / 2 + 4;
        svg.push_str(&format!(
            r##"<text x="{x}" y="{middle}" text-anchor="end" fill="#1f2937">{label}</text>"##,
            x = LABEL - 8,
            label = escape_xml(&shorten(label, 30)),
        ));
        let mut x = f64::from(LABEL);
        for (series, value) in stack.values[index].iter().enumerate() {
            let Some(value) = value.filter(|v| *v > 0.0) else {
                continue;
            };
            let width = room * value / high;
            svg.push_str(&format!(
                r#"<rect x="{x:.1}" y="{y}" width="{width:.1}" height="{h}" fill="{fill}"><title>{title}</title></rect>"#,
                y = top + 3,
                h = ROW - 8,
                fill = PALETTE[series % PALETTE.len()],
                title = escape_xml(&format!(
                    "{label}{}: {}",
                    match stack.series[series].as_str() {
                        "" => String::new(),
                        name => format!(" — {name}"),
                    },
                    lang.number(value, places)
                )),
            ));
            x += width;
        }
        svg.push_str(&format!(
            r##"<text x="{x:.1}" y="{middle}" fill="#1f2937" font-weight="600">{total}</text>"##,
            x = x + 5.0,
            total = lang.number(totals[index], places),
        ));
    }
    if note > 0 {
        svg.push_str(&format!(
            r##"<text x="8" y="{y}" fill="#6b7280">{text}</text>"##,
            y = height - 12,
            text = escape_xml(&left_out(stack.left_out, lang)),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The values a chart can place on its axes ([`charts::plottable`]), the others (infinite, not
/// a number, beyond ±10^15) taken as missing, and their count.
fn on_scale(values: &[Option<f64>]) -> (Vec<Option<f64>>, usize) {
    let mut off = 0;
    let kept = values
        .iter()
        .map(|value| match value {
            Some(v) if !charts::plottable(*v) => {
                off += 1;
                None
            }
            other => *other,
        })
        .collect();
    (kept, off)
}

fn off_scale_note(count: usize, lang: Lang) -> String {
    match lang {
        Lang::Vi => format!("{count} giá trị không được vẽ: vô hạn, không phải số hoặc vượt quá ±10^15."),
        Lang::En => format!("{count} values are not drawn: infinite, not a number or beyond ±10^15."),
    }
}

/// A chart with a line of text under it: the chart as it was, inside a drawing one line taller.
fn with_note(svg: &str, note: &str) -> String {
    let size = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let opening = &svg[..svg.find('>').unwrap_or(svg.len())];
        opening
            .find(&key)
            .map(|at| &opening[at + key.len()..])
            .and_then(|rest| rest[..rest.find('"').unwrap_or(0)].parse().ok())
            .unwrap_or(WIDTH)
    };
    let (width, height) = (size("width"), size("height"));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" viewBox="0 0 {width} {total}" class="result-chart" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>{svg}<text x="8" y="{y}" fill="#6b7280">{note}</text></svg>"##,
        total = height + ROW,
        y = height + 19,
        note = escape_xml(note),
    )
}

fn left_out(count: usize, lang: Lang) -> String {
    match lang {
        Lang::Vi => format!("Chỉ vẽ {MAX_LABELS} nhãn đầu; {count} nhãn khác không được vẽ."),
        Lang::En => format!("Only the first {MAX_LABELS} labels are drawn; {count} more are left out."),
    }
}

/// A legend of series, in a row at `y`.
fn legend_svg(series: &[String], y: u32) -> String {
    let mut svg = String::new();
    let mut x = 8.0;
    for (index, name) in series.iter().enumerate() {
        let name = shorten(name, 20);
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="{y}" width="14" height="14" fill="{fill}"/><text x="{tx:.1}" y="{ty}" fill="#1f2937">{name}</text>"##,
            fill = PALETTE[index % PALETTE.len()],
            tx = x + 19.0,
            ty = y + 12,
            name = escape_xml(&name),
        ));
        x += 30.0 + 8.5 * name.chars().count() as f64;
    }
    svg
}

fn shorten(text: &str, chars: usize) -> String {
    match text.chars().count() > chars {
        true => format!("{}…", text.chars().take(chars - 1).collect::<String>()),
        false => text.to_string(),
    }
}

/// A line per series along the labels (school years sort as written).
fn line(stack: &Stack, y_name: &str, lang: Lang) -> Result<String, String> {
    let mut order: Vec<usize> = (0..stack.labels.len()).collect();
    order.sort_by(|a, b| stack.labels[*a].cmp(&stack.labels[*b]));
    let labels: Vec<String> = order.iter().map(|&i| stack.labels[i].clone()).collect();
    let all: Vec<f64> = stack.values.iter().flatten().flatten().copied().collect();
    let places = decimals(&all);
    let (low, high) = (
        all.iter().copied().fold(0.0f64, f64::min),
        all.iter().copied().fold(0.0f64, f64::max),
    );
    let high = if high > low {
        high + (high - low) * 0.08
    } else {
        low + 1.0
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.3f64..(labels.len().max(2) as f64 - 0.7), low..high)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(labels.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                match (x - i).abs() < 0.01 && i >= 0.0 {
                    true => labels.get(i as usize).cloned().unwrap_or_default(),
                    false => String::new(),
                }
            })
            .y_label_formatter(&|y| lang.number(*y, places.min(1)))
            .y_desc(y_name)
            .label_style(("sans-serif", 14))
            .disable_x_mesh()
            .draw()
            .map_err(chart_error)?;
        for (series, name) in stack.series.iter().enumerate() {
            let colour = colour(series);
            let points: Vec<(f64, f64)> = order
                .iter()
                .enumerate()
                .filter_map(|(x, &label)| stack.values[label][series].map(|v| (x as f64, v)))
                .collect();
            let drawn = chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
                .map_err(chart_error)?;
            if !name.is_empty() {
                drawn
                    .label(shorten(name, 24))
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
            }
            chart
                .draw_series(points.iter().map(|(x, y)| Circle::new((*x, *y), 4, colour.filled())))
                .map_err(chart_error)?;
        }
        if stack.series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0xd1, 0xd5, 0xdb))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn colour(series: usize) -> RGBColor {
    let hex = PALETTE[series % PALETTE.len()].trim_start_matches('#');
    let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).unwrap_or(0);
    RGBColor(channel(0), channel(2), channel(4))
}

/// A dot per row with both numbers (the axes from 0 to 1 when there is none).
fn scatter(points: &[(f64, f64)], names: (&str, &str), lang: Lang) -> Result<String, String> {
    let span = |values: Vec<f64>| {
        if values.is_empty() {
            return (0.0, 1.0);
        }
        let (low, high) = (
            values.iter().copied().fold(f64::MAX, f64::min),
            values.iter().copied().fold(f64::MIN, f64::max),
        );
        let pad = ((high - low) * 0.06).max(0.5);
        ((low - pad).min(if low >= 0.0 { 0.0 } else { low - pad }), high + pad)
    };
    let (x_low, x_high) = span(points.iter().map(|p| p.0).collect());
    let (y_low, y_high) = span(points.iter().map(|p| p.1).collect());
    let (x_places, y_places) = (
        decimals(&points.iter().map(|p| p.0).collect::<Vec<_>>()).min(1),
        decimals(&points.iter().map(|p| p.1).collect::<Vec<_>>()).min(1),
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(names.0)
            .y_desc(names.1)
            .x_label_formatter(&|x| lang.number(*x, x_places))
            .y_label_formatter(&|y| lang.number(*y, y_places))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(chart_error)?;
        let blue = colour(0);
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, blue.mix(0.7).filled())))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The provinces' tiles shaded by value in five equal steps from the lowest to the highest, a
/// province without a value grey; the list (63 or 34) is the one the codes belong to; a legend
/// of the steps.
fn map(codes: &[String], values: &[Option<f64>], y_name: &str, lang: Lang) -> Result<String, String> {
    let registry = ProvinceRegistry::shipped();
    let value_of = |code: &str| -> Option<f64> {
        let mut found = None;
        for (c, v) in codes.iter().zip(values) {
            if c == code {
                found = Some(found.unwrap_or(0.0) + (*v)?);
            }
        }
        found
    };
    // The 34 provinces of 2025 when every code is one of them, else the 63 before.
    let (list, provinces) = match codes.iter().all(|c| registry.from_2025.iter().any(|p| &p.code == c)) {
        true => ("2025", &registry.from_2025),
        false => ("2008", &registry.before_2025),
    };
    let shown: Vec<f64> = provinces.iter().filter_map(|p| value_of(&p.code)).collect();
    let (low, high) = (
        shown.iter().copied().fold(f64::MAX, f64::min),
        shown.iter().copied().fold(f64::MIN, f64::max),
    );
    let places = decimals(&shown);
    let shading = Shading { low, high };
    let areas: Vec<Area> = charts::map::codes(list)
        .into_iter()
        .map(|code| {
            let province = provinces.iter().find(|p| p.code == code);
            let name = province.map_or(code.as_str(), |p| lang.pick(&p.name_vi, &p.name_en));
            let value = value_of(&code);
            Area {
                title: format!(
                    "{name} ({code}): {}",
                    value.map_or_else(|| "—".to_string(), |v| lang.number(v, places))
                ),
                href: format!("/province/{code}"),
                fill: value.map_or_else(|| charts::status_css(None), |v| shading.fill(v).to_string()),
                code,
            }
        })
        .collect();
    let drawn = charts::map::boundary_map(list, &areas, lang)?;
    // The map, and below it the legend: the column, and its shades from low to high.
    let (width, height) = (drawn.width, drawn.height);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" class="result-chart" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>"#,
        w = width.max(260),
        h = height + 54,
    );
    svg.push_str(&drawn.svg);
    let y = height + 10;
    svg.push_str(&format!(
        r##"<text x="0" y="{ty}" fill="#1f2937">{name}</text>"##,
        ty = y + 12,
        name = escape_xml(&shorten(y_name, 40)),
    ));
    if !shown.is_empty() {
        for (index, shade) in SHADES.iter().enumerate() {
            svg.push_str(&format!(
                r#"<rect x="{x}" y="{ry}" width="28" height="12" fill="{shade}"/>"#,
                x = 40 + index as u32 * 30,
                ry = y + 22,
            ));
        }
        svg.push_str(&format!(
            r##"<text x="0" y="{ty}" fill="#1f2937">{low}</text><text x="{hx}" y="{ty}" fill="#1f2937">{high}</text>"##,
            ty = y + 33,
            hx = 40 + SHADES.len() as u32 * 30 + 6,
            low = lang.number(low, places),
            high = lang.number(high, places),
        ));
    }
    svg.push_str("</svg>");
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// A result of text and number columns, given as (name, values) with numbers as `Ok`.
    fn result(columns: &[(&str, Vec<Result<f64, &str>>)]) -> ResultColumns {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, values)| match values.first() {
                Some(Ok(_)) => Field::new(*name, DataType::Float64, true),
                _ => Field::new(*name, DataType::Utf8, true),
            })
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, values)| match values.first() {
                Some(Ok(_)) => Arc::new(values.iter().map(|v| v.ok()).collect::<Float64Array>()) as ArrayRef,
                _ => Arc::new(values.iter().map(|v| v.err()).collect::<StringArray>()) as ArrayRef,
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch");
        ResultColumns::read(&[batch]).expect("read")
    }

    fn text(values: &[&'static str]) -> Vec<Result<f64, &'static str>> {
        values.iter().map(|v| Err(*v)).collect()
    }

    fn numbers(values: &[f64]) -> Vec<Result<f64, &'static str>> {
        values.iter().map(|v| Ok(*v)).collect()
    }

    fn spec(kind: ChartKind, x: &str, y: &str, series: Option<&str>) -> ChartSpec {
        ChartSpec {
            kind,
            x: x.into(),
            y: y.into(),
            series: series.map(str::to_string),
        }
    }

    #[test]
    fn the_first_guess_follows_the_result() {
        let by_year = result(&[
            (
                "school_year",
                text(&["2023-2024", "2024-2025", "2023-2024", "2024-2025"]),
            ),
            (
                "level",
                text(&["primary", "primary", "upper_secondary", "upper_secondary"]),
            ),
            ("pupils", numbers(&[10.0, 12.0, 5.0, 6.0])),
        ]);
        assert_eq!(
            by_year.guess(),
            Some(spec(ChartKind::Line, "school_year", "pupils", Some("level")))
        );

        let by_province = result(&[
            ("school_year", text(&["2024-2025", "2024-2025"])),
            ("province_2025_code", text(&["01", "79"])),
            ("share", numbers(&[51.5, 48.0])),
        ]);
        assert_eq!(
            by_province.guess(),
            Some(spec(ChartKind::Map, "province_2025_code", "share", None)),
            "one year: the map"
        );
        let codes_named_otherwise = result(&[("ma", text(&["01", "79", "92"])), ("n", numbers(&[1.0, 2.0, 3.0]))]);
        assert_eq!(codes_named_otherwise.guess().map(|s| s.kind), Some(ChartKind::Map));

        let by_level = result(&[
            ("level", text(&["primary", "lower_secondary"])),
            ("n", numbers(&[3.0, 4.0])),
        ]);
        assert_eq!(by_level.guess(), Some(spec(ChartKind::Bar, "level", "n", None)));

        let two_texts = result(&[
            ("level", text(&["primary", "primary"])),
            ("ownership", text(&["public", "private"])),
            ("n", numbers(&[3.0, 4.0])),
        ]);
        assert_eq!(
            two_texts.guess(),
            Some(spec(ChartKind::StackedBar, "level", "n", Some("ownership")))
        );

        let two_numbers = result(&[
            ("students", numbers(&[300.0, 500.0])),
            ("teachers", numbers(&[20.0, 31.0])),
        ]);
        assert_eq!(
            two_numbers.guess(),
            Some(spec(ChartKind::Scatter, "students", "teachers", None))
        );

        let only_text = result(&[("name", text(&["a", "b"]))]);
        assert_eq!(only_text.guess(), None);
    }

    #[test]
    fn bars_add_up_each_label_and_say_what_was_left_out() {
        let labels: Vec<&'static str> = (0..(MAX_LABELS + 5))
            .map(|i| &*Box::leak(format!("school {i}").into_boxed_str()))
            .collect();
        let many = result(&[("school", text(&labels)), ("n", numbers(&vec![2.0; labels.len()]))]);
        let svg = many
            .draw(&spec(ChartKind::Bar, "school", "n", None), Lang::En)
            .expect("svg");
        assert_eq!(svg.matches("<rect x=").count(), MAX_LABELS);
        assert!(
            svg.contains("Only the first 100 labels are drawn; 5 more are left out."),
            "{svg}"
        );

        let stacked = result(&[
            ("level", text(&["primary", "primary", "upper_secondary"])),
            ("ownership", text(&["public", "private", "public"])),
            ("n", numbers(&[1200.0, 300.5, 800.0])),
        ]);
        let svg = stacked
            .draw(&spec(ChartKind::StackedBar, "level", "n", Some("ownership")), Lang::Vi)
            .expect("svg");
        assert!(svg.contains("1.500,5"), "the total, in Vietnamese digits: {svg}");
        assert!(svg.contains(">public<") && svg.contains(">private<"), "the legend");
        let svg = stacked
            .draw(&spec(ChartKind::StackedBar, "level", "n", Some("ownership")), Lang::En)
            .expect("svg");
        assert!(svg.contains("1,500.5"), "{svg}");
    }

    #[test]
    fn a_chart_that_cannot_be_drawn_says_why_in_the_language() {
        let r = result(&[("level", text(&["primary"])), ("n", numbers(&[3.0]))]);
        let problem = r
            .draw(&spec(ChartKind::Bar, "level", "level", None), Lang::En)
            .expect_err("text");
        assert!(problem.contains("\"level\" is not a number"), "{problem}");
        let problem = r
            .draw(&spec(ChartKind::Bar, "grade", "n", None), Lang::Vi)
            .expect_err("missing");
        assert!(
            problem.contains("không có cột \"grade\"") && problem.contains("level, n"),
            "{problem}"
        );
    }

    #[test]
    fn values_off_any_scale_are_left_out_and_said() {
        let years = text(&["2021-2022", "2022-2023", "2023-2024", "2024-2025", "2025-2026"]);
        let wild = numbers(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e308, 42.0]);
        let r = result(&[("school_year", years), ("share", wild.clone()), ("twice", wild)]);
        for kind in ChartKind::ALL {
            let (x, y) = match kind {
                ChartKind::Scatter => ("share", "twice"),
                _ => ("school_year", "share"),
            };
            let drawn = r.draw(&spec(kind, x, y, None), Lang::En);
            if kind == ChartKind::Map {
                continue;
            }
            let svg = drawn.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(svg.contains("values are not drawn"), "{kind:?}: {svg}");
            let figures = svg.replace("infinite, not a number", "");
            assert!(
                !figures.contains("inf") && !figures.contains("NaN") && !figures.contains('∞'),
                "{kind:?} places no infinite value: {svg}"
            );
            png(&svg).unwrap_or_else(|e| panic!("{kind:?} as PNG: {e}"));
        }
        let only_infinite = result(&[
            ("school_year", text(&["2023-2024", "2024-2025"])),
            ("share", numbers(&[f64::INFINITY, f64::INFINITY])),
        ]);
        let svg = only_infinite
            .draw(&spec(ChartKind::Line, "school_year", "share", None), Lang::Vi)
            .expect("an empty chart with its note");
        assert!(svg.contains("2 giá trị không được vẽ"), "{svg}");
        let svg = only_infinite
            .draw(&spec(ChartKind::Scatter, "share", "share", None), Lang::En)
            .expect("empty axes with the note");
        assert!(svg.contains("4 values are not drawn"), "{svg}");
    }

    #[test]
    fn the_map_takes_the_list_its_codes_belong_to() {
        let new_list = result(&[("province_code", text(&["01", "79"])), ("n", numbers(&[1.0, 5.0]))]);
        let svg = new_list
            .draw(&spec(ChartKind::Map, "province_code", "n", None), Lang::En)
            .expect("map");
        // Every province a link; the lowest value the lightest shade, the highest the darkest.
        assert_eq!(svg.matches("<a href=").count(), 34, "the 34 provinces of 2025");
        let linked = |code: &str| {
            let start = svg.find(&format!(r#"data-code="{code}""#)).expect("linked");
            svg[start..start + svg[start..].find("</a>").expect("closed")].to_string()
        };
        assert!(linked("01").contains(SHADES[0]) && linked("79").contains(SHADES[4]));
        assert!(linked("79").contains("(79): 5"), "{}", linked("79"));
        let old_list = result(&[("province_code", text(&["01", "02"])), ("n", numbers(&[1.0, 5.0]))]);
        let svg = old_list
            .draw(&spec(ChartKind::Map, "province_code", "n", None), Lang::En)
            .expect("map");
        assert_eq!(svg.matches("<a href=").count(), 63, "02 (Hà Giang) is of the 63");
    }

    #[test]
    fn integers_read_as_numbers() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("level", DataType::Utf8, true),
                Field::new("n", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![Some(3), None])),
            ],
        )
        .expect("batch");
        let r = ResultColumns::read(&[batch]).expect("read");
        assert_eq!(r.guess().map(|s| s.kind), Some(ChartKind::Bar));
    }

    /// The exact SVG of each kind of chart in both languages, so that a change to a drawing is
    /// seen and reviewed (`cargo insta review`).
    #[test]
    fn result_chart_snapshots() {
        let r = result(&[
            (
                "school_year",
                text(&["2023-2024", "2024-2025", "2023-2024", "2024-2025"]),
            ),
            (
                "level",
                text(&["primary", "primary", "upper_secondary", "upper_secondary"]),
            ),
            ("province_code", text(&["01", "01", "79", "79"])),
            ("pupils", numbers(&[1000.0, 1200.0, 500.5, 600.0])),
            ("ready", numbers(&[510.0, 640.0, 220.0, 330.0])),
        ]);
        for lang in [Lang::Vi, Lang::En] {
            for chart in [
                spec(ChartKind::Bar, "level", "pupils", None),
                spec(ChartKind::StackedBar, "school_year", "pupils", Some("level")),
                spec(ChartKind::Line, "school_year", "pupils", Some("level")),
                spec(ChartKind::Scatter, "pupils", "ready", None),
                spec(ChartKind::Map, "province_code", "ready", None),
            ] {
                let svg = r.draw(&chart, lang).expect("svg");
                insta::assert_snapshot!(format!("result_{}_{}", chart.kind.as_str(), lang.code()), svg);
            }
        }
    }
}
