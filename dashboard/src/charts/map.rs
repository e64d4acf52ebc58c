//! The boundary map of Việt Nam: its provinces as they are on the ground, each in its colour,
//! with its name and value as a title and a link to its page — the 63 provinces up to 30 June
//! 2025 or the 34 from 1 July 2025. The Hoàng Sa and Trường Sa archipelagos are drawn as
//! labelled insets in the East Sea and belong to their provinces (Đà Nẵng, Khánh Hòa): hovering
//! or following them is hovering or following the province. Mercator, which keeps the country's
//! shape at its latitudes. The shapes are `static/map/provinces.json` (Natural Earth, see the
//! README beside it). Written as SVG directly, like the tile map: plotters has no links.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use serde::Deserialize;

use super::{Tile, escape_xml, tile_positions};
use crate::i18n::Lang;

/// The shapes, as `regenerate.py` writes them.
const PROVINCES: &str = include_str!("../../static/map/provinces.json");

#[derive(Debug, Deserialize)]
struct Boundaries {
    /// Units of a coordinate per degree.
    scale: f64,
    /// By list (`2008`, `2025`): each province's rings.
    provinces: HashMap<String, Vec<Shape>>,
    islands: Vec<Archipelago>,
}

#[derive(Debug, Deserialize)]
struct Shape {
    code: String,
    /// Rings (outer boundaries and holes) as longitude, latitude, longitude, … in units.
    rings: Vec<Vec<i32>>,
}

#[derive(Debug, Deserialize)]
struct Archipelago {
    name_vi: String,
    name_en: String,
    province_2008: String,
    province_2025: String,
    rings: Vec<Vec<i32>>,
}

static BOUNDARIES: LazyLock<Result<Boundaries, String>> =
    LazyLock::new(|| serde_json::from_str(PROVINCES).map_err(|e| format!("the bundled map: {e}")));

/// One province on the map: its code, its title (name and value), its link and its colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// The province code.
    pub code: String,
    /// The tooltip and accessible name: the province's name and value.
    pub title: String,
    /// Where the province links to.
    pub href: String,
    /// Its colour, as CSS.
    pub fill: String,
}

/// Width of the mainland's drawing, and of the column of insets to its right, in pixels.
const MAINLAND_WIDTH: f64 = 300.0;
const INSET_WIDTH: f64 = 120.0;
const INSET_HEIGHT: f64 = 84.0;
const MARGIN: f64 = 6.0;

/// A drawn map: its SVG and its size in pixels.
#[derive(Debug, Clone)]
pub struct MapSvg {
    /// The `<svg>` element.
    pub svg: String,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

/// The provinces of `list` (`2008`: the 63; `2025`: the 34) as a map: each of `areas` drawn in
/// its fill and linked; a province of the list with no area is drawn grey without a link.
/// Archipelago names are in `lang`.
pub fn boundary_map(list: &str, areas: &[Area], lang: Lang) -> Result<MapSvg, String> {
    let boundaries = BOUNDARIES.as_ref().map_err(Clone::clone)?;
    let shapes = boundaries
        .provinces
        .get(list)
        .ok_or_else(|| format!("no boundary map of the {list} provinces"))?;
    let degrees = |unit: i32| f64::from(unit) / boundaries.scale;
    let mercator = |latitude: f64| (std::f64::consts::FRAC_PI_4 + latitude.to_radians() / 2.0).tan().ln();
    // The mainland's extent, in longitude and Mercator's y.
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for ring in shapes.iter().flat_map(|s| &s.rings) {
        for pair in ring.chunks_exact(2) {
            let (x, y) = (degrees(pair[0]).to_radians(), mercator(degrees(pair[1])));
            (west, east, south, north) = (west.min(x), east.max(x), south.min(y), north.max(y));
        }
    }
    let scale = MAINLAND_WIDTH / (east - west);
    let height = (north - south) * scale + 2.0 * MARGIN;
    let width = MAINLAND_WIDTH + INSET_WIDTH + 3.0 * MARGIN;
    let mainland = |lon: f64, lat: f64| {
        (
            MARGIN + (lon.to_radians() - west) * scale,
            MARGIN + (north - mercator(lat)) * scale,
        )
    };
    // Each archipelago in a box right of the mainland, at the height of its own latitude.
    let insets: Vec<(&Archipelago, Inset)> = boundaries
        .islands
        .iter()
        .map(|islands| {
            let inset = Inset::fitting(&islands.rings, &degrees, &mercator, |lat| mainland(0.0, lat).1, height);
            (islands, inset)
        })
        .collect();
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" class="boundary-map" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#eef4f8"/>"##
    );
    for (_, inset) in &insets {
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{INSET_WIDTH}" height="{INSET_HEIGHT}" fill="none" stroke="#9ca3af" stroke-dasharray="3 2"/>"##,
            x = inset.left,
            y = inset.top,
        );
    }
    for shape in shapes {
        let area = areas.iter().find(|a| a.code == shape.code);
        let mut path = String::new();
        for ring in &shape.rings {
            path_of(&mut path, ring, |x, y| mainland(degrees(x), degrees(y)));
        }
        for (islands, inset) in &insets {
            let belongs = match list {
                "2008" => &islands.province_2008,
                _ => &islands.province_2025,
            };
            if *belongs == shape.code {
                for ring in &islands.rings {
                    inset.islet(&mut path, ring, |x, y| inset.place(degrees(x), mercator(degrees(y))));
                }
            }
        }
        let fill = area.map_or("#d1d5db", |a| a.fill.as_str());
        let drawn = format!(
            r##"<path d="{path}" fill="{fill}" fill-rule="evenodd" stroke="#fff" stroke-width="0.7" stroke-linejoin="round"/>"##,
            fill = escape_xml(fill),
        );
        match area {
            Some(area) => {
                let _ = write!(
                    svg,
                    r#"<a href="{href}" aria-label="{title}" data-code="{code}"><title>{title}</title>{drawn}</a>"#,
                    href = escape_xml(&area.href),
                    title = escape_xml(&area.title),
                    code = escape_xml(&area.code),
                );
            }
            None => svg.push_str(&drawn),
        }
    }
    for (islands, inset) in &insets {
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" fill="#374151">{name}</text>"##,
            x = inset.left + INSET_WIDTH / 2.0,
            y = inset.top + INSET_HEIGHT - 5.0,
            name = escape_xml(lang.pick(&islands.name_vi, &islands.name_en)),
        );
    }
    svg.push_str("</svg>");
    Ok(MapSvg {
        svg,
        width: width.round() as u32,
        height: height.round() as u32,
    })
}

