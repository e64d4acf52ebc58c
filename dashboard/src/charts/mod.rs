//! Charts as SVG text, drawn with plotters: pure functions of their data, no web types, so each
//! can be snapshot-tested. Here the dashboard's own charts (a KPI's trend, ranking, map,
//! breakdowns); in [`result`], the charts of a query's result. Both place only values an axis
//! can hold ([`plottable`]).

pub mod map;
pub mod result;

use plotters::prelude::*;
use warehouse::tables::rows::Status;

/// Colour of a status on charts and cards.
pub fn status_colour(status: Option<Status>) -> RGBColor {
    match status {
        Some(Status::Met) => RGBColor(0x1b, 0x7f, 0x3b),
        Some(Status::OnTrack) => RGBColor(0x3c, 0xa0, 0x5a),
        Some(Status::AtRisk) => RGBColor(0xe0, 0xa1, 0x00),
        Some(Status::OffTrack) => RGBColor(0xd9, 0x5f, 0x0e),
        Some(Status::Missed) => RGBColor(0xc0, 0x1f, 0x1f),
        Some(Status::NoBaseline) | None => RGBColor(0x6b, 0x72, 0x80),
    }
}

/// A value's CSS colour, as `#rrggbb`.
pub fn status_css(status: Option<Status>) -> String {
    let RGBColor(r, g, b) = status_colour(status);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The shades of a map by value, light to dark.
pub const SHADES: [&str; 5] = ["#dbeafe", "#93c5fd", "#3b82f6", "#1d4ed8", "#1e3a8a"];

/// Values shaded in [`SHADES`]' five equal steps from the lowest to the highest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shading {
    /// The lowest value, in the lightest shade.
    pub low: f64,
    /// The highest, in the darkest.
    pub high: f64,
}

impl Shading {
    /// The shading of `values`, none when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        values.into_iter().fold(None, |range: Option<Self>, v| {
            Some(range.map_or(Self { low: v, high: v }, |r| Self {
                low: r.low.min(v),
                high: r.high.max(v),
            }))
        })
    }

    /// The shade of `value`; the middle one when every value is the same.
    pub fn fill(&self, value: f64) -> &'static str {
        let step = match self.high > self.low {
            true => (((value - self.low) / (self.high - self.low)) * SHADES.len() as f64)
                .floor()
                .clamp(0.0, SHADES.len() as f64 - 1.0) as usize,
            false => SHADES.len() / 2,
        };
        SHADES[step]
    }
}

/// One point of a series: a school year's label and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Label (e.g. "2024-2025").
    pub label: String,
    /// Value, if the year has one.
    pub value: Option<f64>,
}

/// What the trend chart shows besides the series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrendGuides {
    /// The target: its year's label and value.
    pub target: Option<(String, f64)>,
    /// The straight line from the baseline value to the target: (label, value) at both ends.
    pub line: Option<((String, f64), (String, f64))>,
}

/// A drawing's error, as a chart's caller shows it.
pub(crate) fn chart_error<E: std::fmt::Debug>(e: E) -> String {
    format!("chart: {e:?}")
}

/// A sparkline: the series as a line, 120 × 32, no axes.
pub fn sparkline(points: &[Point], status: Option<Status>) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (120, 32)).into_drawing_area();
        let values: Vec<(usize, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.value.map(|v| (i, v)))
            .collect();
        let (low, high) = bounds(values.iter().map(|(_, v)| *v));
        let mut chart = ChartBuilder::on(&root)
            .margin(3)
            .build_cartesian_2d(0f64..(points.len().max(2) - 1) as f64, low..high)
            .map_err(chart_error)?;
        let colour = status_colour(status);
        chart
            .draw_series(LineSeries::new(
                values.iter().map(|(i, v)| (*i as f64, *v)),
                colour.stroke_width(2),
            ))
            .map_err(chart_error)?;
        chart
            .draw_series(
                values
                    .last()
                    .map(|(i, v)| Circle::new((*i as f64, *v), 3, colour.filled())),
            )
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The largest magnitude an axis takes. Past it (and for infinities and NaN) a value is not
/// placed on a chart: plotters' tick finder never ends on an infinite range, and no figure of
/// education is that large.
pub const MAX_PLOTTED: f64 = 1e15;

