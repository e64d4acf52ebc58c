//! A sheet's text cells, held as one text and where each cell lies in it, and the splitting of
//! CSV text into them.
//!
//! CSV text is split at separators and line breaks outside quotes, every `"` opening or closing
//! a quoted stretch, eight bytes at a time. A cell that starts with `"` is quoted: the quotes
//! around it are dropped and a doubled `""` inside is one `"`. A row with fewer cells than the
//! header is missing the rest; cells past the header's width are dropped. A cell with nothing in
//! it is missing. The split also measures the rows, so that a file not of a report's shape is
//! refused as soon as it is seen: no row wider than [`MAX_COLUMNS`], no cell longer than
//! [`MAX_CELL_BYTES`], not more than [`MAX_BLANK_ROWS`] blank rows in a file mostly blank.
//!
//! A row keeps the cells up to its last one that is not missing, so that what the cells take
//! grows with the text, never with the header's width: a row of one cell, or a blank one, takes
//! the same whether the header has two columns or two hundred (at most about nine bytes for
//! each byte of text, for any content).

use crate::problem::Problem;

/// Columns a file may have (a report's template has about 25).
pub const MAX_COLUMNS: usize = 256;

/// The longest cell of a CSV file, in bytes (a report's cells are names, codes and numbers).
pub const MAX_CELL_BYTES: usize = 4096;

/// Where a cell lies in [`Cells::text`]; a missing cell starts at [`MISSING`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

/// The start of a missing cell.
const MISSING: u32 = u32::MAX;

const NO_CELL: Span = Span { start: MISSING, end: 0 };

/// Blank rows a file may have when they are most of its rows: more than an Excel sheet holds, so
/// that a sheet saved from Excel with every row below its data is still read.
pub const MAX_BLANK_ROWS: usize = 1_048_576;

/// The text cells of a sheet's rows, under a header.
#[derive(Debug, Default)]
pub struct Cells {
    /// The cells' text (with the rest of the rows it was split from).
    text: String,
    /// Each row's cells up to its last one that is not missing, row after row.
    spans: Vec<Span>,
    /// Where each row's cells end in `spans` (a row starts where the one before ended).
    row_ends: Vec<u32>,
    width: usize,
}

impl Cells {
    /// Cells given by column (a shorter column is missing its last cells); at most 4 GB of text
    /// in all.
    pub fn from_columns(columns: &[Vec<Option<String>>]) -> Result<Cells, Problem> {
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        let width = columns.len();
        let mut cells = Cells {
            text: String::new(),
            spans: Vec::new(),
            row_ends: Vec::with_capacity(rows),
            width,
        };
        let mut row_spans = Vec::with_capacity(width);
        for row in 0..rows {
            row_spans.clear();
            for values in columns {
                row_spans.push(match values.get(row) {
                    Some(Some(value)) => cells.push_text(value)?,
                    _ => NO_CELL,
                });
            }
            cells.push_row(&mut row_spans)?;
        }
        Ok(cells)
    }

    /// Splits CSV text whose first row is row `first_row` of its file. When `whole`, the text
    /// ends the file; otherwise it ends with a line break, and a last row cut inside quotes is
    /// left for the next piece ([`SplitCsv::rest`]).
    pub fn split_csv(text: String, separator: u8, first_row: usize, whole: bool) -> Result<SplitCsv, Problem> {
        let end = u32::try_from(text.len())
            .ok()
            .filter(|&end| end < MISSING)
            .ok_or_else(|| {
                Problem::bounds(
                    None,
                    "Tệp CSV lớn hơn 4 GB; hãy gửi theo từng tỉnh và năm học.".into(),
                    "The CSV file is larger than 4 GB; send one file per province and school year.".into(),
                )
            })?;
        let mut split = Split {
            text: &text,
            separator,
            cells: Vec::with_capacity(text.len() / 4),
            row_ends: Vec::new(),
            blank_rows: 0,
            width: 0,
            headers: None,
            header: 0..0,
            row: Vec::new(),
            unquoted: String::new(),
            end,
            first_row,
            rows: 0,
            rows_above: 0,
            cell_start: 0,
            row_start: 0,
            quoted: false,
            has_quote: false,
        };
        split.scan()?;
        let bytes = text.as_bytes();
        let rest = match whole {
            true => {
                if split.cell_start < bytes.len() || split.quoted {
                    // The last row has no line break.
                    split.cell(split.cell_start, bytes.len())?;
                    split.cell_start = bytes.len();
                    split.end_row()?;
                }
                Vec::new()
            }
            false => {
                // A cell cut here is only measured: it goes on in the next piece.
                split.check_length(bytes.len() - split.cell_start)?;
                bytes[split.row_start..].to_vec()
            }
        };
        let Split {
            cells: spans,
            row_ends,
            width,
            headers,
            header,
            unquoted,
            rows,
            rows_above,
            ..
        } = split;
        let mut text = text;
        text.push_str(&unquoted);
        if u32::try_from(text.len()).is_err() {
            return Err(Problem::bounds(
                None,
                "Tệp CSV quá lớn.".into(),
                "The CSV file is too large.".into(),
            ));
        }
        Ok(SplitCsv {
            headers,
            header,
            rows,
            rows_above,
            cells: Cells {
                text,
                spans,
                row_ends,
                width,
            },
            rest,
        })
    }

