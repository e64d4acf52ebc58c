//! Integration tests of the warehouse: SQL behaviour pinned in `.slt` files, and KPI results
//! that follow every commit.

mod freshness;
mod preview;
mod properties;
mod slt;

use std::path::Path;
use std::sync::Arc;

use ingest::{ReadOptions, ReportKind, SliceHint, read_report};
use warehouse::Warehouse;
use warehouse::intake::steps::{Delivery, Intent, Outcome};
use warehouse::kpi::metrics::Metrics;
use warehouse::people::rights::Actor;

pub const HEADER: &str = "school_year,province_code,school_id,school_name,level,ownership,students,students_online_ready,\
students_domestic_platform,students_digital_record,teachers,teachers_online_ready,teachers_digital_record,\
periods_total,periods_online,internet_for_teaching,management_platform,connected_national_db,cashless_payment";

/// (file, rows): Bắc Giang (24) and Bắc Ninh (27) in 2023-2024, which merge into the new 24;
/// Hà Nội (01) in both years.
const FILES: [(&str, &[&str]); 4] = [
    (
        "bac-giang-2023.csv",
        &[
            "2023-2024,24,S1,A,primary,public,100,40,10,90,5,3,5,1000,40,x,x,x,",
            "2023-2024,24,S2,B,lower_secondary,public,200,50,20,150,12,6,10,2000,150,x,x,,",
        ],
    ),
    (
        "bac-ninh-2023.csv",
        &["2023-2024,27,S3,C,primary,private,300,210,100,300,15,15,15,3000,90,x,x,x,x"],
    ),
    (
        "ha-noi-2023.csv",
        &["2023-2024,01,S4,D,primary,public,1000,600,500,900,50,40,45,10000,400,x,x,x,x"],
    ),
    (
        "ha-noi-2024.csv",
        &["2024-2025,01,S4,D,primary,public,1000,700,600,950,50,45,50,10000,600,x,x,x,x"],
    ),
];

/// A warehouse holding [`FILES`], with the shipped metrics.
pub async fn warehouse(dir: &Path) -> Warehouse {
    let metrics_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics.toml")).expect("metrics.toml");
    let metrics = Metrics::load(&metrics_text).await.expect("valid metrics");
    let warehouse = Warehouse::init(&dir.join("data"))
        .await
        .expect("init")
        .with_metrics(Arc::new(metrics));
    for (name, rows) in FILES {
        commit(&warehouse, dir, name, rows).await;
    }
    warehouse
}

/// Writes a school report with these rows and reads it back, validated.
pub fn school_report(dir: &Path, name: &str, rows: &[&str]) -> (std::path::PathBuf, ingest::ValidatedReport) {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).expect("write");
    let report = read_report(
        &path,
        ReportKind::School,
        &SliceHint::default(),
        &ReadOptions::default(),
    )
    .unwrap_or_else(|p| panic!("{name}: {p:?}"));
    (path, report)
}

/// Writes a school report with these rows and commits it (without refreshing KPIs).
pub async fn commit(warehouse: &Warehouse, dir: &Path, name: &str, rows: &[&str]) {
    let (path, _) = school_report(dir, name, rows);
    let delivery = Delivery::file(path, ReportKind::School, SliceHint::default());
    let received = warehouse
        .intake(false)
        .receive(
            vec![delivery],
            &Actor::operator("test"),
            Intent::Commit,
            chrono::DateTime::UNIX_EPOCH,
        )
        .await
        .expect("commit");
    assert!(
        matches!(received[0].outcome, Outcome::Committed(_)),
        "{name}: {:?}",
        received[0].outcome
    );
}
