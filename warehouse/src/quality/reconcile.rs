//! Reconciliation: a school's report beside its counted records. For each school, level and
//! school year with both a school report row and learner records, the pupils, pupils able to
//! study online and pupils with a digital record as reported, and as counted from the records;
//! the schools whose figures differ by more than a tolerance are listed, with totals per
//! province both ways. A report that claims far more than its records hold is the report to
//! doubt.

use std::collections::HashMap;

use ingest::{ProvinceCode, SchoolYear};
use serde::Serialize;

use crate::quality::checks::Check;
use crate::store::rows_of;
use crate::{Result, TableVersions, Warehouse};

/// Something worth a second look that does not stop the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// The check's id (in `metrics.toml`).
    pub rule: String,
    /// In Vietnamese.
    pub message_vi: String,
    /// In English.
    pub message_en: String,
}

/// The default tolerance: figures differing by more than 5% of the counted value.
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// Three figures of a school or a province: as reported, or as counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Pupils.
    pub pupils: i64,
    /// Pupils able to study online.
    pub online_ready: i64,
    /// Pupils with a digital record.
    pub digital_record: i64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.pupils += other.pupils;
        self.online_ready += other.online_ready;
        self.digital_record += other.digital_record;
    }

    /// The largest relative difference of the three, against the counted figures (a counted
    /// zero against a reported non-zero is a difference of 100%).
    pub fn difference(&self, counted: &Figures) -> f64 {
        [
            (self.pupils, counted.pupils),
            (self.online_ready, counted.online_ready),
            (self.digital_record, counted.digital_record),
        ]
        .into_iter()
        .map(|(reported, counted)| match (reported, counted) {
            (r, c) if r == c => 0.0,
            (_, 0) => 1.0,
            (r, c) => (r - c).abs() as f64 / c as f64,
        })
        .fold(0.0, f64::max)
    }
}

/// One school and level whose report and records differ by more than the tolerance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchoolDifference {
    /// Province as reported.
    pub province_code: String,
    /// School id.
    pub school_id: String,
    /// School name, as reported.
    pub school_name: String,
    /// Level.
    pub level: String,
    /// As the school reported.
    pub reported: Figures,
    /// As counted from the records.
    pub counted: Figures,
    /// The largest relative difference of the three figures.
    pub difference: f64,
}

/// One province's totals over its schools with both a report and records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvinceTotals {
    /// Province as reported.
    pub province_code: String,
    /// Schools (and levels) compared.
    pub compared: usize,
    /// Of them, those differing by more than the tolerance.
    pub differing: usize,
    /// Their reports, summed.
    pub reported: Figures,
    /// Their records, counted.
    pub counted: Figures,
}

/// The reconciliation of a school year (and a province, if asked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconciliation {
    /// The school year.
    pub school_year: SchoolYear,
    /// The province asked for, if any.
    pub province_code: Option<ProvinceCode>,
    /// The tolerance, as a fraction (0.05 is 5%).
    pub tolerance: f64,
    /// Totals by province, in code order.
    pub provinces: Vec<ProvinceTotals>,
    /// Schools differing by more than the tolerance, the largest difference first.
    pub schools: Vec<SchoolDifference>,
}

/// One compared (school, level), as the query returns it.
#[derive(serde::Deserialize)]
struct Compared {
    province_code: String,
    school_id: String,
    school_name: Option<String>,
    level: String,
    reported_pupils: i64,
    reported_online_ready: i64,
    reported_digital_record: i64,
    counted_pupils: i64,
    counted_online_ready: i64,
    counted_digital_record: i64,
}

/// A school and level: (school id, level).
pub type SchoolLevel = (String, String);

/// The figures of each school and level, as one side gives them.
pub type BySchool = HashMap<SchoolLevel, Figures>;