    /// Adds a row of cells, those past its last one that is not missing left out.
    fn push_row(&mut self, row: &mut Vec<Span>) -> Result<(), Problem> {
        while row.last().is_some_and(|span| span.start == MISSING) {
            row.pop();
        }
        self.spans.extend_from_slice(row);
        let end = u32::try_from(self.spans.len()).map_err(|_| {
            Problem::bounds(
                None,
                "Bảng tính có hơn 4 tỉ ô.".into(),
                "The sheet holds more than 4 billion cells.".into(),
            )
        })?;
        self.row_ends.push(end);
        Ok(())
    }

    /// Adds `value` at the end of the text, and where it lies.
    fn push_text(&mut self, value: &str) -> Result<Span, Problem> {
        let start = self.text.len();
        self.text.push_str(value);
        match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(start), Ok(end)) if end < MISSING => Ok(Span { start, end }),
            _ => Err(Problem::bounds(
                None,
                "Bảng tính có hơn 4 GB chữ.".into(),
                "The sheet holds more than 4 GB of text.".into(),
            )),
        }
    }

    /// The bytes of `range` of the text the cells were split from.
    pub(crate) fn text_of(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        self.text.as_bytes()[range].to_vec()
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.row_ends.len()
    }

    /// How many cells a row has.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The cells of column `column` (counted from 0), which is less than [`Cells::width`].
    pub fn column(&self, column: usize) -> CellColumn<'_> {
        CellColumn { cells: self, column }
    }

    fn get(&self, row: usize, column: usize) -> Option<&str> {
        let start = row.checked_sub(1).map_or(0, |before| self.row_ends[before] as usize);
        let span = *self.spans[start..self.row_ends[row] as usize].get(column)?;
        match span.start {
            MISSING => None,
            start => Some(&self.text[start as usize..span.end as usize]),
        }
    }
}

/// One column of [`Cells`].
#[derive(Debug, Clone, Copy)]
pub struct CellColumn<'c> {
    cells: &'c Cells,
    column: usize,
}

impl<'c> CellColumn<'c> {
    /// The cell of row `row` (counted from 0 below the header), if it has one.
    pub fn get(&self, row: usize) -> Option<&'c str> {
        self.cells.get(row, self.column)
    }

    /// Whether no row has a cell but spaces.
    pub fn is_blank(&self) -> bool {
        (0..self.cells.rows()).all(|row| self.get(row).is_none_or(|c| c.trim().is_empty()))
    }
}

/// A header cell as the user meant it: without a byte-order mark, spaces or quotes around it.
pub fn header_name(cell: &str) -> String {
    cell.trim_start_matches('\u{feff}')
        .trim()
        .trim_matches('"')
        .trim()
        .to_string()
}

/// CSV text split into cells (see [`Cells::split_csv`]).
#[derive(Debug)]
pub struct SplitCsv {
    /// The header row's cells, cleaned as [`header_name`] says; none when every row is blank.
    pub headers: Option<Vec<String>>,
    /// Where the header row lies in the text, its line break included.
    pub header: std::ops::Range<usize>,
    /// Rows of the text that are whole, the header and blank rows above it included.
    pub rows: usize,
    /// Blank rows above the header.
    pub rows_above: usize,
    /// The cells of the whole rows below the header.
    pub cells: Cells,
    /// The start of a last row cut inside quotes, for the next piece.
    pub rest: Vec<u8>,
}

