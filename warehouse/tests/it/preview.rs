//! The dry run's summary: the province's KPI values with the file, in force and last year, and
//! the warnings that are not errors — on a warehouse whose numbers are known.

use crate::{school_report, warehouse};

fn t1(preview: &warehouse::intake::preview::Preview) -> &warehouse::intake::preview::PreviewValue {
    preview
        .kpis
        .iter()
        .find(|k| k.kpi_id == "T1_pupils")
        .expect("T1_pupils")
}

fn rules(preview: &warehouse::intake::preview::Preview) -> Vec<&str> {
    preview.warnings.iter().map(|w| w.rule).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_compares_with_the_year_before_and_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = warehouse(dir.path()).await;
    let submissions_before = warehouse.submissions().await.expect("submissions").len();

    // Hà Nội had one school, S4: 600 of 1,000 pupils ready in 2023-2024, 700 in 2024-2025.
    // A new 2024-2025 file with S5 instead (1,500 of 1,600): S4 is missing, and T1 jumps.
    let (_, report) = school_report(
        dir.path(),
        "ha-noi-new.csv",
        &["2024-2025,01,S5,E,primary,public,1600,1500,500,900,50,40,45,10000,400,x,x,x,x"],
    );
    let preview = warehouse.preview(&report).await.expect("preview");
    assert_eq!((preview.rows, preview.units), (1, 1));
    assert!(preview.totals.contains(&("students".to_string(), 1600)));
    let value = t1(&preview);
    assert_eq!(value.unit, "01");
    assert_eq!(value.with_file, Some(100.0 * 1500.0 / 1600.0));
    assert_eq!(value.in_force, Some(70.0));
    assert_eq!(value.last_year, Some(60.0));
    // T1 (60.0 → 93.75) and learners' digital records (900 of 1,000 → 900 of 1,600) moved.
    assert_eq!(
        rules(&preview),
        ["kpi_move", "kpi_move", "missing_units"],
        "{:?}",
        preview.warnings
    );
    assert!(
        preview.warnings[0]
            .message_vi
            .contains("60,0 năm 2023-2024 → 93,8 năm 2024-2025")
    );
    let missing = &preview.warnings[2];
    assert!(
        missing.message_en.ends_with("missing from this file (1): S4"),
        "{}",
        missing.message_en
    );

    // S4 again, with 400 pupils (from 1,000): a change of more than half; T1 moves 10 points,
    // domestic platforms stay at 50%, digital records at 90%.
    let (_, report) = school_report(
        dir.path(),
        "ha-noi-shrunk.csv",
        &["2024-2025,01,S4,D,primary,public,400,200,200,360,50,40,45,10000,400,x,x,x,x"],
    );
    let preview = warehouse.preview(&report).await.expect("preview");
    assert_eq!(t1(&preview).with_file, Some(50.0));
    assert_eq!(rules(&preview), ["unit_change"], "{:?}", preview.warnings);
    assert!(preview.warnings[0].message_en.contains("S4 (1000 → 400)"));

    assert_eq!(
        warehouse.submissions().await.expect("submissions").len(),
        submissions_before,
        "a preview writes nothing"
    );
}
