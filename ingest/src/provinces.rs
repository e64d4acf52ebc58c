//! The province lists and the 1 July 2025 crosswalk, from `sample-data/reference/`.
//!
//! Sources: the 63 units of 2008 (Resolution 15/2008/QH12 and the MOET/GSO code list) and the 34
//! units in force from 1 July 2025 (Resolution 202/2025/QH15); each new unit keeps the code of
//! the old province that hosts its capital. Regions are the six socio-economic regions of the
//! General Statistics Office; the region of a new unit is, tentatively, that of the old province
//! whose code it keeps.

use chrono::NaiveDate;

use crate::text::SchoolYear;

/// The raw reference files, as shipped.
pub mod files {
    /// The 63 provinces valid 2008-08-01 to 2025-06-30, with each one's 2025 successor.
    pub const PROVINCES_2008: &str = include_str!("../../sample-data/reference/provinces-2008.csv");
    /// The 34 provinces valid from 2025-07-01, with the old codes merged into each.
    pub const PROVINCES_2025: &str = include_str!("../../sample-data/reference/provinces-2025.csv");
    /// The six socio-economic regions.
    pub const REGIONS: &str = include_str!("../../sample-data/reference/regions.csv");
    /// School levels.
    pub const LEVELS: &str = include_str!("../../sample-data/reference/levels.csv");
}

/// One province of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Province {
    /// Two-digit code.
    pub code: String,
    /// Name in Vietnamese.
    pub name_vi: String,
    /// Name in English (no diacritics).
    pub name_en: String,
    /// Region code (`NMM`, `RRD`, `NCC`, `CH`, `SE`, `MRD`).
    pub region_code: String,
    /// First day the code means this province.
    pub valid_from: NaiveDate,
    /// Last day, if it no longer exists.
    pub valid_to: Option<NaiveDate>,
    /// The code of the 2025 province this one is (or became part of).
    pub code_2025: String,
    /// For a 2025 province, the old codes merged into it.
    pub merged_from: Vec<String>,
}

impl Province {
    fn valid_on(&self, day: NaiveDate) -> bool {
        self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }
}

/// A region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Code (`NMM`, …).
    pub code: String,
    /// Name in Vietnamese.
    pub name_vi: String,
    /// Name in English.
    pub name_en: String,
}

/// Both province lists, and the regions.
#[derive(Debug, Clone)]
pub struct ProvinceRegistry {
    /// The 63 provinces of 2008–2025.
    pub before_2025: Vec<Province>,
    /// The 34 provinces from 1 July 2025.
    pub from_2025: Vec<Province>,
    /// The six regions.
    pub regions: Vec<Region>,
}

/// What a province code means in a school year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvinceLookup<'a> {
    /// A province of the list in force that year.
    Valid(&'a Province),
    /// A code that existed before but was merged away by then; the province it became part of.
    MergedInto {
        /// The old province.
        old: &'a Province,
        /// Its successor in the list in force.
        successor: &'a Province,
    },
    /// No such code.
    Unknown,
}

impl ProvinceRegistry {
    /// The registry built from the shipped reference files.
    pub fn shipped() -> &'static ProvinceRegistry {
        static REGISTRY: std::sync::OnceLock<ProvinceRegistry> = std::sync::OnceLock::new();
        REGISTRY.get_or_init(|| {
            ProvinceRegistry::parse(files::PROVINCES_2008, files::PROVINCES_2025, files::REGIONS)
                .unwrap_or_else(|e| panic!("shipped reference data is invalid: {e}"))
        })
    }

    /// Parses the three reference CSV files.
    pub fn parse(old: &str, new: &str, regions: &str) -> Result<Self, String> {
        let before_2025 = parse_provinces(old, |_, successor| (successor.to_string(), Vec::new()))?;
        let from_2025 = parse_provinces(new, |code, last| {
            (code.to_string(), last.split_whitespace().map(str::to_string).collect())
        })?;
        let regions = data_lines(regions)
            .map(|fields| match fields.as_slice() {
                [code, vi, en] => Ok(Region {
                    code: code.to_string(),
                    name_vi: vi.to_string(),
                    name_en: en.to_string(),
                }),
                _ => Err(format!("regions.csv: bad line {fields:?}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            before_2025,
            from_2025,
            regions,
        })
    }

    /// Whether the 34 provinces of 1 July 2025 are in force during a school year (on its first
    /// day of teaching).
    pub fn from_2025_in(&self, year: SchoolYear) -> bool {
        let day = year.first_day();
        self.from_2025.iter().any(|p| p.valid_on(day))
    }

    /// The list in force during a school year (on its first day of teaching).
    pub fn list_for(&self, year: SchoolYear) -> &[Province] {
        match self.from_2025_in(year) {
            true => &self.from_2025,
            false => &self.before_2025,
        }
    }

    /// What `code` means in `year`.
    pub fn lookup(&self, code: &str, year: SchoolYear) -> ProvinceLookup<'_> {
        let list = self.list_for(year);
        if let Some(province) = list.iter().find(|p| p.code == code) {
            return ProvinceLookup::Valid(province);
        }
        let successor_in_list = |old: &Province| list.iter().find(|p| p.code == old.code_2025);
        self.before_2025
            .iter()
            .filter(|p| p.code == code)
            .find_map(|old| successor_in_list(old).map(|successor| ProvinceLookup::MergedInto { old, successor }))
            .unwrap_or(ProvinceLookup::Unknown)
    }

    /// The 2025 province a code of `year` rolls up to.
    pub fn code_2025(&self, code: &str, year: SchoolYear) -> Option<&str> {
        match self.lookup(code, year) {
            ProvinceLookup::Valid(p) => Some(p.code_2025.as_str()),
            _ => None,
        }
    }

    /// The 2025 province with this code.
    pub fn province_2025(&self, code: &str) -> Option<&Province> {
        self.from_2025.iter().find(|p| p.code == code)
    }
}