/// Whether a value can be placed on an axis ([`MAX_PLOTTED`]).
pub fn plottable(value: f64) -> bool {
    value.is_finite() && value.abs() <= MAX_PLOTTED
}

/// The largest of `values` that can be placed on an axis, at least `floor`.
pub fn highest(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.filter(|v| plottable(*v)).fold(floor, f64::max)
}

/// The range of an axis over the values that can be placed on it, padded by a tenth.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| plottable(*v)) {
        low = low.min(v);
        high = high.max(v);
    }
    if low > high {
        return (0.0, 1.0);
    }
    let pad = ((high - low) * 0.1).max(0.5);
    (low - pad, high + pad)
}

/// The national trend: the values by year, the target as a horizontal line, and the straight
/// line from the baseline value to the target.
pub fn trend(points: &[Point], guides: &TrendGuides, y_label: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let index_of = |label: &str| points.iter().position(|p| p.label == label).map(|i| i as f64);
        let mut all: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
        all.extend(guides.target.as_ref().map(|t| t.1));
        all.push(0.0);
        let (_, high) = bounds(all.into_iter());
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.3f64..(points.len().max(2) as f64 - 0.7), 0f64..high)
            .map_err(chart_error)?;
        let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(points.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .disable_x_mesh()
            .draw()
            .map_err(chart_error)?;
        if let Some((target_label, target)) = &guides.target {
            let end = index_of(target_label).unwrap_or(points.len() as f64 - 1.0);
            let target_colour = RGBColor(0xc0, 0x1f, 0x1f);
            chart
                .draw_series(LineSeries::new(
                    [(-0.3, *target), (end.max(points.len() as f64 - 0.7), *target)],
                    target_colour.stroke_width(1),
                ))
                .map_err(chart_error)?;
        }
        if let Some(((from_label, from), (to_label, to))) = &guides.line
            && let (Some(a), Some(b)) = (
                index_of(from_label),
                index_of(to_label).or(Some(points.len() as f64 - 1.0)),
            )
        {
            chart
                .draw_series(DashedLineSeries::new(
                    [(a, *from), (b, *to)],
                    6,
                    4,
                    RGBColor(0x6b, 0x72, 0x80).into(),
                ))
                .map_err(chart_error)?;
        }
        let values: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.value.map(|v| (i as f64, v)))
            .collect();
        let blue = RGBColor(0x1d, 0x4e, 0xd8);
        chart
            .draw_series(LineSeries::new(values.clone(), blue.stroke_width(3)))
            .map_err(chart_error)?;
        chart
            .draw_series(values.iter().map(|(x, y)| Circle::new((*x, *y), 4, blue.filled())))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// One bar of a ranked bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label (a province's name).
    pub label: String,
    /// Value.
    pub value: f64,
    /// Status, for the colour.
    pub status: Option<Status>,
}

