//! The KPIs' SQL, pinned: `tests/slt/*.slt` hold the exact queries the engine generates (each
//! after a `# kpi: ID DIMENSION` line) and their results on a small warehouse built here, where
//! every number can be checked by hand.

use std::path::{Path, PathBuf};

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};
use warehouse::TableVersions;
use warehouse::kpi::metrics::Dimension;

use crate::warehouse;

struct Engine {
    ctx: SessionContext,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Engine {
    type Error = datafusion::error::DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let batches = self.ctx.sql(sql).await?.collect().await?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        let mut types = Vec::new();
        for batch in &batches {
            types = batch.schema().fields().iter().map(|_| DefaultColumnType::Any).collect();
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("slt folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files_pin_the_kpi_sql_and_its_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = warehouse(dir.path()).await;
    warehouse.ensure_kpis_fresh().await.expect("KPIs computed");
    let metrics = warehouse.metrics().expect("metrics").clone();
    let ctx = warehouse.session(&TableVersions::new()).await.expect("session");
    for file in slt_files() {
        // The query after each `# kpi: ID DIMENSION` line is exactly what the engine runs.
        let text = std::fs::read_to_string(&file).expect("read slt");
        let mut pinned = 0;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(spec) = line.strip_prefix("# kpi: ") else {
                continue;
            };
            let (id, dimension) = spec.split_once(' ').expect("# kpi: ID DIMENSION");
            let kpi = metrics.kpi(id).unwrap_or_else(|| panic!("no KPI {id}"));
            let dimension: Dimension = dimension.parse().expect("dimension");
            assert!(
                lines.next().is_some_and(|l| l.starts_with("query ")),
                "{id}: a query follows"
            );
            let query: Vec<&str> = lines.by_ref().take_while(|l| *l != "----").collect();
            assert_eq!(
                query.join("\n"),
                warehouse::kpi::compute::kpi_sql(kpi, dimension),
                "{id} {dimension} in {}",
                file.display()
            );
            pinned += 1;
        }
        assert!(pinned > 0, "{} pins no KPI query", file.display());

        let ctx = ctx.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = ctx.clone();
            async move { Ok::<_, datafusion::error::DataFusionError>(Engine { ctx }) }
        });
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