/// Where an archipelago is drawn: a box right of the mainland, its islands scaled to fit.
struct Inset {
    left: f64,
    top: f64,
    /// The islands' west and north edges (longitude in radians, Mercator's y), and pixels per unit.
    west: f64,
    north: f64,
    scale: f64,
}

impl Inset {
    fn fitting(
        rings: &[Vec<i32>],
        degrees: &dyn Fn(i32) -> f64,
        mercator: &dyn Fn(f64) -> f64,
        row_of: impl Fn(f64) -> f64,
        height: f64,
    ) -> Self {
        let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut latitudes = (f64::MAX, f64::MIN);
        for pair in rings.iter().flat_map(|ring| ring.chunks_exact(2)) {
            let (lon, lat) = (degrees(pair[0]), degrees(pair[1]));
            let (x, y) = (lon.to_radians(), mercator(lat));
            (west, east, south, north) = (west.min(x), east.max(x), south.min(y), north.max(y));
            latitudes = (latitudes.0.min(lat), latitudes.1.max(lat));
        }
        // Room inside the box for the islands above the label.
        let room = (INSET_WIDTH - 12.0, INSET_HEIGHT - 24.0);
        let scale = (room.0 / (east - west).max(1e-9)).min(room.1 / (north - south).max(1e-9));
        let middle = row_of((latitudes.0 + latitudes.1) / 2.0);
        let top = (middle - INSET_HEIGHT / 2.0).clamp(MARGIN, height - INSET_HEIGHT - MARGIN);
        Self {
            left: MAINLAND_WIDTH + 2.0 * MARGIN,
            top,
            west: west - (room.0 / scale - (east - west)) / 2.0,
            north: north + (room.1 / scale - (north - south)) / 2.0,
            scale,
        }
    }

    /// Appends one island's ring, or a mark 3 pixels wide where the island would be smaller
    /// (most of them are a few hundred metres across, the archipelago hundreds of kilometres).
    fn islet(&self, path: &mut String, ring: &[i32], place: impl Fn(i32, i32) -> (f64, f64)) {
        let points: Vec<(f64, f64)> = ring.chunks_exact(2).map(|p| place(p[0], p[1])).collect();
        let (mut low, mut high) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
        for (x, y) in &points {
            (low, high) = ((low.0.min(*x), low.1.min(*y)), (high.0.max(*x), high.1.max(*y)));
        }
        match (high.0 - low.0).max(high.1 - low.1) < 3.0 {
            true => {
                let (x, y) = ((low.0 + high.0) / 2.0 - 1.5, (low.1 + high.1) / 2.0 - 1.5);
                let _ = write!(path, "M{x:.1} {y:.1}h3v3h-3Z");
            }
            false => path_of(path, ring, place),
        }
    }

    /// The pixel of a longitude (degrees) and Mercator's y.
    fn place(&self, lon: f64, y: f64) -> (f64, f64) {
        (
            self.left + 6.0 + (lon.to_radians() - self.west) * self.scale,
            self.top + 6.0 + (self.north - y) * self.scale,
        )
    }
}

