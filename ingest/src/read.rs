//! Reading a file as a province sends it into a table of text cells (a polars `DataFrame` of
//! string columns), whatever its encoding, separator or format.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use polars::prelude::*;

use crate::problem::{Problem, Rule};

/// A sheet of text cells: the header row as the user typed it, and the data rows below it.
#[derive(Debug)]
pub struct RawSheet {
    /// Header cells, in file order.
    pub headers: Vec<String>,
    /// The row number of the header row as the user sees it (1 unless the sheet starts lower).
    pub header_row: usize,
    /// One string column per header (same order); row `i` is row `header_row + 1 + i`.
    pub cells: DataFrame,
}

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
    let is_workbook = head.starts_with(b"PK\x03\x04")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"));
    if is_workbook {
        read_workbook(path, options)
    } else {
        read_csv(path, head)
    }
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
            check_utf8(path)?;
            let sample = first_line(&mut File::open(path).map_err(unreadable)?).map_err(unreadable)?;
            let separator = detect_separator(&sample).ok_or_else(empty_file)?;
            // polars maps the file; it is never read into memory as a whole.
            let file = File::open(path).map_err(unreadable)?;
            parse_csv(file, separator)
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
            let separator = detect_separator(text.lines().next().unwrap_or("")).ok_or_else(empty_file)?;
            parse_csv(Cursor::new(text.into_bytes()), separator)
        }
    }
}

fn empty_file() -> Problem {
    Problem::file(Rule::EmptyFile, String::new())
}

/// Streams the file through a UTF-8 check, so a legacy-encoded file (Windows-1258, TCVN3) is
/// reported as such instead of as garbled cells.
fn check_utf8(path: &Path) -> Result<(), Problem> {
    let mut file = File::open(path).map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carried = 0;
    let mut offset = 0usize;
    loop {
        let n = file
            .read(&mut buf[carried..])
            .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
        let filled = carried + n;
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carried = 0,
            Err(e) if e.error_len().is_none() && n > 0 => {
                // A character cut at the end of the buffer: carry its bytes over.
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                offset += valid;
                carried = filled - valid;
                continue;
            }
            Err(e) => {
                return Err(Problem::file(
                    Rule::Encoding,
                    format!("byte {}", offset + e.valid_up_to()),
                ));
            }
        }
        if n == 0 {
            return Ok(());
        }
        offset += filled;
    }
}

fn first_line(file: &mut File) -> std::io::Result<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = read_up_to(file, &mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text
        .trim_start_matches('\u{feff}')
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string())
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

fn parse_csv<R: polars::io::mmap::MmapBytesReader>(reader: R, separator: u8) -> Result<RawSheet, Problem> {
    let frame = CsvReadOptions::default()
        .with_has_header(false)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(false)
        .map_parse_options(|o| {
            o.with_separator(separator)
                .with_truncate_ragged_lines(true)
                .with_missing_is_null(true)
        })
        .into_reader_with_file_handle(reader)
        .finish()
        .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    split_header(frame, 1)
}

/// Takes the first row off a frame of text cells as the header row.
fn split_header(frame: DataFrame, header_row: usize) -> Result<RawSheet, Problem> {
    if frame.height() == 0 || frame.width() == 0 {
        return Err(empty_file());
    }
    let mut headers = Vec::with_capacity(frame.width());
    for column in frame.columns() {
        let text = column
            .str()
            .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?
            .get(0)
            .unwrap_or("");
        headers.push(
            text.trim_start_matches('\u{feff}')
                .trim()
                .trim_matches('"')
                .trim()
                .to_string(),
        );
    }
    let cells = frame.slice(1, frame.height() - 1);
    Ok(RawSheet {
        headers,
        header_row,
        cells,
    })
}

fn read_workbook(path: &Path, options: &ReadOptions) -> Result<RawSheet, Problem> {
    use calamine::{Data, Reader, open_workbook_auto};

    let mut workbook = open_workbook_auto(path).map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    let names = workbook.sheet_names();
    let sheet = match &options.sheet {
        Some(wanted) => names
            .iter()
            .find(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
            .cloned()
            .ok_or_else(|| Problem::file(Rule::MissingSheet, format!("{wanted:?}; the workbook has {names:?}")))?,
        None => names.first().cloned().ok_or_else(empty_file)?,
    };
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    let (height, width) = range.get_size();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(height); width];
    for row in range.rows() {
        for (cell, column) in row.iter().zip(columns.iter_mut()) {
            let text = match cell {
                Data::Empty => None,
                Data::String(s) => Some(s.clone()),
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{}", *f as i64)),
                Data::Float(f) => Some(f.to_string()),
                Data::Int(i) => Some(i.to_string()),
                Data::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.to_string()),
                Data::Error(e) => Some(format!("#{e:?}")),
                other => Some(other.to_string()),
            };
            column.push(text);
        }
    }
    // The sheet's leading empty rows are not part of the range: keep Excel's row numbers.
    let header_row = range.start().map_or(1, |(row, _)| row as usize + 1);
    let series: Vec<Column> = columns
        .into_iter()
        .enumerate()
        .map(|(i, values)| Column::new(format!("column_{}", i + 1).into(), values))
        .collect();
    let frame = DataFrame::new_infer_height(series).map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
    split_header(frame, header_row)
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
}
