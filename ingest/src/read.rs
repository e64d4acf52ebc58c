//! Reading a file as a province sends it into a sheet of text cells ([`RawSheet`]), whatever
//! its encoding, separator or format.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::csv::{empty_file, not_utf8};
use crate::problem::{Problem, Rule};
use crate::schema::ReportKind;
use crate::sheet::{Cells, MAX_COLUMNS, MAX_SHEET_CELLS, RawSheet, header_name};

/// The longest header line of a CSV file, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most an `.xlsx` file may unpack to (all its parts together).
pub const MAX_WORKBOOK_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;

/// Where in a workbook to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The worksheet of an `.xlsx` file to read (default: the first).
    pub sheet: Option<String>,
}

/// The text encoding of a CSV file, from its byte-order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// Reads a CSV (`,` `;` or tab, UTF-8 or UTF-16) or an `.xlsx` file.
pub fn read_sheet(path: &Path, options: &ReadOptions) -> Result<RawSheet, Problem> {
    let mut head = [0u8; 4];
    let head_len = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    let head = &head[..head_len];
    let is_workbook = is_workbook(path, head);
    let sheet = if is_workbook {
        read_workbook(path, options)
    } else {
        read_csv(path, head)
    };
    match &sheet {
        Ok(sheet) => tracing::debug!(
            target: "ingest::read",
            workbook = is_workbook,
            columns = sheet.headers.len(),
            rows = sheet.cells.rows(),
            "sheet read"
        ),
        Err(problem) => {
            tracing::info!(target: "ingest::read", workbook = is_workbook, problem = %problem.message_en, "file not read")
        }
    }
    sheet
}

/// The report a file is, from its header row alone (see [`ReportKind::of_header`]): a CSV file's
/// first line that is not blank, whatever its encoding, or a workbook sheet's header.
pub fn report_kind_of(path: &Path, options: &ReadOptions) -> Result<ReportKind, Problem> {
    let headers = read_header(path, options)?;
    ReportKind::of_header(headers.iter().map(String::as_str)).map_err(|tied| {
        let names = |kinds: &[ReportKind]| kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
        let shown: Vec<&str> = headers.iter().take(8).map(String::as_str).collect();
        let (vi, en) = match tied.as_slice() {
            [] => (
                format!("không cột nào của một loại báo cáo (các cột: {})", shown.join(", ")),
                format!("it names no column of any report (its columns: {})", shown.join(", ")),
            ),
            _ => (
                format!("các cột hợp với nhiều loại như nhau: {}", names(&tied)),
                format!("its columns fit several kinds as well: {}", names(&tied)),
            ),
        };
        Problem {
            row: Some(1),
            column: None,
            value: None,
            rule: Rule::UnknownKind,
            message_vi: format!(
                "Dòng tiêu đề không cho biết tệp là báo cáo nào: {vi}. Hãy dùng mẫu của báo cáo, hoặc ghi rõ loại \
                 báo cáo (--kind)."
            ),
            message_en: format!(
                "The header row does not say which report this file is: {en}. Start from the report's template, or \
                 name the kind (--kind)."
            ),
        }
    })
}

/// A file's header cells, read from its start (a workbook's sheet is read whole, within its
/// bounds).
fn read_header(path: &Path, options: &ReadOptions) -> Result<Vec<String>, Problem> {
    let unreadable = |e: std::io::Error| Problem::file(Rule::Unreadable, e.to_string());
    let mut head = vec![0u8; 2 * (MAX_HEADER_BYTES + 1024)];
    let head_len = read_up_to(&mut File::open(path).map_err(unreadable)?, &mut head).map_err(unreadable)?;
    let head = &head[..head_len];
    if is_workbook(path, head) {
        return Ok(read_workbook(path, options)?.headers);
    }
    let line = match head {
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => {
            let decoder = match head[0] {
                0xFF => encoding_rs::UTF_16LE,
                _ => encoding_rs::UTF_16BE,
            };
            let (text, _, _) = decoder.decode(head);
            first_text_line(&text, head_len < head.len())?
        }
        _ => first_line(&mut File::open(path).map_err(unreadable)?)?,
    };
    let separator = detect_separator(&line).ok_or_else(empty_file)?;
    let header = crate::csv::header(line.as_bytes(), separator)?.ok_or_else(empty_file)?;
    Ok(header.names)
}