/// Units ranked by value as horizontal bars coloured by status, with the target as a line.
pub fn ranked_bars(bars: &[Bar], target: Option<f64>) -> Result<String, String> {
    let mut svg = String::new();
    {
        let height = (bars.len() as u32 * 16 + 40).max(80);
        let root = SVGBackend::with_string(&mut svg, (640, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let high = highest(bars.iter().map(|b| b.value).chain(target), 1.0) * 1.05;
        let count = bars.len().max(1);
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(24)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..high, (0..count).into_segmented())
            .map_err(chart_error)?;
        // The first bar at the top: slot i from the bottom holds bar count - 1 - i.
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(count)
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(slot) => count
                    .checked_sub(slot + 1)
                    .and_then(|i| labels.get(i))
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, bar)| {
                let slot = count - 1 - i;
                let mut rectangle = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(slot)),
                        (bar.value, SegmentValue::Exact(slot + 1)),
                    ],
                    status_colour(bar.status).filled(),
                );
                rectangle.set_margin(2, 2, 0, 0);
                rectangle
            }))
            .map_err(chart_error)?;
        if let Some(target) = target {
            chart
                .draw_series(LineSeries::new(
                    [(target, SegmentValue::Exact(0)), (target, SegmentValue::Exact(count))],
                    RGBColor(0xc0, 0x1f, 0x1f).stroke_width(2),
                ))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// A province's trend against the national one: the province in its status colour, the
/// country as a grey dashed line, the target as a red line; 240 × 90, no axes.
pub fn versus(
    province: &[Point],
    national: &[Point],
    target: Option<f64>,
    status: Option<Status>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (240, 90)).into_drawing_area();
        let series = |points: &[Point]| -> Vec<(f64, f64)> {
            points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.value.map(|v| (i as f64, v)))
                .collect()
        };
        let (ours, country) = (series(province), series(national));
        let all = ours.iter().chain(&country).map(|(_, v)| *v).chain(target);
        let (low, high) = bounds(all);
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .build_cartesian_2d(0f64..(province.len().max(national.len()).max(2) - 1) as f64, low..high)
            .map_err(chart_error)?;
        if let Some(target) = target {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, target), ((province.len().max(2) - 1) as f64, target)],
                    RGBColor(0xc0, 0x1f, 0x1f).stroke_width(1),
                ))
                .map_err(chart_error)?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                country,
                4,
                3,
                RGBColor(0x6b, 0x72, 0x80).stroke_width(2),
            ))
            .map_err(chart_error)?;
        let colour = status_colour(status);
        chart
            .draw_series(LineSeries::new(ours.clone(), colour.stroke_width(2)))
            .map_err(chart_error)?;
        chart
            .draw_series(ours.iter().map(|(x, y)| Circle::new((*x, *y), 3, colour.filled())))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// One tile of the tile-grid map.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Column, west to east.
    pub col: u32,
    /// Row, north to south.
    pub row: u32,
    /// The province code, written on the tile.
    pub code: String,
    /// The tooltip: the province's name and value.
    pub title: String,
    /// Where the tile links to.
    pub href: String,
    /// Its colour, as CSS (a status's, or a shade of a value).
    pub fill: String,
    /// The colour of its code: white on the dark fills, dark on the light ones.
    pub ink: &'static str,
}

/// Where each province sits on the tile-grid map: `list,code,col,row`, for the 63 provinces
/// (list `2008`) and the 34 of 1 July 2025 (list `2025`). Rows run north to south, columns
/// west to east, roughly as on a map of Viet Nam.
const TILE_GRID: &str = include_str!("../../static/tile-grid.csv");

/// Pixels per tile side, and between tiles.
const TILE: u32 = 30;
const TILE_GAP: u32 = 3;

/// Pixels from one tile to the next.
pub const TILE_STEP: u32 = TILE + TILE_GAP;