/// Appends one ring to an SVG path, each point placed by `place`.
fn path_of(path: &mut String, ring: &[i32], place: impl Fn(i32, i32) -> (f64, f64)) {
    for (index, pair) in ring.chunks_exact(2).enumerate() {
        let (x, y) = place(pair[0], pair[1]);
        let _ = write!(path, "{}{x:.1} {y:.1}", if index == 0 { "M" } else { "L" });
    }
    path.push('Z');
}

/// Map areas of `list` (`2008`, `2025`) placed on the tile grid, each tile's code written in
/// `ink`'s colour for it; an area the grid has no place for is left out.
pub fn tiles(list: &str, areas: &[Area], ink: impl Fn(&Area) -> &'static str) -> Vec<Tile> {
    tile_positions(list)
        .into_iter()
        .filter_map(|(code, col, row)| {
            let area = areas.iter().find(|a| a.code == code)?;
            Some(Tile {
                col,
                row,
                code: area.code.clone(),
                title: area.title.clone(),
                href: area.href.clone(),
                fill: area.fill.clone(),
                ink: ink(area),
            })
        })
        .collect()
}

/// The codes of `list` the map has a shape for, in order.
pub fn codes(list: &str) -> Vec<String> {
    BOUNDARIES
        .as_ref()
        .ok()
        .and_then(|b| b.provinces.get(list))
        .map(|shapes| shapes.iter().map(|s| s.code.clone()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::ProvinceRegistry;

    fn area(code: &str) -> Area {
        Area {
            code: code.to_string(),
            title: format!("province {code}"),
            href: format!("/province/{code}"),
            fill: "#123456".to_string(),
        }
    }

    #[test]
    fn every_province_of_both_lists_has_exactly_one_shape() {
        let registry = ProvinceRegistry::shipped();
        for (list, provinces) in [("2008", &registry.before_2025), ("2025", &registry.from_2025)] {
            let mut ours: Vec<String> = provinces.iter().map(|p| p.code.clone()).collect();
            ours.sort();
            assert_eq!(codes(list), ours, "list {list}");
        }
    }

    #[test]
    fn each_province_is_one_link_with_its_title_and_the_islands_go_with_theirs() {
        for (list, count) in [("2008", 63), ("2025", 34)] {
            let areas: Vec<Area> = codes(list).iter().map(|c| area(c)).collect();
            let svg = boundary_map(list, &areas, Lang::Vi).expect("drawn").svg;
            assert_eq!(svg.matches("<a href=").count(), count, "list {list}");
            assert!(svg.contains(r#"<a href="/province/48" aria-label="province 48""#));
            // Both archipelagos are labelled, each inside its dashed box.
            assert!(svg.contains("Quần đảo Hoàng Sa") && svg.contains("Quần đảo Trường Sa"));
            assert_eq!(svg.matches("stroke-dasharray").count(), 2);
            // Đà Nẵng's and Khánh Hòa's paths carry the islands: more rings than the mainland.
            for code in ["48", "56"] {
                let start = svg.find(&format!(r#"data-code="{code}""#)).expect("linked");
                let path = &svg[start..svg[start..].find("</a>").expect("closed") + start];
                let shape = BOUNDARIES.as_ref().expect("map").provinces[list]
                    .iter()
                    .find(|s| s.code == code)
                    .expect("shape");
                assert!(path.matches('M').count() > shape.rings.len(), "{code} in {list}");
            }
        }
        let english = boundary_map("2025", &[], Lang::En).expect("drawn").svg;
        assert!(english.contains("Hoang Sa Islands") && !english.contains("<a "));
    }

    /// A province's area in square degrees: its rings' signed areas (holes count against it).
    fn area_of(list: &str, code: &str) -> f64 {
        let boundaries = BOUNDARIES.as_ref().expect("map");
        let shape = boundaries.provinces[list]
            .iter()
            .find(|s| s.code == code)
            .expect("shape");
        let twice: i64 = shape
            .rings
            .iter()
            .map(|ring| {
                let points: Vec<&[i32]> = ring.chunks_exact(2).collect();
                (0..points.len())
                    .map(|i| {
                        let (a, b) = (points[i], points[(i + 1) % points.len()]);
                        i64::from(a[0]) * i64::from(b[1]) - i64::from(b[0]) * i64::from(a[1])
                    })
                    .sum::<i64>()
            })
            .sum();
        twice as f64 / 2.0 / boundaries.scale / boundaries.scale
    }

    #[test]
    fn each_2025_province_covers_the_provinces_merged_into_it() {
        let registry = ProvinceRegistry::shipped();
        for province in &registry.from_2025 {
            let merged: f64 = province.merged_from.iter().map(|old| area_of("2008", old)).sum();
            let area = area_of("2025", &province.code);
            assert!(area > 0.0, "{} has an area", province.code);
            assert!(
                ((area - merged) / merged).abs() < 0.005,
                "{}: {area} square degrees against {merged} merged",
                province.code
            );
        }
    }

    #[test]
    fn an_unknown_list_is_an_error_not_a_panic() {
        assert!(boundary_map("1976", &[], Lang::Vi).is_err());
    }
}