/// Whether a file is an `.xlsx` workbook, by its first bytes or its name.
fn is_workbook(path: &Path, head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_csv(path: &Path, head: &[u8]) -> Result<RawSheet, Problem> {
    let encoding = if head.starts_with(&[0xFF, 0xFE]) {
        Encoding::Utf16Le
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Encoding::Utf16Be
    } else {
        Encoding::Utf8
    };
    let unreadable = |e: std::io::Error| Problem::file(Rule::Unreadable, e.to_string());
    match encoding {
        Encoding::Utf8 => {
            let sample = first_line(&mut File::open(path).map_err(unreadable)?)?;
            let separator = detect_separator(&sample).ok_or_else(empty_file)?;
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(unreadable)?;
            // A legacy-encoded file (Windows-1258, TCVN3) is said to be one, not read as garbled cells.
            let text = String::from_utf8(bytes).map_err(|e| not_utf8(e.utf8_error().valid_up_to()))?;
            parse_csv(text, separator)
        }
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(unreadable)?;
            let decoder = if encoding == Encoding::Utf16Le {
                encoding_rs::UTF_16LE
            } else {
                encoding_rs::UTF_16BE
            };
            // The UTF-16 bytes are dropped as soon as they are decoded: one copy at a time.
            let (text, _, had_errors) = decoder.decode(&bytes);
            if had_errors {
                return Err(Problem::file(Rule::Encoding, "invalid UTF-16".to_string()));
            }
            let text = text.into_owned();
            drop(bytes);
            let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if header.len() > MAX_HEADER_BYTES {
                return Err(header_too_long());
            }
            let separator = detect_separator(header).ok_or_else(empty_file)?;
            parse_csv(text, separator)
        }
    }
}

/// The first non-blank line, read from at most [`MAX_HEADER_BYTES`] (and a little room for
/// blank lines above it); refused when it does not end there.
fn first_line(file: &mut File) -> Result<String, Problem> {
    let mut buf = vec![0u8; MAX_HEADER_BYTES + 1024];
    let n = read_up_to(file, &mut buf).map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    first_text_line(&String::from_utf8_lossy(&buf[..n]), n < buf.len())
}

/// The first non-blank line of the start of a file's text (`whole`: all of it), refused when
/// it does not end there or is longer than [`MAX_HEADER_BYTES`]; empty when there is none.
fn first_text_line(text: &str, whole: bool) -> Result<String, Problem> {
    let text = text.trim_start_matches('\u{feff}');
    let ended = text.contains('\n') || whole;
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !ended || line.len() > MAX_HEADER_BYTES {
        return Err(header_too_long());
    }
    Ok(line.to_string())
}

fn header_too_long() -> Problem {
    Problem::bounds(
        Some(1),
        format!(
            "Dòng tiêu đề dài hơn {} KB: tệp không phải một báo cáo theo mẫu. Hãy dùng mẫu của báo cáo.",
            MAX_HEADER_BYTES / 1024
        ),
        format!(
            "The header row is longer than {} KB: the file is not a report in the template's shape. Start from \
             the report's template.",
            MAX_HEADER_BYTES / 1024
        ),
    )
}

/// The separator of a header line: whichever of `,` `;` tab occurs most outside quotes.
fn detect_separator(header_line: &str) -> Option<u8> {
    if header_line.trim().is_empty() {
        return None;
    }
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for byte in header_line.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            _ if quoted => {}
            _ => {
                if let Some(entry) = counts.iter_mut().find(|(sep, _)| *sep == byte) {
                    entry.1 += 1;
                }
            }
        }
    }
    let (separator, _) = counts.iter().max_by_key(|(sep, count)| (*count, *sep == b','))?;
    Some(*separator)
}

/// The separator of a UTF-8 CSV file (its bytes and shape are checked block by block as it is
/// read: see [`crate::stream`]); none for a workbook or a UTF-16 file, which are read whole.
pub(crate) fn utf8_csv_separator(path: &Path) -> Result<Option<u8>, Problem> {
    let unreadable = |e: std::io::Error| Problem::file(Rule::Unreadable, e.to_string());
    let mut head = [0u8; 4];
    let head_len = read_up_to(&mut File::open(path).map_err(unreadable)?, &mut head).map_err(unreadable)?;
    let head = &head[..head_len];
    if is_workbook(path, head) || head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Ok(None);
    }
    let sample = first_line(&mut File::open(path).map_err(unreadable)?)?;
    Ok(Some(detect_separator(&sample).ok_or_else(empty_file)?))
}

