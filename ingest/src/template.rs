//! Empty report templates a province fills in Excel.

use std::io::Write;
use std::path::Path;

use rust_xlsxwriter::{Format, Workbook};

use crate::schema::{ColumnSpec, ColumnType, Lang, ReportSchema};
use crate::text::SchoolYear;
use crate::{Error, Result};

/// The columns of a template for reports of `year` (a column added later is not in it), or of
/// the newest reports (every column) without a year.
fn columns_of(schema: &ReportSchema, year: Option<SchoolYear>) -> impl Iterator<Item = &ColumnSpec> {
    schema
        .columns
        .iter()
        .filter(move |c| year.is_none_or(|year| c.in_year(year)))
}

/// Writes a CSV template for reports of `year` (see [`columns_of`]): a UTF-8 byte-order mark (so
/// Excel shows Vietnamese correctly) and the header row.
pub fn write_csv_template(
    schema: &ReportSchema,
    lang: Lang,
    year: Option<SchoolYear>,
    out: &mut impl Write,
) -> Result<()> {
    let headers: Vec<String> = columns_of(schema, year)
        .map(|c| crate::problem::csv_field(c.header(lang)))
        .collect();
    out.write_all("\u{feff}".as_bytes())?;
    writeln!(out, "{}", headers.join(","))?;
    Ok(())
}

/// Writes an `.xlsx` template for reports of `year` (see [`columns_of`]): the header row on the
/// first sheet (codes formatted as text so Excel keeps the leading zero of `01`), and a second
/// sheet explaining every column.
pub fn write_xlsx_template(schema: &ReportSchema, lang: Lang, year: Option<SchoolYear>, path: &Path) -> Result<()> {
    let xlsx = |e: rust_xlsxwriter::XlsxError| Error::Template(e.to_string());
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let as_text = Format::new().set_num_format("@");

    let data = workbook.add_worksheet();
    data.set_name(match lang {
        Lang::Vi => "Số liệu",
        Lang::En => "Data",
    })
    .map_err(xlsx)?;
    for (col, spec) in columns_of(schema, year).enumerate() {
        let col = col as u16;
        data.write_string_with_format(0, col, spec.header(lang), &bold)
            .map_err(xlsx)?;
        data.set_column_width(col, spec.header(lang).chars().count().clamp(10, 40) as f64)
            .map_err(xlsx)?;
        if matches!(
            spec.column_type,
            ColumnType::ProvinceCode | ColumnType::Text | ColumnType::SchoolYear | ColumnType::PersonId
        ) {
            data.set_column_format(col, &as_text).map_err(xlsx)?;
        }
    }
    data.set_freeze_panes(1, 0).map_err(xlsx)?;

    let guide = workbook.add_worksheet();
    let (name, titles) = match lang {
        Lang::Vi => (
            "Hướng dẫn",
            [
                "Cột",
                "Tên trong hệ thống",
                "Kiểu",
                "Bắt buộc",
                "Ý nghĩa",
                "Giá trị cho phép",
            ],
        ),
        Lang::En => (
            "Guide",
            [
                "Column",
                "Name in the warehouse",
                "Type",
                "Required",
                "Meaning",
                "Allowed values",
            ],
        ),
    };
    guide.set_name(name).map_err(xlsx)?;
    for (col, title) in titles.iter().enumerate() {
        guide
            .write_string_with_format(0, col as u16, *title, &bold)
            .map_err(xlsx)?;
    }
    for (row, spec) in columns_of(schema, year).enumerate() {
        let row = row as u32 + 1;
        let cells = [
            spec.header(lang).to_string(),
            spec.name.clone(),
            type_label(spec, lang).to_string(),
            required_label(spec, year, lang),
            match lang {
                Lang::Vi => spec.description_vi.clone(),
                Lang::En => spec.description_en.clone(),
            },
            allowed_values(spec, lang),
        ];
        for (col, cell) in cells.iter().enumerate() {
            guide.write_string(row, col as u16, cell).map_err(xlsx)?;
        }
    }
    for (col, width) in [30.0, 28.0, 22.0, 10.0, 60.0, 50.0].into_iter().enumerate() {
        guide.set_column_width(col as u16, width).map_err(xlsx)?;
    }
    workbook.save(path).map_err(xlsx)?;
    Ok(())
}