fn data_lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
}

fn parse_provinces(
    text: &str,
    crosswalk: impl Fn(&str, &str) -> (String, Vec<String>),
) -> Result<Vec<Province>, String> {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("bad date {s:?}: {e}"));
    data_lines(text)
        .map(|fields| match fields.as_slice() {
            [code, vi, en, region, from, to, last] => {
                let (code_2025, merged_from) = crosswalk(code, last);
                Ok(Province {
                    code: code.to_string(),
                    name_vi: vi.to_string(),
                    name_en: en.to_string(),
                    region_code: region.to_string(),
                    valid_from: date(from)?,
                    valid_to: if to.is_empty() { None } else { Some(date(to)?) },
                    code_2025,
                    merged_from,
                })
            }
            _ => Err(format!("province list: bad line {fields:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn year(s: &str) -> SchoolYear {
        s.parse().expect("valid school year")
    }

    #[test]
    fn the_lists_have_63_and_34_provinces_in_6_regions() {
        let registry = ProvinceRegistry::shipped();
        assert_eq!(registry.before_2025.len(), 63);
        assert_eq!(registry.from_2025.len(), 34);
        assert_eq!(registry.regions.len(), 6);
        assert_eq!(registry.list_for(year("2024-2025")).len(), 63);
        assert_eq!(registry.list_for(year("2025-2026")).len(), 34);
    }

    #[test]
    fn crosswalk_is_consistent_both_ways() {
        let registry = ProvinceRegistry::shipped();
        for old in &registry.before_2025 {
            let new = registry.province_2025(&old.code_2025).expect("successor exists");
            assert!(
                new.merged_from.contains(&old.code),
                "{} not in {:?}",
                old.code,
                new.merged_from
            );
        }
        let merged: usize = registry.from_2025.iter().map(|p| p.merged_from.len()).sum();
        assert_eq!(merged, 63);
    }

    #[test]
    fn bac_ninh_and_bac_giang_roll_up_to_the_new_24() {
        let registry = ProvinceRegistry::shipped();
        assert_eq!(registry.code_2025("27", year("2023-2024")), Some("24"));
        assert_eq!(registry.code_2025("24", year("2023-2024")), Some("24"));
        assert_eq!(registry.code_2025("24", year("2025-2026")), Some("24"));
        assert_eq!(registry.code_2025("27", year("2025-2026")), None);
    }

    #[test]
    fn a_merged_away_code_names_its_successor() {
        let registry = ProvinceRegistry::shipped();
        match registry.lookup("27", year("2025-2026")) {
            ProvinceLookup::MergedInto { old, successor } => {
                assert_eq!(old.name_vi, "Bắc Ninh");
                assert_eq!(successor.code, "24");
            }
            other => panic!("expected a merged code, got {other:?}"),
        }
        assert_eq!(registry.lookup("99", year("2024-2025")), ProvinceLookup::Unknown);
        assert!(matches!(
            registry.lookup("27", year("2024-2025")),
            ProvinceLookup::Valid(_)
        ));
    }
}