/// CSV text as a sheet: its first row that is not blank is the header.
fn parse_csv(text: String, separator: u8) -> Result<RawSheet, Problem> {
    crate::csv::whole(text.as_bytes(), separator, crate::csv::PIECE_BYTES)
}

/// Checks what an `.xlsx` file unpacks to, part by part, by unpacking it into nothing: the
/// sizes its directory declares may lie, so they are counted as the bytes come out, and the
/// file is refused as soon as the sum passes [`MAX_WORKBOOK_UNPACKED_BYTES`].
fn check_unpacked_size(path: &Path) -> Result<(), Problem> {
    let unreadable = |e: &dyn std::fmt::Display| Problem::file(Rule::Unreadable, e.to_string());
    let file = File::open(path).map_err(|e| unreadable(&e))?;
    let mut archive = ::zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| unreadable(&e))?;
    let mut total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| unreadable(&e))?;
        let room = MAX_WORKBOOK_UNPACKED_BYTES - total;
        total += std::io::copy(&mut entry.take(room + 1), &mut std::io::sink()).map_err(|e| unreadable(&e))?;
        if total > MAX_WORKBOOK_UNPACKED_BYTES {
            let mb = MAX_WORKBOOK_UNPACKED_BYTES / (1024 * 1024);
            return Err(Problem::bounds(
                None,
                format!(
                    "Tệp Excel khi giải nén lớn hơn {mb} MB, quá lớn so với một báo cáo. Hãy lưu lại chỉ trang số \
                     liệu, hoặc gửi dạng CSV."
                ),
                format!(
                    "The workbook unpacks to more than {mb} MB, out of proportion for a report. Save only the data \
                     sheet again, or send CSV."
                ),
            ));
        }
    }
    Ok(())
}

/// A worksheet's area past [`MAX_COLUMNS`] or [`MAX_SHEET_CELLS`]: `rows` × `columns` from its
/// first cell to its last.
fn sheet_too_large(rows: u64, columns: u64) -> Problem {
    Problem::bounds(
        None,
        format!(
            "Trang tính trải trên {rows} dòng × {columns} cột; tối đa {MAX_COLUMNS} cột và {MAX_SHEET_CELLS} ô. \
             Hãy xoá các ô ở xa vùng số liệu (Ctrl+End cho biết ô cuối cùng) rồi lưu lại."
        ),
        format!(
            "The worksheet spans {rows} rows × {columns} columns; at most {MAX_COLUMNS} columns and \
             {MAX_SHEET_CELLS} cells. Delete the cells far from the data (Ctrl+End shows the last one) and save again."
        ),
    )
}

