//! KPI results are never stale: a reader that finds `kpi_values` computed from older table
//! versions recomputes them before answering.

use warehouse::TableVersions;

use crate::{commit, warehouse};

async fn national_t1(warehouse: &warehouse::Warehouse, year: &str) -> (String, String) {
    let tag = warehouse.ensure_kpis_fresh().await.expect("fresh");
    let batches = warehouse
        .query(
            &format!(
                "SELECT value FROM kpi_values WHERE kpi_id = 'T1_pupils' AND dimension = 'national' AND school_year = '{year}'"
            ),
            &TableVersions::new(),
        )
        .await
        .expect("query");
    (
        warehouse::render(&batches, warehouse::OutputFormat::Csv).expect("csv"),
        tag,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_makes_the_next_read_recompute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = warehouse(dir.path()).await;
    let (before, tag_before) = national_t1(&warehouse, "2024-2025").await;
    assert_eq!(before, "value\n70.0\n");

    // A corrected Hà Nội 2024-2025 file: 800 of 1000 pupils instead of 700.
    let row = "2024-2025,01,S4,D,primary,public,1000,800,600,950,50,45,50,10000,600,x,x,x,x";
    commit(&warehouse, dir.path(), "ha-noi-2024-fixed.csv", &[row]).await;
    let (after, tag_after) = national_t1(&warehouse, "2024-2025").await;
    assert_eq!(after, "value\n80.0\n");
    assert_ne!(tag_before, tag_after);
    assert!(tag_after.contains("school_reports=5"), "{tag_after}");

    // Nothing changed: the same tag, no recomputation.
    let (_, tag_again) = national_t1(&warehouse, "2024-2025").await;
    assert_eq!(tag_again, tag_after);
}