/// A row of `columns` or more cells.
pub(crate) fn too_many_columns(row: usize, columns: usize) -> Problem {
    Problem::bounds(
        Some(row),
        format!(
            "Dòng {row} có {columns} cột trở lên; tối đa {MAX_COLUMNS} cột. Hãy dùng mẫu của báo cáo (khoảng 25 \
             cột) và xoá các cột thừa."
        ),
        format!(
            "Row {row} has {columns} or more columns; at most {MAX_COLUMNS}. Use the report's template (about 25 \
             columns) and delete the extra columns."
        ),
    )
}

/// A file past [`MAX_BLANK_ROWS`] blank rows, most of its rows, when reading row `row`.
fn mostly_blank(blank_rows: usize, row: usize) -> Problem {
    Problem::bounds(
        Some(row),
        format!(
            "Tệp gần như chỉ có dòng trống: đã gặp {blank_rows} dòng trống khi đọc đến dòng {row}, nhiều hơn số dòng \
             có số liệu. Hãy xoá các dòng trống (trong Excel: chọn các dòng dưới số liệu rồi Xoá) và gửi lại."
        ),
        format!(
            "The file is mostly blank rows: {blank_rows} blank rows by row {row}, more than the rows with figures. \
             Delete the blank rows (in Excel: select the rows below the figures, then Delete) and send it again."
        ),
    )
}

/// A cell longer than [`MAX_CELL_BYTES`] on row `row`.
pub(crate) fn cell_too_long(row: usize) -> Problem {
    Problem::bounds(
        Some(row),
        format!(
            "Dòng {row} có một ô dài hơn {MAX_CELL_BYTES} byte; ô của báo cáo là tên, mã hoặc số. Hãy kiểm tra tệp \
             (có thể thiếu dấu ngoặc kép đóng \")."
        ),
        format!(
            "Row {row} has a cell longer than {MAX_CELL_BYTES} bytes; a report's cells are names, codes and \
             numbers. Check the file (a closing quote \" may be missing)."
        ),
    )
}

/// Each byte of `byte` in a word.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `word` that is zero.
fn zero_bytes(word: u64) -> u64 {
    const LOW_BITS: u64 = splat(0x7f);
    !(((word & LOW_BITS).wrapping_add(LOW_BITS)) | word | LOW_BITS)
}

/// CSV text being split into [`Cells`].
struct Split<'t> {
    text: &'t str,
    separator: u8,
    /// The cells of the rows below the header, each up to its last one that is not missing.
    cells: Vec<Span>,
    /// Where each row's cells end in `cells`.
    row_ends: Vec<u32>,
    /// Rows below the header without a cell.
    blank_rows: usize,
    /// The header's width: cells past it are dropped.
    width: usize,
    /// The header row's cells, once it is split.
    headers: Option<Vec<String>>,
    header: std::ops::Range<usize>,
    /// The current row's cells.
    row: Vec<Span>,
    /// The text of quoted cells with a doubled quote, put after the text being split.
    unquoted: String,
    /// The length of the text being split.
    end: u32,
    /// The row number of the text's first row.
    first_row: usize,
    /// Rows ended so far.
    rows: usize,
    /// Blank rows above the header.
    rows_above: usize,
    /// Where the current cell and row start.
    cell_start: usize,
    row_start: usize,
    /// Whether the scan is inside quotes, and whether the current cell has a quote.
    quoted: bool,
    has_quote: bool,
}