/// The provinces as equal squares laid out roughly as on a map, each in its colour, with
/// its name and value as a tooltip and a link to its page. Written as SVG directly: plotters
/// has no links or tooltips, and the map has no axes to draw.
pub fn tile_map(tiles: &[Tile]) -> String {
    let step = TILE_STEP;
    let width = tiles.iter().map(|t| t.col + 1).max().unwrap_or(1) * step;
    let height = tiles.iter().map(|t| t.row + 1).max().unwrap_or(1) * step;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="tiles">"#
    );
    for tile in tiles {
        let (x, y) = (tile.col * step, tile.row * step);
        svg.push_str(&format!(
            r##"<a href="{href}"><title>{title}</title><rect x="{x}" y="{y}" width="{TILE}" height="{TILE}" rx="3" fill="{fill}"/><text x="{tx}" y="{ty}" text-anchor="middle" font-size="11" font-family="sans-serif" fill="{ink}">{code}</text></a>"##,
            href = escape_xml(&tile.href),
            title = escape_xml(&tile.title),
            fill = escape_xml(&tile.fill),
            ink = tile.ink,
            tx = x + TILE / 2,
            ty = y + TILE / 2 + 4,
            code = escape_xml(&tile.code),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a breakdown: a unit's label, its value (none when withheld or missing), the
/// value as the page writes it, and its status.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The unit's name ("Lớp 7", "Nữ").
    pub label: String,
    /// Its value.
    pub value: Option<f64>,
    /// The value as written on the page ("52,8%", "< 10").
    pub text: String,
    /// Its status.
    pub status: Option<Status>,
}

/// Height of one bar of a breakdown, and the width of its labels, in pixels.
const SHARE_ROW: u32 = 34;
const SHARE_LABEL: u32 = 200;
const SHARE_WIDTH: u32 = 580;

/// A breakdown (by level, ownership, grade, gender) as labelled horizontal bars in the units'
/// own order, each with its value written at its end, large enough to read on a phone (the
/// SVG scales down to the screen's width, so its text is drawn at 17 px); the target as a
/// dashed line. Written as SVG directly, like the tile map.
pub fn breakdown(shares: &[Share], target: Option<f64>) -> String {
    let height = shares.len() as u32 * SHARE_ROW + 12;
    let high = highest(shares.iter().filter_map(|s| s.value).chain(target), 1.0) * 1.2;
    let room = f64::from(SHARE_WIDTH - SHARE_LABEL - 8);
    let x_of = |value: f64| f64::from(SHARE_LABEL) + room * (value / high).clamp(0.0, 1.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SHARE_WIDTH}" height="{height}" viewBox="0 0 {SHARE_WIDTH} {height}" class="breakdown" font-family="sans-serif" font-size="17">"#
    );
    for (index, share) in shares.iter().enumerate() {
        let top = index as u32 * SHARE_ROW + 6;
        let middle = top + SHARE_ROW / 2 + 5;
        svg.push_str(&format!(
            r##"<text x="{x}" y="{middle}" text-anchor="end" fill="#1f2937">{label}</text>"##,
            x = SHARE_LABEL - 8,
            label = escape_xml(&share.label),
        ));
        let end = match share.value {
            Some(value) => {
                let end = x_of(value);
                svg.push_str(&format!(
                    r#"<rect x="{SHARE_LABEL}" y="{y}" width="{w:.1}" height="{h}" rx="2" fill="{fill}"/>"#,
                    y = top + 4,
                    w = end - f64::from(SHARE_LABEL),
                    h = SHARE_ROW - 8,
                    fill = status_css(share.status),
                ));
                end
            }
            None => f64::from(SHARE_LABEL),
        };
        svg.push_str(&format!(
            r##"<text x="{x:.1}" y="{middle}" fill="#1f2937" font-weight="600">{text}</text>"##,
            x = end + 6.0,
            text = escape_xml(&share.text),
        ));
    }
    if let Some(target) = target {
        svg.push_str(&format!(
            r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{height}" stroke="#c01f1f" stroke-width="2" stroke-dasharray="6 4"/>"##,
            x = x_of(target),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Each province's tile on the map of a list (`2008`: the 63 provinces; `2025`: the 34):
/// (code, column, row), from [`TILE_GRID`].
pub fn tile_positions(list: &str) -> Vec<(&'static str, u32, u32)> {
    TILE_GRID
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let (grid, code) = (fields.next()?, fields.next()?);
            let col = fields.next()?.parse().ok()?;
            let row = fields.next()?.parse().ok()?;
            (grid == list).then_some((code, col, row))
        })
        .collect()
}

/// Text made safe inside SVG and HTML.
pub(crate) fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        ["2021-2022", "2022-2023", "2023-2024", "2024-2025"]
            .iter()
            .zip([Some(30.0), Some(38.5), None, Some(52.0)])
            .map(|(l, v)| Point {
                label: l.to_string(),
                value: v,
            })
            .collect()
    }

    #[test]
    fn trend_draws_labels_target_and_line() {
        let guides = TrendGuides {
            target: Some(("2024-2025".into(), 50.0)),
            line: Some((("2021-2022".into(), 30.0), ("2024-2025".into(), 50.0))),
        };
        let svg = trend(&points(), &guides, "Tỷ lệ (%)").expect("svg");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("2024-2025") && svg.contains("Tỷ lệ (%)"),
            "labels and Vietnamese text"
        );
        assert!(
            svg.contains("stroke-dasharray") || svg.matches("<polyline").count() >= 3,
            "the baseline line"
        );
        assert_eq!(svg.matches("<circle").count(), 3, "one dot per year with a value");
    }

    #[test]
    fn bars_are_ranked_and_coloured_by_status() {
        let bars = vec![
            Bar {
                label: "Hà Nội".into(),
                value: 63.0,
                status: Some(Status::Met),
            },
            Bar {
                label: "Lai Châu".into(),
                value: 31.0,
                status: Some(Status::OffTrack),
            },
        ];
        let svg = ranked_bars(&bars, Some(50.0)).expect("svg");
        assert!(svg.contains("Hà Nội") && svg.contains("Lai Châu"));
        assert!(
            svg.contains(&status_css(Some(Status::Met)).to_uppercase()) || svg.contains(&status_css(Some(Status::Met))),
            "{svg}"
        );
    }

    /// The exact SVG of each chart on fixed data, so that any change to a drawing is seen and
    /// reviewed (`cargo insta review`, or `INSTA_UPDATE=always` to accept).
    #[test]
    fn chart_snapshots() {
        let guides = TrendGuides {
            target: Some(("2024-2025".into(), 50.0)),
            line: Some((("2021-2022".into(), 30.0), ("2024-2025".into(), 50.0))),
        };
        insta::assert_snapshot!("trend", trend(&points(), &guides, "Tỷ lệ (%)").expect("svg"));
        insta::assert_snapshot!("sparkline", sparkline(&points(), Some(Status::AtRisk)).expect("svg"));
        let bars = [
            ("Hà Nội (01)", 63.0, Status::Met),
            ("Điện Biên (11)", 31.0, Status::Missed),
        ]
        .map(|(label, value, status)| Bar {
            label: label.into(),
            value,
            status: Some(status),
        });
        insta::assert_snapshot!("ranked_bars", ranked_bars(&bars, Some(50.0)).expect("svg"));
        let national: Vec<Point> = points()
            .into_iter()
            .map(|p| Point {
                value: p.value.map(|v| v + 5.0),
                ..p
            })
            .collect();
        insta::assert_snapshot!(
            "versus",
            versus(&points(), &national, Some(50.0), Some(Status::OnTrack)).expect("svg")
        );
        let tiles = [("01", 3, 3, Some(Status::Met)), ("96", 0, 22, None)].map(|(code, col, row, status)| Tile {
            col,
            row,
            code: code.into(),
            title: format!("<{code}> & \"{code}\""),
            href: format!("/province/{code}?year=2024-2025&list=province"),
            fill: status_css(status),
            ink: "#fff",
        });
        insta::assert_snapshot!("tile_map", tile_map(&tiles));
        let shares = [
            ("Lớp 1", Some(52.8), "52,8%", Some(Status::Met)),
            ("Lớp 2", None, "< 10", None),
        ]
        .map(|(label, value, text, status)| Share {
            label: label.into(),
            value,
            text: text.into(),
            status,
        });
        insta::assert_snapshot!("breakdown", breakdown(&shares, Some(50.0)));
    }

    #[test]
    fn a_breakdown_is_readable_at_phone_width() {
        let shares: Vec<Share> = (1..=12)
            .map(|grade| Share {
                label: format!("Grade {grade}"),
                value: Some(f64::from(grade) * 5.0),
                text: format!("{}.0%", grade * 5),
                status: Some(Status::OnTrack),
            })
            .collect();
        let svg = breakdown(&shares, Some(50.0));
        // Twelve grades, a bar each, 34 px apart: on a phone (the SVG scaled to about 0.6) a row
        // is still 20 px high and its text 10 px (the browser test measures it).

        assert_eq!(svg.matches("<rect").count(), 12);
        assert!(svg.contains(r#"height="420""#), "{svg}");
        assert!(svg.contains(r#"font-size="17""#));
        assert!(svg.contains("Grade 12") && svg.contains("60.0%"));
    }

    #[test]
    fn sparkline_is_small() {
        let svg = sparkline(&points(), Some(Status::Met)).expect("svg");
        assert!(svg.contains("width=\"120\"") && svg.contains("height=\"32\""), "{svg}");
    }
}
