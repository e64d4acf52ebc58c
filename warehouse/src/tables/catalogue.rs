//! The catalogue: every table the warehouse keeps or shows, once — its name, what it holds, how
//! it is stored and partitioned, and who may read it. `Warehouse::init` creates the Delta
//! tables from it, sessions register from it, the schema browser and error messages describe
//! tables from it, and [`ReaderSchema`] refuses a table to a reader the catalogue does not
//! allow, when the planner resolves the name — whatever the query calls it (an alias, a CTE, a
//! view) and on every path (the web, the API, the PostgreSQL wire, `khoso sql`).
//!
//! To add a table: one entry in [`CATALOGUE`], its schema function, and its place in the
//! table list of docs/guide/sql.md (a test checks that every entry is there).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::SessionContext;
use ingest::ReportKind;

use crate::people::rights::Role;
use crate::tables::rows::{APPROVALS, AUDIT_LOG, AuditEvent, Decision, Explanation, QUALITY_EXPLANATIONS, Submission};
use crate::tables::schemas::{KPI_VALUES, SUBMISSIONS, fact_schema, kpi_values_table_schema};
use crate::tables::stored::StoredRow;

/// Who may read a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// Every account that may query (analysts and admins), and the dashboard's pages.
    Everyone,
    /// Admin accounts only.
    Admins,
}

/// Where a table's rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A Delta table under `DATA/tables/NAME`, whose versions a query may pin (`--at`) and a
    /// KPI value names as its source.
    Source,
    /// A Delta table computed or appended by the server itself (not pinned by queries).
    Ledger,
    /// Built in memory from the lists shipped with khoso.
    Reference,
}

/// One table of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct TableEntry {
    /// Its SQL name.
    pub name: &'static str,
    /// What a row is, in English.
    pub description_en: &'static str,
    /// What a row is, in Vietnamese.
    pub description_vi: &'static str,
    /// How it is stored.
    pub storage: Storage,
    /// The columns its files are partitioned by.
    pub partitioning: &'static [&'static str],
    /// Who may read it.
    pub readers: Readers,
    /// Its columns.
    pub schema: fn() -> SchemaRef,
}

impl TableEntry {
    /// Whether an account of `role` may read the table.
    pub fn readable_by(&self, role: Role) -> bool {
        match self.readers {
            Readers::Everyone => true,
            Readers::Admins => role == Role::Admin,
        }
    }

    /// Whether it is a Delta table of the warehouse.
    pub fn is_delta(&self) -> bool {
        self.storage != Storage::Reference
    }
}

fn school_schema() -> SchemaRef {
    fact_schema(ReportKind::School)
}

fn university_schema() -> SchemaRef {
    fact_schema(ReportKind::University)
}

fn content_schema() -> SchemaRef {
    fact_schema(ReportKind::Content)
}

fn learner_schema() -> SchemaRef {
    fact_schema(ReportKind::Learner)
}

fn teacher_schema() -> SchemaRef {
    fact_schema(ReportKind::Teacher)
}

fn reference_schema(name: &str) -> SchemaRef {
    crate::tables::reference::reference_tables()
        .ok()
        .and_then(|tables| tables.into_iter().find(|(n, _)| *n == name))
        .map(|(_, table)| table.schema())
        .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()))
}

