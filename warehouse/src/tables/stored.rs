//! A stored row is defined once, as a struct written inside [`stored_row!`]: its table's Arrow
//! schema and its record batches come from the struct's fields, and it is read back through
//! serde (`Warehouse::read_rows`).
//!
//! A field's column follows from its Rust type ([`Column`]): text-like values (`String`, a
//! report kind, a school year, a province code, a status, a verdict) are `Utf8`, `i64` is
//! `Int64`, `f64` is `Float64`, `bool` is `Boolean`; an `Option` makes the column nullable. A
//! field written `at: i64 as UtcMicros` is a time, stored as `Timestamp(µs, UTC)` and read back
//! as microseconds since the Unix epoch.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;

/// A row type with a table of its own.
pub trait StoredRow: Serialize + DeserializeOwned + Sized {
    /// The table's Arrow schema: one column per field, in the struct's order.
    fn schema() -> SchemaRef;

    /// Rows as one record batch of [`StoredRow::schema`].
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;
}

/// How a value of type `V` is stored: its Arrow type, whether it may be null, and the column of
/// a run of values. A type is its own column; [`UtcMicros`] stores an `i64` as a time.
pub trait Column<V> {
    /// The column's Arrow type.
    fn data_type() -> DataType;

    /// Whether the column may hold nulls.
    fn nullable() -> bool;

    /// The column of these values.
    fn array<'a>(values: impl Iterator<Item = &'a V>) -> ArrayRef
    where
        V: 'a;
}

/// An `i64` of microseconds since the Unix epoch, stored as `Timestamp(µs, UTC)`.
pub struct UtcMicros;

/// A value stored as text.
pub trait Text {
    /// The stored text.
    fn text(&self) -> Cow<'_, str>;
}

impl Text for String {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl Text for ingest::ReportKind {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl Text for ingest::ProvinceCode {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl Text for ingest::SchoolYear {
    fn text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl<T: Text> Column<T> for T {
    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn nullable() -> bool {
        false
    }

    fn array<'a>(values: impl Iterator<Item = &'a T>) -> ArrayRef
    where
        T: 'a,
    {
        Arc::new(values.map(|v| Some(v.text())).collect::<StringArray>())
    }
}

impl<T: Text> Column<Option<T>> for Option<T> {
    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn nullable() -> bool {
        true
    }

    fn array<'a>(values: impl Iterator<Item = &'a Option<T>>) -> ArrayRef
    where
        T: 'a,
    {
        Arc::new(values.map(|v| v.as_ref().map(Text::text)).collect::<StringArray>())
    }
}

/// Columns of numbers and flags: the Rust type, its Arrow type and its array.
macro_rules! primitive_columns {
    ($($rust:ty => $arrow:expr, $array:ty;)*) => {$(
        impl Column<$rust> for $rust {
            fn data_type() -> DataType {
                $arrow
            }

            fn nullable() -> bool {
                false
            }

            fn array<'a>(values: impl Iterator<Item = &'a $rust>) -> ArrayRef {
                Arc::new(values.map(|v| Some(*v)).collect::<$array>())
            }
        }

        impl Column<Option<$rust>> for Option<$rust> {
            fn data_type() -> DataType {
                $arrow
            }

            fn nullable() -> bool {
                true
            }

            fn array<'a>(values: impl Iterator<Item = &'a Option<$rust>>) -> ArrayRef {
                Arc::new(values.copied().collect::<$array>())
            }
        }
    )*};
}

primitive_columns! {
    i64 => DataType::Int64, Int64Array;
    f64 => DataType::Float64, Float64Array;
    bool => DataType::Boolean, BooleanArray;
}

impl Column<i64> for UtcMicros {
    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    fn nullable() -> bool {
        false
    }

    fn array<'a>(values: impl Iterator<Item = &'a i64>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values.copied().collect::<Vec<_>>()).with_timezone("UTC"))
    }
}

/// The Arrow field of a struct's field `name` of type `V`, stored as `C`.
pub fn field<V, C: Column<V>>(name: &str) -> Field {
    Field::new(name, C::data_type(), C::nullable())
}

/// The column a field is stored as: its own type, or the one named after `as`.
#[macro_export]
#[doc(hidden)]
macro_rules! stored_column {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $column:ty) => {
        $column
    };
}

