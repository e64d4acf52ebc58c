//! The figures the pages and the API show: one consistent state of the warehouse's KPI values
//! and submissions, kept in memory while the tables and the metrics are unchanged.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use warehouse::kpi::metrics::Dimension;
use warehouse::tables::rows::Decision;
use warehouse::tables::rows::KpiRow;
use warehouse::{KpiSnapshot, Submission};

/// Every KPI value and submission at one state of the warehouse, indexed for the pages.
#[derive(Debug)]
pub struct Figures {
    /// The tables' versions and metrics fingerprint the values come from.
    pub tag: String,
    /// What identifies this state: the tag and the version of the review decisions.
    pub key: String,
    /// The latest review decision about each submission, by submission id.
    pub decisions: HashMap<String, Decision>,
    /// Every submission of that state, oldest first.
    pub submissions: Vec<Submission>,
    rows: Vec<KpiRow>,
    by_kpi: HashMap<(String, Dimension), Vec<usize>>,
    by_dimension: HashMap<Dimension, Vec<usize>>,
}

impl Figures {
    /// Indexes a snapshot and the review decisions (oldest first) under a state key.
    pub fn new(snapshot: KpiSnapshot, decisions: Vec<Decision>, key: String) -> Self {
        let mut by_kpi: HashMap<(String, Dimension), Vec<usize>> = HashMap::new();
        let mut by_dimension: HashMap<Dimension, Vec<usize>> = HashMap::new();
        for (i, row) in snapshot.rows.iter().enumerate() {
            let Ok(dimension) = row.dimension.parse::<Dimension>() else {
                continue;
            };
            by_kpi.entry((row.kpi_id.clone(), dimension)).or_default().push(i);
            by_dimension.entry(dimension).or_default().push(i);
        }
        Self {
            tag: snapshot.tag,
            key,
            decisions: decisions.into_iter().map(|d| (d.submission_id.clone(), d)).collect(),
            submissions: snapshot.submissions,
            rows: snapshot.rows,
            by_kpi,
            by_dimension,
        }
    }

    /// One KPI's values split by a dimension, by unit then school year.
    pub fn rows(&self, kpi: &str, dimension: Dimension) -> Vec<&KpiRow> {
        self.by_kpi
            .get(&(kpi.to_string(), dimension))
            .map(|ids| ids.iter().map(|&i| &self.rows[i]).collect())
            .unwrap_or_default()
    }

    /// Every KPI's values split by a dimension, in file order of the KPIs.
    pub fn all(&self, dimension: Dimension) -> Vec<&KpiRow> {
        self.by_dimension
            .get(&dimension)
            .map(|ids| ids.iter().map(|&i| &self.rows[i]).collect())
            .unwrap_or_default()
    }

    /// One value: a KPI for a unit of a dimension in a school year.
    pub fn value(&self, kpi: &str, dimension: Dimension, unit: &str, year: &str) -> Option<&KpiRow> {
        self.rows(kpi, dimension)
            .into_iter()
            .find(|r| r.unit == unit && r.school_year == year)
    }

    /// The school years with national values, oldest first.
    pub fn years(&self) -> Vec<String> {
        let mut years: Vec<String> = self
            .all(Dimension::National)
            .iter()
            .map(|r| r.school_year.clone())
            .collect();
        years.sort();
        years.dedup();
        years
    }

    /// The review state of a submission: `approved`, `returned`, or none yet.
    pub fn review(&self, submission_id: &str) -> Option<&Decision> {
        self.decisions.get(submission_id)
    }

    /// The submissions in force (those no later file replaced).
    pub fn current_submissions(&self) -> Vec<&Submission> {
        let replaced: std::collections::HashSet<&str> = self
            .submissions
            .iter()
            .filter_map(|s| s.supersedes.as_deref())
            .collect();
        self.submissions
            .iter()
            .filter(|s| !replaced.contains(s.submission_id.as_str()))
            .collect()
    }

    /// When the last accepted file was committed.
    pub fn as_of(&self) -> Option<DateTime<Utc>> {
        self.submissions
            .iter()
            .map(|s| s.uploaded_at)
            .max()
            .and_then(DateTime::from_timestamp_micros)
    }
}