/// Every table, in the order the schema browser and the docs list them.
pub const CATALOGUE: &[TableEntry] = &[
    TableEntry {
        name: "school_reports",
        description_en: "one row per school and school year, as the provinces reported it",
        description_vi: "mỗi dòng một trường trong một năm học, theo báo cáo của tỉnh",
        storage: Storage::Source,
        partitioning: &["school_year", "province_code"],
        readers: Readers::Everyone,
        schema: school_schema,
    },
    TableEntry {
        name: "university_reports",
        description_en: "one row per higher-education institution and school year",
        description_vi: "mỗi dòng một cơ sở giáo dục đại học trong một năm học",
        storage: Storage::Source,
        partitioning: &["school_year", "province_code"],
        readers: Readers::Everyone,
        schema: university_schema,
    },
    TableEntry {
        name: "content_coverage",
        description_en: "one row per subject and grade: the share of its programme taught online (national)",
        description_vi: "mỗi dòng một môn của một khối lớp: tỷ lệ nội dung dạy trực tuyến (toàn quốc)",
        storage: Storage::Source,
        partitioning: &["school_year"],
        readers: Readers::Everyone,
        schema: content_schema,
    },
    TableEntry {
        name: "learner_records",
        description_en: "one row per learner and school year, from the national education database; the \
                         identifier is a keyed pseudonym",
        description_vi: "mỗi dòng một người học trong một năm học, từ CSDL ngành; mã định danh đã được thay bằng \
                         bí danh có khoá",
        storage: Storage::Source,
        partitioning: &["school_year", "province_code"],
        readers: Readers::Everyone,
        schema: learner_schema,
    },
    TableEntry {
        name: "teacher_records",
        description_en: "one row per teacher and school year, from the national education database; the \
                         identifier is a keyed pseudonym",
        description_vi: "mỗi dòng một giáo viên trong một năm học, từ CSDL ngành; mã định danh đã được thay bằng \
                         bí danh có khoá",
        storage: Storage::Source,
        partitioning: &["school_year", "province_code"],
        readers: Readers::Everyone,
        schema: teacher_schema,
    },
    TableEntry {
        name: SUBMISSIONS,
        description_en: "one row per accepted file: who sent which slice, when, its SHA-256",
        description_vi: "mỗi dòng một tệp được nhận: ai gửi, phần số liệu nào, khi nào, mã SHA-256",
        storage: Storage::Source,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: Submission::schema,
    },
    TableEntry {
        name: KPI_VALUES,
        description_en: "every KPI's value, target and status by year, nationally, by region and province",
        description_vi: "giá trị, mục tiêu và tình trạng của mọi chỉ tiêu theo năm, toàn quốc, vùng và tỉnh",
        storage: Storage::Ledger,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: kpi_values_table_schema,
    },
    TableEntry {
        name: AUDIT_LOG,
        description_en: "one row per upload, decision, sign-in and query: who did what, when, with what outcome",
        description_vi: "mỗi dòng một lần nộp, duyệt, đăng nhập, truy vấn: ai làm gì, khi nào, kết quả",
        storage: Storage::Ledger,
        partitioning: &[],
        readers: Readers::Admins,
        schema: AuditEvent::schema,
    },
    TableEntry {
        name: APPROVALS,
        description_en: "the ministry's review decisions about submissions",
        description_vi: "quyết định duyệt hoặc trả lại báo cáo của Bộ",
        storage: Storage::Ledger,
        partitioning: &[],
        readers: Readers::Admins,
        schema: Decision::schema,
    },
    TableEntry {
        name: QUALITY_EXPLANATIONS,
        description_en: "why a figure the plausibility checks flagged is right, said by an admin or its province",
        description_vi: "lời giải thích vì sao số liệu bị cảnh báo là đúng, do quản trị viên hoặc tỉnh ghi",
        storage: Storage::Ledger,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: Explanation::schema,
    },
    TableEntry {
        name: "provinces",
        description_en: "the 63 provinces of 2008–2025 and the 34 from 1 July 2025, with the crosswalk",
        description_vi: "63 tỉnh giai đoạn 2008–2025 và 34 tỉnh từ 1/7/2025, kèm bảng chuyển đổi",
        storage: Storage::Reference,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: || reference_schema("provinces"),
    },
    TableEntry {
        name: "regions",
        description_en: "the six socio-economic regions",
        description_vi: "sáu vùng kinh tế - xã hội",
        storage: Storage::Reference,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: || reference_schema("regions"),
    },
    TableEntry {
        name: "levels",
        description_en: "the levels of schooling",
        description_vi: "các cấp học",
        storage: Storage::Reference,
        partitioning: &[],
        readers: Readers::Everyone,
        schema: || reference_schema("levels"),
    },
];