/// Defines a struct and makes it a [`StoredRow`]. Fields are written as in a struct, each
/// `pub`, a time written `name: i64 as UtcMicros`; attributes (docs, serde) are kept.
#[macro_export]
macro_rules! stored_row {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty $(as $column:ty)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $crate::tables::stored::StoredRow for $name {
            fn schema() -> ::datafusion::arrow::datatypes::SchemaRef {
                ::std::sync::Arc::new(::datafusion::arrow::datatypes::Schema::new(vec![$(
                    $crate::tables::stored::field::<$ty, $crate::stored_column!($ty $(, $column)?)>(
                        stringify!($field),
                    ),
                )*]))
            }

            fn to_batch(rows: &[Self]) -> $crate::Result<::datafusion::arrow::array::RecordBatch> {
                let columns = vec![$(
                    <$crate::stored_column!($ty $(, $column)?) as $crate::tables::stored::Column<$ty>>::array(
                        rows.iter().map(|row| &row.$field),
                    ),
                )*];
                Ok(::datafusion::arrow::array::RecordBatch::try_new(
                    <Self as $crate::tables::stored::StoredRow>::schema(),
                    columns,
                )?)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows_of;
    use crate::tables::rows::{AuditEvent, Decision, KpiRow, Status, Submission, Verdict};
    use datafusion::arrow::datatypes::Schema;

    fn read_back<T: StoredRow>(rows: &[T]) -> Vec<T> {
        let batch = T::to_batch(rows).expect("batch");
        // Times are read back as microseconds, as `read_rows` selects them.
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(..) => Field::new(f.name(), DataType::Int64, f.is_nullable()),
                _ => f.as_ref().clone(),
            })
            .collect();
        let columns = batch
            .columns()
            .iter()
            .zip(&fields)
            .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()).expect("cast"))
            .collect();
        let read = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("read batch");
        rows_of(&[read], "test").expect("rows")
    }

    #[test]
    fn each_stored_row_comes_back_as_written() {
        let submission = Submission {
            submission_id: "s-1".into(),
            kind: ingest::ReportKind::School,
            province_code: Some("01".parse().expect("code")),
            school_year: "2024-2025".parse().expect("year"),
            rows: 3,
            sha256: "ab".repeat(32),
            file_name: "Hà Nội.csv".into(),
            uploaded_by: "hanoi".into(),
            uploaded_at: 1_780_000_000_123_456,
            table_version: 7,
            supersedes: None,
        };
        let national = Submission {
            province_code: None,
            supersedes: Some("s-0".into()),
            ..submission.clone()
        };
        assert_eq!(
            read_back(&[submission.clone(), national.clone()]),
            vec![submission, national]
        );

        let decision = Decision {
            submission_id: "s-1".into(),
            decision: Verdict::Returned,
            decided_by: "admin".into(),
            decided_at: -5,
            comment: Some("thiếu cột".into()),
        };
        assert_eq!(read_back(std::slice::from_ref(&decision)), vec![decision]);

        let mut event = AuditEvent::now("upload", "committed");
        event.detail = Some("3 rows".into());
        assert_eq!(read_back(std::slice::from_ref(&event)), vec![event]);

        let value = KpiRow {
            kpi_id: "k".into(),
            dimension: "province".into(),
            unit: "01".into(),
            school_year: "2024-2025".into(),
            numerator: Some(1.5),
            denominator: None,
            value: Some(0.25),
            people: Some(12),
            withheld: true,
            target_year: None,
            target_value: Some(50.0),
            comparison: Some(">=".into()),
            line_value: None,
            status: Some(Status::AtRisk),
            gap: Some(-1.0),
            projected: None,
            reach_year: Some("2027-2028".into()),
            reported: 3,
            expected: None,
            coverage: Some(1.0),
        };
        assert_eq!(read_back(std::slice::from_ref(&value)), vec![value]);
    }

    #[test]
    fn the_schema_follows_the_fields() {
        let schema = Submission::schema();
        let uploaded_at = schema.field_with_name("uploaded_at").expect("field");
        assert_eq!(
            uploaded_at.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(!uploaded_at.is_nullable());
        assert!(schema.field_with_name("province_code").expect("field").is_nullable());
        assert!(!schema.field_with_name("kind").expect("field").is_nullable());
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names.first(), Some(&"submission_id"));
        assert_eq!(names.last(), Some(&"supersedes"));
        assert_eq!(names.len(), 11);
    }
}