impl Split<'_> {
    /// Goes through the text eight bytes at a time, stopping only at quotes, separators and line
    /// breaks.
    fn scan(&mut self) -> Result<(), Problem> {
        let bytes = self.text.as_bytes();
        let (quote, line_break, separator) = (splat(b'"'), splat(b'\n'), splat(self.separator));
        let mut words = bytes.chunks_exact(8);
        let mut base = 0;
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let mut found = zero_bytes(word ^ quote) | zero_bytes(word ^ line_break) | zero_bytes(word ^ separator);
            while found != 0 {
                let index = base + (found.trailing_zeros() / 8) as usize;
                self.byte(index, bytes[index])?;
                found &= found - 1;
            }
            base += 8;
        }
        for (offset, &byte) in words.remainder().iter().enumerate() {
            if byte == b'"' || byte == b'\n' || byte == self.separator {
                self.byte(base + offset, byte)?;
            }
        }
        Ok(())
    }

    /// A quote, separator or line break at `index`.
    fn byte(&mut self, index: usize, byte: u8) -> Result<(), Problem> {
        match byte {
            b'"' => {
                self.quoted = !self.quoted;
                self.has_quote = true;
            }
            _ if self.quoted => {}
            b'\n' => {
                let end = match index > self.cell_start && self.text.as_bytes()[index - 1] == b'\r' {
                    true => index - 1,
                    false => index,
                };
                self.cell(self.cell_start, end)?;
                self.cell_start = index + 1;
                self.end_row()?;
                self.row_start = index + 1;
            }
            _ => {
                self.cell(self.cell_start, index)?;
                self.cell_start = index + 1;
            }
        }
        Ok(())
    }

    /// The number of the current row in its file.
    fn row_number(&self) -> usize {
        self.first_row + self.rows
    }

    fn check_length(&self, bytes: usize) -> Result<(), Problem> {
        match bytes > MAX_CELL_BYTES {
            true => Err(cell_too_long(self.row_number())),
            false => Ok(()),
        }
    }

    /// The cell from `start` to `end` (as `u32`: [`Cells::split_csv`] bounds the text).
    fn cell(&mut self, start: usize, end: usize) -> Result<(), Problem> {
        self.check_length(end - start)?;
        if self.row.len() == MAX_COLUMNS {
            return Err(too_many_columns(self.row_number(), MAX_COLUMNS + 1));
        }
        let text = self.text;
        let span = match std::mem::take(&mut self.has_quote) && text.as_bytes()[start] == b'"' {
            false if start == end => NO_CELL,
            false => Span {
                start: start as u32,
                end: end as u32,
            },
            true => {
                let inner_end = match end > start + 1 && text.as_bytes()[end - 1] == b'"' {
                    true => end - 1,
                    false => end,
                };
                let inner = &text[start + 1..inner_end];
                match inner.contains("\"\"") {
                    false => Span {
                        start: (start + 1) as u32,
                        end: inner_end as u32,
                    },
                    true => {
                        let from = self.end + self.unquoted.len() as u32;
                        self.unquoted.push_str(&inner.replace("\"\"", "\""));
                        Span {
                            start: from,
                            end: self.end + self.unquoted.len() as u32,
                        }
                    }
                }
            }
        };
        self.row.push(span);
        Ok(())
    }

    fn end_row(&mut self) -> Result<(), Problem> {
        self.rows += 1;
        match &self.headers {
            None => {
                let headers: Vec<String> = self
                    .row
                    .iter()
                    .map(|span| match span.start {
                        MISSING => String::new(),
                        start if start >= self.end => {
                            header_name(&self.unquoted[(start - self.end) as usize..(span.end - self.end) as usize])
                        }
                        start => header_name(&self.text[start as usize..span.end as usize]),
                    })
                    .collect();
                match headers.iter().all(String::is_empty) {
                    // A blank line above the header.
                    true => self.rows_above += 1,
                    false => {
                        self.width = headers.len();
                        self.headers = Some(headers);
                        self.header = self.row_start..self.cell_start;
                    }
                }
            }
            Some(_) => {
                self.row.truncate(self.width);
                while self.row.last().is_some_and(|span| span.start == MISSING) {
                    self.row.pop();
                }
                if self.row.is_empty() {
                    self.blank_rows += 1;
                    let data_rows = self.row_ends.len() + 1 - self.blank_rows;
                    if self.blank_rows > MAX_BLANK_ROWS && self.blank_rows > data_rows {
                        return Err(mostly_blank(self.blank_rows, self.row_number()));
                    }
                }
                self.cells.extend_from_slice(&self.row);
                // The text is under 4 GB and each cell ends at a byte of its own: the count fits.
                self.row_ends.push(self.cells.len() as u32);
            }
        }
        self.row.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
        let split = Cells::split_csv(text.to_string(), b',', 1, true).expect("split");
        assert_eq!(split.rows_above, usize::from(text.starts_with('\n')));
        let (headers, cells) = (split.headers.expect("a header"), split.cells);
        let rows = (0..cells.rows())
            .map(|row| {
                (0..cells.width())
                    .map(|column| cells.column(column).get(row).map(str::to_string))
                    .collect()
            })
            .collect();
        (headers, rows)
    }

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn cells_are_split_at_separators_and_line_breaks_outside_quotes() {
        let (headers, rows) =
            rows("\n\u{feff}\"Năm học\", b ,c\r\n2024-2025,\"x, \"\"y\"\"\nz\",\r\n,,\n1,2,3,4\n5\n\"\",\"a\"\"\"");
        assert_eq!(headers, ["Năm học", "b", "c"]);
        assert_eq!(
            rows,
            [
                row(&[Some("2024-2025"), Some("x, \"y\"\nz"), None]),
                row(&[None, None, None]),
                row(&[Some("1"), Some("2"), Some("3")]),
                row(&[Some("5"), None, None]),
                row(&[Some(""), Some("a\""), None]),
            ]
        );
    }

    #[test]
    fn cells_given_by_column_read_back_by_row() {
        let columns = vec![
            vec![Some("a".to_string()), None],
            vec![Some("b".to_string()), Some("c".to_string())],
        ];
        let cells = Cells::from_columns(&columns).expect("cells");
        assert_eq!((cells.rows(), cells.width()), (2, 2));
        assert_eq!(cells.column(0).get(1), None);
        assert_eq!(cells.column(1).get(1), Some("c"));
        assert!(!cells.column(0).is_blank());
        let blank = Cells::from_columns(&[vec![None, Some("  ".to_string())]]).expect("cells");
        assert!(blank.column(0).is_blank());
    }

    #[test]
    fn what_rows_take_grows_with_their_text_not_the_header() {
        let header: String = (0..200).map(|i| format!("c{i},")).collect();
        let blank_and_tiny = format!("{header}\n{}", ",\n1\n\n".repeat(1000));
        let split = Cells::split_csv(blank_and_tiny, b',', 1, true).expect("split");
        let cells = &split.cells;
        assert_eq!((cells.rows(), cells.width()), (3000, 201));
        assert_eq!(
            cells.spans.len(),
            1000,
            "one cell kept for each row of one, none for blank rows"
        );
        assert_eq!(cells.column(0).get(1), Some("1"));
        assert_eq!(cells.column(0).get(0), None);
        assert_eq!(cells.column(200).get(1), None);
    }

    #[test]
    fn a_file_mostly_of_blank_rows_is_refused_as_it_is_read() {
        let blank = format!("a,b\n1,2\n{}", ",\n".repeat(MAX_BLANK_ROWS + 1));
        let problem = Cells::split_csv(blank, b',', 1, true).expect_err("mostly blank");
        assert_eq!(problem.rule, crate::Rule::Bounds);
        assert!(
            problem.message_en.contains("mostly blank rows"),
            "{}",
            problem.message_en
        );
        // As many blank rows below as many rows of figures are a sheet saved with its empty rows.
        let figures = "1,2\n".repeat(MAX_BLANK_ROWS + 2);
        let saved = format!("a,b\n{figures}{}", ",\n".repeat(MAX_BLANK_ROWS + 1));
        assert!(Cells::split_csv(saved, b',', 1, true).is_ok());
    }

    #[test]
    fn rows_are_measured_as_they_are_split() {
        let split = |text: String, separator: u8, whole: bool| Cells::split_csv(text, separator, 1, whole);
        let quoted = format!("a,\"{}\",c\n1,2,3\n", vec!["x,y"; 1200].join("\n"));
        let problem = split(quoted, b',', true).expect_err("a 4 KB cell, even quoted, is too long");
        assert_eq!(problem.row, Some(1));
        let commas_in_quotes = format!("a,\"{}\"\n", ",".repeat(1000));
        assert!(
            split(commas_in_quotes, b',', true).is_ok(),
            "separators in quotes are text"
        );
        let wide = format!("a\n{}\n", vec!["1"; MAX_COLUMNS + 1].join(";"));
        let problem = split(wide, b';', true).expect_err("too wide");
        assert_eq!((problem.rule, problem.row), (crate::Rule::Bounds, Some(2)));
        // A piece that ends inside quotes: the cut row is left for the next piece, but measured.
        let cut = split("a,b\n1,\"x\ny\n".to_string(), b',', false).expect("split");
        assert_eq!(
            (cut.rows, cut.cells.rows(), cut.rest.as_slice()),
            (1, 0, "1,\"x\ny\n".as_bytes())
        );
        let long = format!("a,b\n1,\"{}\n", "y".repeat(MAX_CELL_BYTES));
        assert!(split(long, b',', false).is_err(), "the cell goes on past the limit");
    }
}