/// The warning of a dry run whose file disagrees with the other side already in the
/// warehouse (a school report with the records, or records with the school reports): the
/// schools differing by more than the `records` check's tolerance, the first ten named.
pub fn disagreement(check: &Check, reported: &BySchool, counted: &BySchool, records_sent: bool) -> Option<Warning> {
    let tolerance = check.tolerance.unwrap_or(DEFAULT_TOLERANCE);
    let mut differing: Vec<(&SchoolLevel, &Figures, &Figures)> = reported
        .iter()
        .filter_map(|(key, r)| counted.get(key).map(|c| (key, r, c)))
        .filter(|(_, r, c)| r.difference(c) > tolerance)
        .collect();
    if differing.is_empty() {
        return None;
    }
    differing.sort_by(|a, b| a.0.cmp(b.0));
    let named: Vec<String> = differing
        .iter()
        .take(10)
        .map(|((school, level), r, c)| {
            format!(
                "{school} ({level}): {} / {}, {} / {}, {} / {}",
                r.pupils, c.pupils, r.online_ready, c.online_ready, r.digital_record, c.digital_record
            )
        })
        .collect();
    let (what_vi, what_en) = match records_sent {
        true => ("Hồ sơ trong tệp này lệch", "The records in this file differ"),
        false => ("Báo cáo này lệch", "This report differs"),
    };
    let percent = format!("{}", tolerance * 100.0);
    Some(Warning {
        rule: check.id.clone(),
        message_vi: format!(
            "{}: {what_vi} hơn {}% so với {} ở {} trường (báo cáo / hồ sơ: học sinh, đủ điều kiện học trực tuyến, có \
             hồ sơ số): {}",
            check.name_vi,
            percent.replace('.', ","),
            if records_sent {
                "báo cáo của trường"
            } else {
                "hồ sơ người học đã có"
            },
            differing.len(),
            named.join("; ")
        ),
        message_en: format!(
            "{}: {what_en} by more than {percent}% from {} for {} schools (reported / counted: pupils, able to study \
             online, digital record): {}",
            check.name_en,
            if records_sent {
                "the schools' reports"
            } else {
                "the learner records already in"
            },
            differing.len(),
            named.join("; ")
        ),
    })
}