/// The catalogue's entry for a table.
pub fn entry(name: &str) -> Option<&'static TableEntry> {
    CATALOGUE.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

/// The warehouse's Delta tables.
pub fn delta_tables() -> impl Iterator<Item = &'static TableEntry> {
    CATALOGUE.iter().filter(|t| t.is_delta())
}

/// The tables a query may pin to a version (and whose versions tag the KPI values).
pub fn source_tables() -> impl Iterator<Item = &'static TableEntry> {
    CATALOGUE.iter().filter(|t| t.storage == Storage::Source)
}

/// The names of the tables an account of `role` may read, for messages.
pub fn readable_names(role: Role) -> String {
    CATALOGUE
        .iter()
        .filter(|t| t.readable_by(role))
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes a new session's default schema resolve every table as an account of `role` may read
/// it ([`ReaderSchema`]). Called before any table is registered.
pub fn read_as(ctx: &SessionContext, role: Role) -> crate::Result<()> {
    let config = ctx.copied_config();
    let options = &config.options().catalog;
    let catalog = ctx
        .catalog(&options.default_catalog)
        .ok_or_else(|| crate::Error::Internal("the session has no default catalog".into()))?;
    let tables = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema(&options.default_schema, Arc::new(ReaderSchema::new(tables, role)))?;
    Ok(())
}

/// The session's schema of tables as one reader sees it: tables the catalogue keeps from the
/// reader are missing from its lists (`information_schema`, `SHOW TABLES`, the PostgreSQL
/// catalogue) and refused by name, with the reason, when a query resolves them. Everything
/// else (registration, views) is the inner schema's.
#[derive(Debug)]
pub struct ReaderSchema {
    inner: Arc<dyn SchemaProvider>,
    role: Role,
}

impl ReaderSchema {
    /// `inner` as an account of `role` sees it.
    pub fn new(inner: Arc<dyn SchemaProvider>, role: Role) -> Self {
        Self { inner, role }
    }

    fn kept_from_reader(&self, name: &str) -> bool {
        entry(name).is_some_and(|t| !t.readable_by(self.role))
    }
}

#[async_trait]
impl SchemaProvider for ReaderSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|name| !self.kept_from_reader(name))
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if self.kept_from_reader(name) {
            return Err(DataFusionError::External(Box::new(crate::Error::NotReadable(format!(
                "table {name} is for admin accounts only; an {role} account reads {readable}",
                role = self.role.as_str(),
                readable = readable_names(self.role)
            )))));
        }
        self.inner.table(name).await
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        !self.kept_from_reader(name) && self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_agrees_with_the_tables_it_describes() {
        for kind in ReportKind::ALL {
            let entry = entry(crate::fact_table(kind)).expect("every fact table is catalogued");
            assert_eq!(entry.partitioning, crate::tables::schemas::partition_columns(kind));
            assert_eq!(entry.storage, Storage::Source);
        }
        for (name, table) in crate::tables::reference::reference_tables().expect("reference tables") {
            let entry = entry(name).expect("every reference table is catalogued");
            assert_eq!((entry.schema)(), table.schema());
        }
        let names: std::collections::HashSet<&str> = CATALOGUE.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), CATALOGUE.len(), "names are unique");
        assert!(!entry(AUDIT_LOG).expect("audit").readable_by(Role::Analyst));
        assert!(entry("AUDIT_LOG").expect("any case").readable_by(Role::Admin));
    }

    #[test]
    fn the_readme_lists_every_table() {
        let readme = include_str!("../../../docs/guide/sql.md");
        for table in CATALOGUE {
            assert!(
                readme.contains(&format!("`{}`", table.name)),
                "docs/guide/sql.md does not describe table {}",
                table.name
            );
        }
    }
}
