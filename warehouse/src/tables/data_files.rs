//! Data files a commit adds to a table as they are. A record file's rows are written once, as
//! Parquet files of its table's layout, while the file is read (see
//! [`crate::tables::schemas::stored_schema`]); the commit moves them into the table's folder under their
//! slice's partition and records them in one Delta transaction that also removes the slice's
//! earlier files. Nothing is decoded or written again, so a whole country's learners commit in
//! the time of a few renames.

use std::path::{Path, PathBuf};

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::statistics::Statistics;
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add, Remove};
use futures::TryStreamExt;
use serde_json::{Map, Value};

use crate::place::storage::Storage;
use crate::{Error, Result};

/// The values of a slice's partition columns, in the table's order.
pub(crate) type PartitionValues = Vec<(&'static str, String)>;

/// The Parquet files of a folder, in name order (the order their blocks were read in).
pub(crate) fn parquet_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|path| path.extension().is_some_and(|e| e == "parquet"));
    files.sort();
    Ok(files)
}

/// Moves the Parquet files of `folder` (on this machine) into the table at `table` (its path
/// in the warehouse's storage), under the partition of `partition`, each named after the
/// submission; returns the actions that add them.
pub(crate) async fn place(
    storage: &Storage,
    folder: &Path,
    submission_id: &str,
    table: &str,
    partition: &PartitionValues,
) -> Result<Vec<Action>> {
    let partition_path: String = partition
        .iter()
        .map(|(name, value)| format!("{name}={value}/"))
        .collect();
    let mut actions = Vec::new();
    for file in parquet_files(folder)? {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Internal(format!("{} has no name", file.display())))?;
        let relative = format!("{partition_path}{submission_id}-{name}");
        let add = add_action(&file, relative.clone(), partition)?;
        storage.move_in(&file, &format!("{table}/{relative}")).await?;
        actions.push(Action::Add(add));
    }
    Ok(actions)
}

