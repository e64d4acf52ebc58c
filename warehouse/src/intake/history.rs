//! The history of one slice (report kind, province, school year): every accepted file in turn,
//! who sent it and when, and what it changed — rows added and removed (by the report's key),
//! and each count column's total before and after — read from the fact table as it was at
//! each submission's version (Delta time travel).

use std::collections::BTreeSet;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{SessionContext, cast, col, lit};
use ingest::{ColumnType, ReportKind, SchoolYear};
use serde::Serialize;

use crate::Result;
use crate::store::Warehouse;
use crate::tables::rows::Submission;
use crate::tables::schemas::fact_table;

/// One version of a slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceVersion {
    /// The submission that made it.
    pub submission: Submission,
    /// Rows whose key was not there before.
    pub added: usize,
    /// Rows whose key is gone.
    pub removed: usize,
    /// Each count column: total before, total after.
    pub totals: Vec<(String, i64, i64)>,
}

impl Warehouse {
    /// Every version of a slice, oldest first.
    pub async fn slice_history(
        &self,
        kind: ReportKind,
        province: Option<&str>,
        school_year: SchoolYear,
    ) -> Result<Vec<SliceVersion>> {
        let submissions: Vec<Submission> = self
            .submissions()
            .await?
            .into_iter()
            .filter(|s| s.kind == kind && s.school_year == school_year && s.province_code.as_deref() == province)
            .collect();
        let schema = kind.schema();
        let keys: Vec<&str> = schema
            .keys
            .iter()
            .map(String::as_str)
            .filter(|k| *k != "school_year" && *k != "province_code")
            .collect();
        let counts: Vec<&str> = schema
            .columns
            .iter()
            .filter(|c| c.column_type == ColumnType::Count && !keys.contains(&c.name.as_str()))
            .map(|c| c.name.as_str())
            .collect();
        let mut versions = Vec::new();
        let (mut keys_before, mut totals_before) = (BTreeSet::new(), vec![0i64; counts.len()]);
        for submission in submissions {
            let version = u64::try_from(submission.table_version).unwrap_or(0);
            let batches = self
                .slice_at(kind, province, school_year, version, &keys, &counts)
                .await?;
            let (keys_now, totals_now) = key_set_and_totals(&batches, &keys, &counts);
            versions.push(SliceVersion {
                added: keys_now.difference(&keys_before).count(),
                removed: keys_before.difference(&keys_now).count(),
                totals: counts
                    .iter()
                    .zip(totals_before.iter().zip(&totals_now))
                    .map(|(name, (before, after))| (name.to_string(), *before, *after))
                    .collect(),
                submission,
            });
            (keys_before, totals_before) = (keys_now, totals_now);
        }
        Ok(versions)
    }

    /// The slice's key and count columns (keys as text, counts as Int64) at a table version.
    async fn slice_at(
        &self,
        kind: ReportKind,
        province: Option<&str>,
        school_year: SchoolYear,
        version: u64,
        keys: &[&str],
        counts: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        let table = self.table(fact_table(kind), Some(version)).await?;
        table.update_datafusion_session(&ctx.state())?;
        let mut filter = col("school_year").eq(lit(school_year.to_string()));
        if let Some(province) = province {
            filter = filter.and(col("province_code").eq(lit(province)));
        }
        let columns = keys
            .iter()
            .map(|k| cast(col(*k), DataType::Utf8).alias(*k))
            .chain(counts.iter().map(|c| cast(col(*c), DataType::Int64).alias(*c)))
            .collect::<Vec<_>>();
        Ok(ctx
            .read_table(crate::tables::scan::DeltaFiles::provider(&table)?)?
            .filter(filter)?
            .select(columns)?
            .collect()
            .await?)
    }
}

fn key_set_and_totals(batches: &[RecordBatch], keys: &[&str], counts: &[&str]) -> (BTreeSet<String>, Vec<i64>) {
    let mut set = BTreeSet::new();
    let mut totals = vec![0i64; counts.len()];
    for batch in batches {
        let key_columns: Vec<Option<&StringArray>> = keys
            .iter()
            .map(|k| {
                batch
                    .column_by_name(k)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            })
            .collect();
        for row in 0..batch.num_rows() {
            let key: Vec<&str> = key_columns
                .iter()
                .map(|c| c.filter(|c| c.is_valid(row)).map_or("", |c| c.value(row)))
                .collect();
            set.insert(key.join("\u{1f}"));
        }
        for (total, name) in totals.iter_mut().zip(counts) {
            if let Some(values) = batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            {
                *total += values.iter().flatten().sum::<i64>();
            }
        }
    }
    (set, totals)
}
