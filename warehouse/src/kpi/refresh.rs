//! Keeping `kpi_values` fresh: the values carry the tag of the table versions and metrics they were
//! computed from, and are recomputed (one overwrite, under the commit lock) when the tag changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use crate::kpi::compute as kpi;
use crate::kpi::metrics::Dimension;
use crate::store::{TableVersions, Warehouse, is_conflict, rows_of};
use crate::tables::rows::{KpiRow, Submission};
use crate::tables::schemas::{KPI_VALUES, SOURCE_VERSIONS, SUBMISSIONS, fact_table, kpi_values_table_schema};
use crate::tables::stored::StoredRow;
use crate::{Error, Result};

impl Warehouse {
    /// The tag the KPI values of the tables as they are now carry (or will carry once
    /// computed): every table's latest version and the metrics' fingerprint. Cheap; a reader
    /// that kept values under the same tag may keep using them.
    pub async fn current_tag(&self) -> Result<String> {
        self.source_tag(&self.versions().await?)
    }

    /// The tag of KPI values computed from these table versions under the attached metrics.
    fn source_tag(&self, versions: &TableVersions) -> Result<String> {
        let mut tag: Vec<String> = versions.iter().map(|(t, v)| format!("{t}={v}")).collect();
        tag.push(format!("metrics={}", &self.metrics()?.fingerprint[..12]));
        Ok(tag.join(" "))
    }

    /// The tag the `kpi_values` table carries now.
    async fn kpi_values_tag(&self) -> Result<Option<String>> {
        let table = self.table(KPI_VALUES, None).await?;
        let last = StreamExt::collect::<Vec<_>>(table.history(Some(1))).await;
        Ok(last.into_iter().flatten().find_map(|info| {
            info.info
                .get(SOURCES_METADATA)
                .and_then(|v| v.as_str().map(str::to_string))
        }))
    }

    /// Makes sure `kpi_values` holds the KPIs of the tables as they are now; recomputes them
    /// (one atomic overwrite, under the commit lock) when any table or the metrics changed.
    /// Returns the tag of the values.
    /// The work runs on the query runtime ([`crate::query::engine`]), never on the caller's threads.
    pub async fn ensure_kpis_fresh(&self) -> Result<String> {
        let warehouse = self.clone();
        crate::query::engine::run(async move { warehouse.ensure_kpis_fresh_here().await }).await?
    }

    async fn ensure_kpis_fresh_here(&self) -> Result<String> {
        let tag = self.source_tag(&self.versions().await?)?;
        if self.kpi_values_tag().await?.as_deref() == Some(tag.as_str()) {
            return Ok(tag);
        }
        let _lock = self.lock().await?;
        let mut refreshing = self.clone();
        // Processes of other machines may refresh at the same moment: one overwrite wins, and
        // the others look again (the values may be fresh now, or stale again).
        for _ in 0..KPI_REFRESH_ATTEMPTS {
            match refreshing.refresh_kpis_locked().await {
                Err(Error::Delta(e)) if is_conflict(&e) => continue,
                // The dashboard needs its figures: without the cluster, this process computes
                // them itself, slower.
                Err(Error::Cluster(cause)) if refreshing.cluster.is_some() => {
                    tracing::warn!(%cause, "the cluster could not refresh the KPIs: this process does");
                    refreshing = refreshing.without_cluster();
                }
                done => return done,
            }
        }
        Err(Error::Internal(
            "the KPI values kept being rewritten by other processes".into(),
        ))
    }

