//! Reference tables (`provinces`, `regions`, `levels`), built from the shipped lists.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use ingest::provinces::{Province, ProvinceRegistry, files};

use crate::Result;

/// The reference tables by SQL name.
pub fn reference_tables() -> Result<Vec<(&'static str, Arc<MemTable>)>> {
    let registry = ProvinceRegistry::shipped();
    Ok(vec![
        ("provinces", provinces_table(registry)?),
        ("regions", regions_table(registry)?),
        ("levels", levels_table()?),
    ])
}

fn text_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn mem_table(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Both lists: the 63 provinces of 2008–2025 and the 34 from 1 July 2025, each row with the
/// code of the 2025 province it is (or became part of).
fn provinces_table(registry: &ProvinceRegistry) -> Result<Arc<MemTable>> {
    let all: Vec<&Province> = registry.before_2025.iter().chain(&registry.from_2025).collect();
    let text =
        |f: fn(&Province) -> Option<String>| Arc::new(all.iter().map(|p| f(p)).collect::<StringArray>()) as ArrayRef;
    let date = |d: chrono::NaiveDate| {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        (d - epoch).num_days() as i32
    };
    mem_table(
        vec![
            text_field("code", false),
            text_field("name_vi", false),
            text_field("name_en", false),
            text_field("region_code", false),
            Field::new("valid_from", DataType::Date32, false),
            Field::new("valid_to", DataType::Date32, true),
            text_field("province_2025_code", false),
            text_field("merged_from", true),
        ],
        vec![
            text(|p| Some(p.code.clone())),
            text(|p| Some(p.name_vi.clone())),
            text(|p| Some(p.name_en.clone())),
            text(|p| Some(p.region_code.clone())),
            Arc::new(all.iter().map(|p| Some(date(p.valid_from))).collect::<Date32Array>()),
            Arc::new(all.iter().map(|p| p.valid_to.map(date)).collect::<Date32Array>()),
            text(|p| Some(p.code_2025.clone())),
            text(|p| (!p.merged_from.is_empty()).then(|| p.merged_from.join(" "))),
        ],
    )
}

fn regions_table(registry: &ProvinceRegistry) -> Result<Arc<MemTable>> {
    let regions = &registry.regions;
    mem_table(
        vec![
            text_field("region_code", false),
            text_field("name_vi", false),
            text_field("name_en", false),
        ],
        vec![
            Arc::new(regions.iter().map(|r| Some(r.code.as_str())).collect::<StringArray>()),
            Arc::new(
                regions
                    .iter()
                    .map(|r| Some(r.name_vi.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                regions
                    .iter()
                    .map(|r| Some(r.name_en.as_str()))
                    .collect::<StringArray>(),
            ),
        ],
    )
}

fn levels_table() -> Result<Arc<MemTable>> {
    let header: Vec<&str> = files::LEVELS.lines().next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<&str>> = files::LEVELS
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let fields = header.iter().map(|h| text_field(h, true)).collect();
    let columns = (0..header.len())
        .map(|i| {
            Arc::new(
                rows.iter()
                    .map(|r| r.get(i).copied().filter(|v| !v.is_empty()))
                    .collect::<StringArray>(),
            ) as ArrayRef
        })
        .collect();
    mem_table(fields, columns)
}