fn read_workbook(path: &Path, options: &ReadOptions) -> Result<RawSheet, Problem> {
    use calamine::{DataRef, Reader, Xlsx, open_workbook};

    check_unpacked_size(path)?;
    let unreadable = |e: calamine::XlsxError| Problem::file(Rule::Unreadable, e.to_string());
    let mut workbook: Xlsx<_> = open_workbook(path).map_err(unreadable)?;
    let names = workbook.sheet_names();
    let sheet = match &options.sheet {
        Some(wanted) => names
            .iter()
            .find(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
            .cloned()
            .ok_or_else(|| Problem::file(Rule::MissingSheet, format!("{wanted:?}; the workbook has {names:?}")))?,
        None => names.first().cloned().ok_or_else(empty_file)?,
    };
    let mut cells = workbook.worksheet_cells_reader(&sheet).map_err(unreadable)?;
    // What the sheet says of itself first; then every cell as it comes, since the declaration
    // may be missing or wrong.
    let declared = cells.dimensions();
    let (declared_rows, declared_columns) = (
        u64::from(declared.end.0.saturating_sub(declared.start.0)) + 1,
        u64::from(declared.end.1.saturating_sub(declared.start.1)) + 1,
    );
    if declared_columns > MAX_COLUMNS as u64 || declared_rows * declared_columns > MAX_SHEET_CELLS {
        return Err(sheet_too_large(declared_rows, declared_columns));
    }
    let mut found: Vec<((u32, u32), String)> = Vec::new();
    let (mut first, mut last) = ((u32::MAX, u32::MAX), (0u32, 0u32));
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (row, column) = cell.get_position();
        let text = match cell.get_value() {
            DataRef::Empty => continue,
            DataRef::String(s) => s.clone(),
            DataRef::SharedString(s) => s.to_string(),
            DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            DataRef::Float(f) => f.to_string(),
            DataRef::Int(i) => i.to_string(),
            DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            DataRef::Error(e) => format!("#{e:?}"),
            DataRef::DateTime(d) => d.to_string(),
            DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        };
        first = (first.0.min(row), first.1.min(column));
        last = (last.0.max(row), last.1.max(column));
        let (rows, columns) = (u64::from(last.0 - first.0) + 1, u64::from(last.1 - first.1) + 1);
        if columns > MAX_COLUMNS as u64 || rows * columns > MAX_SHEET_CELLS {
            return Err(sheet_too_large(rows, columns));
        }
        found.push(((row, column), text));
    }
    if found.is_empty() {
        return Err(empty_file());
    }
    let height = (last.0 - first.0) as usize + 1;
    let width = (last.1 - first.1) as usize + 1;
    let mut columns: Vec<Vec<Option<String>>> = vec![vec![None; height]; width];
    for ((row, column), text) in found {
        columns[(column - first.1) as usize][(row - first.0) as usize] = Some(text);
    }
    // The sheet's leading empty rows are not part of the area: keep Excel's row numbers.
    let header_row = first.0 as usize + 1;
    let headers = columns
        .iter_mut()
        .map(|cells| header_name(cells.remove(0).as_deref().unwrap_or("")))
        .collect();
    Ok(RawSheet {
        headers,
        header_row,
        cells: Cells::from_columns(&columns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_the_most_frequent_outside_quotes() {
        assert_eq!(detect_separator("a,b,c"), Some(b','));
        assert_eq!(detect_separator("a;b;c"), Some(b';'));
        assert_eq!(detect_separator("a\tb\tc"), Some(b'\t'));
        assert_eq!(detect_separator("\"x;y;z\",b,c"), Some(b','));
        assert_eq!(detect_separator("Năm học;Tên trường, cơ sở;Mã"), Some(b';'));
        assert_eq!(detect_separator("  "), None);
    }

    /// Every kind's template, in both languages, as UTF-8 and UTF-16 CSV and as a workbook.
    #[test]
    fn each_template_is_known_as_its_kind_whatever_its_language_encoding_or_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        for kind in ReportKind::ALL {
            for lang in [crate::Lang::Vi, crate::Lang::En] {
                let mut utf8 = Vec::new();
                crate::template::write_csv_template(kind.schema(), lang, None, &mut utf8).expect("template");
                let text = String::from_utf8(utf8.clone()).expect("utf-8");
                let utf16: Vec<u8> = [0xFF, 0xFE]
                    .into_iter()
                    .chain(
                        text.trim_start_matches('\u{feff}')
                            .encode_utf16()
                            .flat_map(u16::to_le_bytes),
                    )
                    .collect();
                let name = format!("{kind}-{}", lang.code());
                let files = [
                    (dir.path().join(format!("{name}.csv")), utf8),
                    (dir.path().join(format!("{name}-16.csv")), utf16),
                ];
                for (path, bytes) in &files {
                    std::fs::write(path, bytes).expect("write");
                }
                let workbook = dir.path().join(format!("{name}.xlsx"));
                crate::template::write_xlsx_template(kind.schema(), lang, None, &workbook).expect("workbook");
                for path in files.iter().map(|(path, _)| path).chain([&workbook]) {
                    let found = report_kind_of(path, &ReadOptions::default());
                    assert_eq!(found, Ok(kind), "{}", path.display());
                }
            }
        }
    }

    #[test]
    fn a_header_of_no_report_or_of_several_alike_is_refused_with_what_it_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (
                "none.csv",
                "STT,Ghi chú,x\n1,2,3\n",
                "names no column of any report (its columns: STT, Ghi chú, x)",
            ),
            (
                "tied.csv",
                "school_year;province_code\n2024-2025;01\n",
                "fit several kinds as well: school, university, learner, teacher",
            ),
        ];
        for (name, text, said) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let problem = report_kind_of(&path, &ReadOptions::default()).expect_err(name);
            assert_eq!((problem.rule, problem.row), (Rule::UnknownKind, Some(1)), "{name}");
            assert!(problem.message_en.contains(said), "{name}: {}", problem.message_en);
            assert!(problem.message_vi.contains("--kind"), "{name}: {}", problem.message_vi);
        }
        // More of one kind's columns than of any other's is enough, whatever else is there.
        let path = dir.path().join("learners.csv");
        std::fs::write(&path, "Ghi chú,school_year,province_code,school_id,learner_id,grade\n").expect("write");
        assert_eq!(report_kind_of(&path, &ReadOptions::default()), Ok(ReportKind::Learner));
    }
}