/// Figures by school and level from a query's rows (school_id, level, pupils, online ready,
/// digital record).
fn by_school(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<BySchool> {
    #[derive(serde::Deserialize)]
    struct Line {
        school_id: String,
        level: String,
        pupils: i64,
        online_ready: i64,
        digital_record: i64,
    }
    let lines: Vec<Line> = rows_of(batches, "reconciliation")?;
    Ok(lines
        .into_iter()
        .map(|l| {
            let figures = Figures {
                pupils: l.pupils,
                online_ready: l.online_ready,
                digital_record: l.digital_record,
            };
            ((l.school_id, l.level), figures)
        })
        .collect())
}

/// ` AND province_code = '…'` for a province, nothing for all. Both values of these queries
/// come from parsed types (a school year, a two-digit code): nothing to quote.
fn in_province(province: Option<&ProvinceCode>) -> String {
    province
        .map(|code| format!(" AND province_code = '{}'", code.as_str()))
        .unwrap_or_default()
}

/// The SELECT that counts learner records by province, school and level from `source`.
fn counting(source: &str, year: SchoolYear, province: Option<&ProvinceCode>) -> String {
    format!(
        "SELECT province_code, school_id, level, count(*) AS pupils, sum(CASE WHEN online_ready THEN 1 ELSE 0 END) AS \
         online_ready, sum(CASE WHEN digital_record THEN 1 ELSE 0 END) AS digital_record FROM {source} WHERE \
         school_year = '{year}'{} GROUP BY province_code, school_id, level",
        in_province(province)
    )
}

/// The SELECT that sums the school reports in force by province, school and level.
fn reporting(year: SchoolYear, province: Option<&ProvinceCode>) -> String {
    format!(
        "SELECT province_code, school_id, level, max(school_name) AS school_name, sum(students) AS pupils, \
         sum(students_online_ready) AS online_ready, sum(students_digital_record) AS digital_record FROM \
         school_reports WHERE school_year = '{year}'{} GROUP BY province_code, school_id, level",
        in_province(province)
    )
}

impl Warehouse {
    /// The learner records already in for a year and province, counted by school and level.
    pub(crate) async fn counted_records(&self, year: SchoolYear, province: &ProvinceCode) -> Result<BySchool> {
        by_school(
            &self
                .query(
                    &counting("learner_records", year, Some(province)),
                    &TableVersions::new(),
                )
                .await?,
        )
    }

    /// The learner records of a staged record file (a folder of Parquet files), counted by
    /// school and level.
    pub(crate) async fn counted_staged(
        &self,
        folder: &std::path::Path,
        year: SchoolYear,
        province: &ProvinceCode,
    ) -> Result<BySchool> {
        let ctx = datafusion::prelude::SessionContext::new();
        let path = folder.to_string_lossy();
        ctx.register_parquet(
            "staged",
            path.as_ref(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?;
        // The files hold the table's columns but its partition columns (the log holds those).
        let source = format!(
            "(SELECT *, '{year}' AS school_year, '{}' AS province_code FROM staged) AS staged",
            province.as_str()
        );
        let batches = ctx
            .sql(&counting(&source, year, Some(province)))
            .await?
            .collect()
            .await?;
        by_school(&batches)
    }

    /// The school reports in force for a year and province, by school and level.
    pub(crate) async fn reported_figures(&self, year: SchoolYear, province: &ProvinceCode) -> Result<BySchool> {
        let sql = reporting(year, Some(province));
        by_school(&self.query(&sql, &TableVersions::new()).await?)
    }

    /// Reports against records for a school year (and a province), at the tables' latest
    /// versions.
    pub async fn reconciliation(
        &self,
        school_year: SchoolYear,
        province: Option<&ProvinceCode>,
        tolerance: f64,
    ) -> Result<Reconciliation> {
        let sql = format!(
            "WITH counted AS ({}), reported AS ({})
             SELECT r.province_code, r.school_id, r.school_name, r.level,
                    r.pupils AS reported_pupils, r.online_ready AS reported_online_ready,
                    r.digital_record AS reported_digital_record,
                    c.pupils AS counted_pupils, c.online_ready AS counted_online_ready,
                    c.digital_record AS counted_digital_record
             FROM reported r JOIN counted c
               ON r.province_code = c.province_code AND r.school_id = c.school_id AND r.level = c.level
             ORDER BY r.province_code, r.school_id, r.level",
            counting("learner_records", school_year, province),
            reporting(school_year, province)
        );
        let batches = self.query(&sql, &TableVersions::new()).await?;
        let compared: Vec<Compared> = rows_of(&batches, "reconciliation")?;
        let mut provinces: Vec<ProvinceTotals> = Vec::new();
        let mut schools = Vec::new();
        for row in compared {
            let reported = Figures {
                pupils: row.reported_pupils,
                online_ready: row.reported_online_ready,
                digital_record: row.reported_digital_record,
            };
            let counted = Figures {
                pupils: row.counted_pupils,
                online_ready: row.counted_online_ready,
                digital_record: row.counted_digital_record,
            };
            let difference = reported.difference(&counted);
            if provinces.last().is_none_or(|p| p.province_code != row.province_code) {
                provinces.push(ProvinceTotals {
                    province_code: row.province_code.clone(),
                    compared: 0,
                    differing: 0,
                    reported: Figures::default(),
                    counted: Figures::default(),
                });
            }
            if let Some(totals) = provinces.last_mut() {
                totals.compared += 1;
                totals.differing += usize::from(difference > tolerance);
                totals.reported.add(&reported);
                totals.counted.add(&counted);
            }
            if difference > tolerance {
                schools.push(SchoolDifference {
                    province_code: row.province_code,
                    school_id: row.school_id,
                    school_name: row.school_name.unwrap_or_default(),
                    level: row.level,
                    reported,
                    counted,
                    difference,
                });
            }
        }
        schools.sort_by(|a, b| b.difference.total_cmp(&a.difference));
        Ok(Reconciliation {
            school_year,
            province_code: province.cloned(),
            tolerance,
            provinces,
            schools,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_is_the_largest_of_the_three_against_the_count() {
        let counted = Figures {
            pupils: 100,
            online_ready: 40,
            digital_record: 0,
        };
        let same = counted;
        assert_eq!(same.difference(&counted), 0.0);
        let overstated = Figures {
            online_ready: 50,
            ..counted
        };
        assert!((overstated.difference(&counted) - 0.25).abs() < 1e-9);
        let claims_records = Figures {
            digital_record: 3,
            ..counted
        };
        assert_eq!(claims_records.difference(&counted), 1.0);
    }
}