fn type_label(spec: &ColumnSpec, lang: Lang) -> &'static str {
    match (spec.column_type, lang) {
        (ColumnType::Text, Lang::Vi) => "Chữ",
        (ColumnType::Text, Lang::En) => "Text",
        (ColumnType::Category, Lang::Vi) => "Danh mục",
        (ColumnType::Category, Lang::En) => "One of a list",
        (ColumnType::Count, Lang::Vi) => "Số nguyên ≥ 0",
        (ColumnType::Count, Lang::En) => "Whole number ≥ 0",
        (ColumnType::Flag, Lang::Vi) => "Có/Không",
        (ColumnType::Flag, Lang::En) => "Yes/No",
        (ColumnType::SchoolYear, Lang::Vi) => "Năm học (2024-2025)",
        (ColumnType::SchoolYear, Lang::En) => "School year (2024-2025)",
        (ColumnType::ProvinceCode, Lang::Vi) => "Mã tỉnh (2 chữ số)",
        (ColumnType::ProvinceCode, Lang::En) => "Province code (2 digits)",
        (ColumnType::PersonId, Lang::Vi) => "Mã định danh (12 chữ số, định dạng Văn bản)",
        (ColumnType::PersonId, Lang::En) => "Identifier (12 digits, formatted as Text)",
    }
}

/// Whether the column is required in reports of `year`; without a year, from when.
fn required_label(spec: &ColumnSpec, year: Option<SchoolYear>, lang: Lang) -> String {
    let required = match year {
        Some(year) => spec.required_in(year),
        None => spec.required,
    };
    let label = match (required, lang) {
        (true, Lang::Vi) => "Có",
        (false, Lang::Vi) => "Không",
        (true, Lang::En) => "Yes",
        (false, Lang::En) => "No",
    };
    match (required, year, spec.from) {
        (true, None, Some(from)) => format!("{label}, {} {from}", lang.pick("từ năm học", "from")),
        _ => label.to_string(),
    }
}

fn allowed_values(spec: &ColumnSpec, lang: Lang) -> String {
    let values: Vec<String> = spec
        .values
        .iter()
        .map(|v| match (lang, v.aliases.first()) {
            (Lang::Vi, Some(alias)) => alias.clone(),
            _ => v.value.clone(),
        })
        .collect();
    let mut text = values.join(", ");
    if let (Some(min), Some(max)) = (spec.min, spec.max) {
        text = format!("{min}–{max}");
    }
    if let Some(max) = spec.max_chars {
        text = format!(
            "{} {max} {}",
            lang.pick("tối đa", "at most"),
            lang.pick("ký tự", "characters")
        );
    }
    text
}

#[cfg(all(test, feature = "reader"))]
mod tests {
    use super::*;
    use crate::ReportKind;
    use crate::read::{ReadOptions, read_sheet};

    #[test]
    fn csv_template_headers_map_back_to_every_column() {
        for lang in [Lang::Vi, Lang::En] {
            let schema = ReportKind::School.schema();
            let mut out = Vec::new();
            write_csv_template(schema, lang, None, &mut out).expect("write");
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.csv");
            std::fs::write(&path, format!("{}1\n", String::from_utf8(out).expect("utf-8"))).expect("write file");
            let sheet = read_sheet(&path, &ReadOptions::default()).expect("read back");
            let mapped: Vec<&str> = sheet
                .headers
                .iter()
                .map(|h| schema.column_for_header(h).map_or("?", |c| c.name.as_str()))
                .collect();
            let expected: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(mapped, expected, "{lang:?}");
        }
    }

    #[test]
    fn xlsx_template_has_a_guide_sheet() {
        use calamine::{Reader, open_workbook_auto};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.xlsx");
        write_xlsx_template(ReportKind::University.schema(), Lang::Vi, None, &path).expect("write");
        let mut workbook = open_workbook_auto(&path).expect("open");
        assert_eq!(
            workbook.sheet_names(),
            vec!["Số liệu".to_string(), "Hướng dẫn".to_string()]
        );
        let guide = workbook.worksheet_range("Hướng dẫn").expect("guide sheet");
        assert_eq!(guide.get_size().0, ReportKind::University.schema().columns.len() + 1);
    }
}