/// The action adding a data file, with the statistics Delta readers skip files by: rows, nulls,
/// and the least and greatest of each number and text column.
fn add_action(file: &Path, relative: String, partition: &PartitionValues) -> Result<Add> {
    let size = std::fs::metadata(file)?.len() as i64;
    let reader = SerializedFileReader::new(std::fs::File::open(file)?)?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let (mut nulls, mut least, mut greatest) = (Map::new(), Map::new(), Map::new());
    for (index, column) in schema.columns().iter().enumerate() {
        let name = column.name().to_string();
        // Known only when every row group says it.
        let mut null_count = Some(0u64);
        let (mut low, mut high): (Option<Value>, Option<Value>) = (None, None);
        for group in metadata.row_groups() {
            let Some(statistics) = group.column(index).statistics() else {
                null_count = None;
                continue;
            };
            null_count = null_count
                .zip(statistics.null_count_opt())
                .map(|(sum, nulls)| sum + nulls);
            let (min, max) = match statistics {
                Statistics::Int64(s) => (
                    s.min_opt().map(|v| Value::from(*v)),
                    s.max_opt().map(|v| Value::from(*v)),
                ),
                Statistics::ByteArray(s) => (
                    s.min_opt().and_then(|v| v.as_utf8().ok()).map(Value::from),
                    s.max_opt().and_then(|v| v.as_utf8().ok()).map(Value::from),
                ),
                _ => (None, None),
            };
            low = bound(low, min, std::cmp::Ordering::Less);
            high = bound(high, max, std::cmp::Ordering::Greater);
        }
        if let Some(null_count) = null_count {
            nulls.insert(name.clone(), Value::from(null_count));
        }
        if let Some(low) = low {
            least.insert(name.clone(), low);
        }
        if let Some(high) = high {
            greatest.insert(name, high);
        }
    }
    let stats = serde_json::json!({
        "numRecords": metadata.file_metadata().num_rows(),
        "minValues": least,
        "maxValues": greatest,
        "nullCount": nulls,
    });
    Ok(Add {
        path: relative,
        size,
        partition_values: partition
            .iter()
            .map(|(name, value)| (name.to_string(), Some(value.clone())))
            .collect(),
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(stats.to_string()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// Of a bound so far and a new one, the one further in the direction `keep` (numbers with
/// numbers, text with text): the least of minima, the greatest of maxima.
fn bound(current: Option<Value>, new: Option<Value>, keep: std::cmp::Ordering) -> Option<Value> {
    let order = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_i64().cmp(&b.as_i64()),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        _ => std::cmp::Ordering::Equal,
    };
    match (current, new) {
        (Some(current), Some(new)) if order(&new, &current) == keep => Some(new),
        (Some(current), _) => Some(current),
        (None, new) => new,
    }
}

/// The actions removing every file of the table in one of `slices` (whole partitions).
pub(crate) async fn removals(table: &DeltaTable, slices: &[PartitionValues]) -> Result<Vec<Action>> {
    let now = chrono::Utc::now().timestamp_millis();
    let files: Vec<_> = table.get_active_add_actions_by_partitions(&[]).try_collect().await?;
    let mut actions = Vec::new();
    for file in files {
        let values = file.partition_values_map();
        let in_slice = slices.iter().any(|slice| {
            slice
                .iter()
                .all(|(name, value)| values.get(*name).and_then(Option::as_deref) == Some(value.as_str()))
        });
        if in_slice {
            actions.push(Action::Remove(Remove {
                path: file.path().to_string(),
                data_change: true,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(values),
                size: Some(file.size()),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
    }
    Ok(actions)
}

/// The partition values of a table's rows for a school year and (for a provincial kind) a
/// province, as [`PartitionValues`].
pub(crate) fn slice_partition(
    kind: ingest::ReportKind,
    year: ingest::SchoolYear,
    province: Option<&str>,
) -> PartitionValues {
    let mut values = vec![("school_year", year.to_string())];
    if kind.is_provincial()
        && let Some(code) = province
    {
        values.push(("province_code", code.to_string()));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_file_carries_its_rows_nulls_and_bounds() {
        use std::sync::Arc;

        use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        use datafusion::parquet::arrow::ArrowWriter;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-00001.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "grade",
                Arc::new(Int64Array::from(vec![Some(7), None, Some(3)])) as ArrayRef,
            ),
            (
                "school_id",
                Arc::new(StringArray::from(vec![Some("0100010"), Some("0100002"), None])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).expect("file"), batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");

        let partition = vec![
            ("school_year", "2024-2025".to_string()),
            ("province_code", "01".to_string()),
        ];
        let add = add_action(
            &path,
            "school_year=2024-2025/province_code=01/x.parquet".into(),
            &partition,
        )
        .expect("add");
        assert_eq!(add.partition_values.get("province_code"), Some(&Some("01".to_string())));
        assert_eq!(add.size, std::fs::metadata(&path).expect("size").len() as i64);
        let stats: Value = serde_json::from_str(add.stats.as_deref().expect("stats")).expect("json");
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["nullCount"]["grade"], 1);
        assert_eq!(stats["nullCount"]["school_id"], 1);
        assert_eq!(
            (&stats["minValues"]["grade"], &stats["maxValues"]["grade"]),
            (&Value::from(3), &Value::from(7))
        );
        assert_eq!(
            (&stats["minValues"]["school_id"], &stats["maxValues"]["school_id"]),
            (&Value::from("0100002"), &Value::from("0100010"))
        );
    }

    #[test]
    fn bounds_keep_the_least_and_the_greatest() {
        let (a, b) = (Some(Value::from(3)), Some(Value::from(7)));
        assert_eq!(bound(a.clone(), b.clone(), std::cmp::Ordering::Less), a);
        assert_eq!(bound(a.clone(), b.clone(), std::cmp::Ordering::Greater), b);
        assert_eq!(bound(None, b.clone(), std::cmp::Ordering::Less), b);
        let (x, y) = (Some(Value::from("0100002")), Some(Value::from("0100010")));
        assert_eq!(bound(y.clone(), x.clone(), std::cmp::Ordering::Less), x);
    }
}