    async fn refresh_kpis_locked(&self) -> Result<String> {
        // Pinned to the versions of the tag, so values and tag agree whatever commits next.
        let versions = self.versions().await?;
        let tag = self.source_tag(&versions)?;
        if self.kpi_values_tag().await?.as_deref() == Some(tag.as_str()) {
            return Ok(tag);
        }
        let previous_tag = self.kpi_values_tag().await?;
        let ctx = self.session(&versions).await?;
        let metrics = self.metrics()?;
        let started = std::time::Instant::now();
        let (values, how) = match self.changed_since(previous_tag.as_deref(), &versions).await? {
            Some(changed) => match self.all_kpi_values().await {
                Ok(previous) => (
                    kpi::compute_changed(&ctx, metrics, &previous, &changed).await?,
                    changed
                        .iter()
                        .map(|(table, years)| {
                            let years: Vec<String> = years.iter().map(|y| y.to_string()).collect();
                            format!("{table} {}", years.join(", "))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(_) => (kpi::compute(&ctx, metrics).await?, "everything".to_string()),
            },
            None => (kpi::compute(&ctx, metrics).await?, "everything".to_string()),
        };
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            from = how.as_str(),
            "KPI values computed"
        );
        let batch = KpiRow::to_batch(&values)?;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![tag.as_str(); batch.num_rows()])));
        let batch = RecordBatch::try_new(kpi_values_table_schema(), columns)?;
        self.table(KPI_VALUES, None)
            .await?
            .write(vec![batch])
            .with_save_mode(SaveMode::Overwrite)
            // Recomputed whole each time: the columns are this khoso's, whatever an older one wrote.
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_commit_properties(
                CommitProperties::default()
                    .with_metadata([(SOURCES_METADATA.to_string(), serde_json::Value::String(tag.clone()))]),
            )
            .await?;
        Ok(tag)
    }

    /// What changed since the KPI values tagged `previous` were computed: for each fact table
    /// whose version moved, the school years of the submissions committed since. None when the
    /// values must be computed in full: no earlier values, other metrics, a table the tag does
    /// not name, or a table version no submission explains (the safe answer is everything).
    async fn changed_since(&self, previous: Option<&str>, versions: &TableVersions) -> Result<Option<kpi::Changed>> {
        let Some(previous) = previous else {
            return Ok(None);
        };
        let mut before = BTreeMap::new();
        let mut same_metrics = false;
        for pair in previous.split(' ') {
            let Some((name, value)) = pair.split_once('=') else {
                return Ok(None);
            };
            match name {
                "metrics" => same_metrics = self.metrics()?.fingerprint.starts_with(value),
                _ => {
                    let Ok(version) = value.parse::<u64>() else {
                        return Ok(None);
                    };
                    before.insert(name.to_string(), version);
                }
            }
        }
        if !same_metrics {
            return Ok(None);
        }
        let submissions = self.submissions().await?;
        let mut changed = kpi::Changed::new();
        for (table, &now) in versions {
            let Some(&then) = before.get(table) else {
                return Ok(None);
            };
            if now == then || table == SUBMISSIONS {
                continue;
            }
            let years: std::collections::BTreeSet<ingest::SchoolYear> = submissions
                .iter()
                .filter(|s| fact_table(s.kind) == table)
                .filter(|s| (then as i64) < s.table_version && s.table_version <= now as i64)
                .map(|s| s.school_year)
                .collect();
            if years.is_empty() {
                return Ok(None);
            }
            changed.insert(table.clone(), years);
        }
        Ok(Some(changed))
    }

    /// Every row of `kpi_values` as it is.
    async fn all_kpi_values(&self) -> Result<Vec<KpiRow>> {
        let ctx = SessionContext::new();
        let table = self.table(KPI_VALUES, None).await?;
        table.update_datafusion_session(&ctx.state())?;
        let batches = ctx
            .read_table(crate::tables::scan::DeltaFiles::provider(&table)?)?
            .collect()
            .await?;
        rows_of(&batches, KPI_VALUES)
    }

    /// Fresh KPI values of one dimension (and one KPI, if given), in file order of the KPIs,
    /// then unit and year; with the tag they were computed under.
    pub async fn kpi_rows(&self, kpi: Option<&str>, dimension: Dimension) -> Result<(Vec<KpiRow>, String)> {
        let tag = self.ensure_kpis_fresh().await?;
        let ctx = SessionContext::new();
        let table = self.table(KPI_VALUES, None).await?;
        table.update_datafusion_session(&ctx.state())?;
        let mut filter = col("dimension").eq(lit(dimension.as_str()));
        if let Some(id) = kpi {
            filter = filter.and(col("kpi_id").eq(lit(id)));
        }
        let batches = ctx
            .read_table(crate::tables::scan::DeltaFiles::provider(&table)?)?
            .filter(filter)?
            .sort(vec![col("unit").sort(true, true), col("school_year").sort(true, true)])?
            .collect()
            .await?;
        let mut rows: Vec<KpiRow> = rows_of(&batches, KPI_VALUES)?;
        let order: Vec<&str> = self.metrics()?.kpis.iter().map(|k| k.id.as_str()).collect();
        rows.sort_by_key(|r| order.iter().position(|id| *id == r.kpi_id));
        Ok((rows, tag))
    }

    /// Every fresh KPI value (all KPIs, all dimensions) and the submissions they rest on, read
    /// at one version of `kpi_values` and the `submissions` version of its tag: one consistent
    /// state of the warehouse for a reader to keep while [`Warehouse::current_tag`] is unchanged.
    pub async fn kpi_snapshot(&self) -> Result<KpiSnapshot> {
        let fresh = self.ensure_kpis_fresh().await?;
        let table = self.table(KPI_VALUES, None).await?;
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        let batches = ctx
            .read_table(crate::tables::scan::DeltaFiles::provider(&table)?)?
            .sort(vec![
                col("dimension").sort(true, true),
                col("unit").sort(true, true),
                col("school_year").sort(true, true),
            ])?
            .collect()
            .await?;
        // The tag in the rows themselves: the one the values were computed under, whatever
        // committed since.
        let tag = batches
            .iter()
            .find_map(|b| {
                let tags = b
                    .column_by_name(SOURCE_VERSIONS)?
                    .as_any()
                    .downcast_ref::<StringArray>()?;
                (!tags.is_empty()).then(|| tags.value(0).to_string())
            })
            .unwrap_or(fresh);
        let submissions_version = tag
            .split(' ')
            .find_map(|pair| pair.strip_prefix(&format!("{SUBMISSIONS}=")))
            .and_then(|v| v.parse::<u64>().ok());
        let mut rows: Vec<KpiRow> = rows_of(&batches, KPI_VALUES)?;
        let order: Vec<&str> = self.metrics()?.kpis.iter().map(|k| k.id.as_str()).collect();
        rows.sort_by_key(|r| order.iter().position(|id| *id == r.kpi_id));
        let submissions = self.submissions_at(submissions_version, None).await?;
        Ok(KpiSnapshot { tag, rows, submissions })
    }
}

/// Commit metadata key under which `kpi_values` records what its values were computed from.
const SOURCES_METADATA: &str = "khoso.sources";

/// Times a KPI refresh that lost the race to another process's looks again.
const KPI_REFRESH_ATTEMPTS: usize = 8;

/// Every KPI value at one state of the warehouse, with the submissions of that state.
#[derive(Debug, Clone)]
pub struct KpiSnapshot {
    /// The tables' versions and the metrics fingerprint the values were computed from.
    pub tag: String,
    /// Every KPI × dimension × unit × school year, in file order of the KPIs.
    pub rows: Vec<KpiRow>,
    /// Every submission up to that state, oldest first.
    pub submissions: Vec<Submission>,
}
