//! The dry run's summary: the province's KPI values with the file, in force and last year, and
//! the warnings of the plausibility checks of `metrics.toml` — on a warehouse whose numbers are
//! known.

use crate::{school_report, warehouse};

fn t1(preview: &warehouse::intake::preview::Preview) -> &warehouse::intake::preview::PreviewValue {
    preview
        .kpis
        .iter()
        .find(|k| k.kpi_id == "T1_pupils")
        .expect("T1_pupils")
}

fn rules(preview: &warehouse::intake::preview::Preview) -> Vec<&str> {
    preview.warnings.iter().map(|w| w.rule.as_str()).collect()
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
    // Hà Nội's learners grew 1.6 times (1,000 → 1,600: beyond 1.3), their share able to study
    // online moved 33.75 points (60.0 → 93.75: beyond 20), and S4 is missing.
    assert_eq!(
        rules(&preview),
        [
            "province_learners_change",
            "province_learners_online_ready_move",
            "school_missing"
        ],
        "{:?}",
        preview.warnings
    );
    assert!(
        preview.warnings[1]
            .message_vi
            .contains("60,0% năm 2023-2024 → 93,8% năm 2024-2025"),
        "{}",
        preview.warnings[1].message_vi
    );
    let missing = &preview.warnings[2];
    assert!(
        missing
            .message_en
            .ends_with("(1): S4 (D): in the 2023-2024 report (1,000) but not in 2024-2025's"),
        "{}",
        missing.message_en
    );

    // S4 again, with 400 pupils (from 1,000): beyond a factor of 2 for the school (over its
    // floor of 100) and of 1.3 for the province; T1 moves 10 points only.
    let (_, report) = school_report(
        dir.path(),
        "ha-noi-shrunk.csv",
        &["2024-2025,01,S4,D,primary,public,400,200,200,360,50,40,45,10000,400,x,x,x,x"],
    );
    let preview = warehouse.preview(&report).await.expect("preview");
    assert_eq!(t1(&preview).with_file, Some(50.0));
    assert_eq!(
        rules(&preview),
        ["school_pupils_change", "province_learners_change"],
        "{:?}",
        preview.warnings
    );
    assert!(
        preview.warnings[0]
            .message_en
            .contains("S4 · primary (D): 1,000 in 2023-2024 → 400 in 2024-2025 (2.5×; rule: more than 2.0×)"),
        "{}",
        preview.warnings[0].message_en
    );

    assert_eq!(
        warehouse.submissions().await.expect("submissions").len(),
        submissions_before,
        "a preview writes nothing"
    );
}
