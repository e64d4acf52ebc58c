//! Property tests of the intake: a file with problems leaves every table as it was (the same
//! version of each), and a valid file's values, committed and read back with SQL, are the
//! file's.

use proptest::prelude::*;
use warehouse::intake::steps::{Delivery, Intent, Outcome};
use warehouse::people::rights::Actor;
use warehouse::{OutputFormat, TableVersions, Warehouse};

use crate::HEADER;

/// A school's counts, every part within its whole.
fn school() -> impl Strategy<Value = [i64; 4]> {
    (0i64..5_000, 0i64..20_000).prop_flat_map(|(students, periods)| {
        (Just(students), 0..=students, Just(periods), 0..=periods).prop_map(|(s, r, p, o)| [s, r, p, o])
    })
}

fn csv(schools: &[[i64; 4]], broken: Option<usize>) -> String {
    let mut text = format!("{HEADER}\n");
    for (i, [students, ready, periods, online]) in schools.iter().enumerate() {
        // A broken row says more pupils are ready than there are.
        let ready = if broken == Some(i) { students + 1 } else { *ready };
        text.push_str(&format!(
            "2024-2025,01,S{i},Trường {i},primary,public,{students},{ready},0,0,1,0,0,{periods},{online},x,x,x,x\n"
        ));
    }
    text
}

async fn send(warehouse: &Warehouse, dir: &std::path::Path, text: &str) -> Outcome {
    let path = dir.join(format!("{}.csv", uuid_like(text)));
    std::fs::write(&path, text).expect("write");
    let delivery = Delivery::file(path, ingest::ReportKind::School, ingest::SliceHint::default());
    let mut received = warehouse
        .intake(false)
        .receive(
            vec![delivery],
            &Actor::operator("property"),
            Intent::Commit,
            chrono::Utc::now(),
        )
        .await
        .expect("the intake answers");
    received.pop().expect("one file").outcome
}

/// A file name from the text, so that no two cases share one.
fn uuid_like(text: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn files_with_problems_change_nothing_and_valid_files_read_back_as_sent(
        schools in prop::collection::vec(school(), 1..12),
        broken in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        runtime.block_on(async {
            let warehouse = Warehouse::init(&dir.path().join("data")).await.expect("init");
            let before = warehouse.versions().await.expect("versions");
            let bad = csv(&schools, Some(broken.index(schools.len())));
            let outcome = send(&warehouse, dir.path(), &bad).await;
            prop_assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
            prop_assert_eq!(&warehouse.versions().await.expect("versions"), &before);

            let outcome = send(&warehouse, dir.path(), &csv(&schools, None)).await;
            prop_assert!(matches!(outcome, Outcome::Committed(_)), "{outcome:?}");
            let batches = warehouse
                .query(
                    "SELECT students, students_online_ready, periods_total, periods_online FROM school_reports \
                     ORDER BY CAST(substr(school_id, 2) AS INT)",
                    &TableVersions::new(),
                )
                .await
                .expect("query");
            let text = warehouse::render(&batches, OutputFormat::Csv).expect("csv");
            let read_back: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
            let sent: Vec<String> = schools
                .iter()
                .map(|s| s.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
                .collect();
            prop_assert_eq!(read_back, sent);
            Ok(())
        })?;
    }
}
