//! CSV text split into [`Cells`] by polars' CSV reader, on every core, a piece at a time.
//!
//! A file is read in pieces that end where a row ends ([`row_ends`]: a line break outside
//! quotes, each `"` opening or closing a quoted stretch, as polars finds them). Each piece is
//! handed to polars with the header's width as its schema, every column text, and polars' string
//! columns come to arrow through the C data interface, without a copy. A cell with nothing in it
//! is missing; a cell that starts with `"` is quoted, its `""` one `"`; `\r\n` ends a row as
//! `\n` does; a row past the header's width loses its extra cells. A piece polars cannot split
//! (a quote left open, or one inside a cell that does not start with one) is said to be so at
//! the row where it goes wrong, found by splitting ever shorter runs of its rows.

use std::io::{Cursor, Read};
use std::sync::Arc;

use arrow::array::StringViewArray;
use polars::io::csv::read::_csv_read_internal::CountLines;
use polars::prelude::{CsvReadOptions, DataFrame, DataType, Field, PolarsResult, Schema, SerReader};

use crate::problem::{Problem, Rule};
use crate::sheet::{
    Cells, MAX_BLANK_ROWS, MAX_COLUMNS, MAX_SHEET_CELLS, RawSheet, cell_too_long, header_name, mostly_blank,
    too_many_columns,
};

/// About how many bytes of a CSV file make one piece: enough that a piece's fixed costs are
/// small, few enough that its buffers are reused by the allocator rather than asked of the
/// system each time (a batch of 63 files peaked at 0.6 GB with 4 MB pieces, 0.85 GB with 16 MB).
pub const PIECE_BYTES: usize = 4 * 1024 * 1024;

/// Rows a piece holds at most, by its width: about a million cells (16 MB of them), so that a
/// piece of short rows (a file of blank rows) takes no more than one of long ones.
const PIECE_CELLS: usize = 1 << 20;

/// Cells a piece may hold for each byte of its text: what splitting it costs grows with the
/// text, never with the header's width. Never reached under a header of 4 columns or fewer; a
/// school report's rows (25 columns) would have to be mostly bare line breaks.
const CELLS_PER_BYTE: usize = 4;

/// A CSV file cut into sheets of about `piece_bytes` each, at row ends, each with the file's
/// header and its rows numbered as in the file, each checked to be UTF-8 and held to the
/// bounds of [`crate::sheet`] as it is read.
pub(crate) struct Pieces<R> {
    reader: R,
    separator: u8,
    /// About how many bytes make a piece.
    piece_bytes: usize,
    /// The header's cells and row, once they are found.
    header: Option<(Vec<String>, usize)>,
    /// The start of a row that did not fit in the last piece.
    carry: Vec<u8>,
    /// Rows read so far, the header and blank rows above it included.
    rows: usize,
    /// Blank rows below the header so far.
    blank_rows: usize,
    /// Bytes of the file before the carried-over row.
    offset: usize,
    /// Pieces given so far.
    given: usize,
    done: bool,
}

impl<R: Read> Pieces<R> {
    pub(crate) fn new(reader: R, separator: u8, piece_bytes: usize) -> Self {
        Self {
            reader,
            separator,
            piece_bytes,
            header: None,
            carry: Vec::new(),
            rows: 0,
            blank_rows: 0,
            offset: 0,
            given: 0,
            done: false,
        }
    }

    /// The next piece, or the file's first problem.
    fn piece(&mut self) -> Result<Option<RawSheet>, Problem> {
        let wanted = self.piece_bytes.saturating_sub(self.carry.len()).max(1024);
        let mut data = std::mem::take(&mut self.carry);
        data.reserve(wanted);
        let read = (&mut self.reader)
            .take(wanted as u64)
            .read_to_end(&mut data)
            .map_err(|e| Problem::file(Rule::Unreadable, e.to_string()))?;
        let eof = read < wanted;
        let start = match &self.header {
            Some(_) => 0,
            None => {
                // The text up to its last line break is whole characters.
                let whole = match eof {
                    true => data.len(),
                    false => memchr::memrchr(b'\n', &data).map_or(data.len(), |at| at + 1),
                };
                std::str::from_utf8(&data[..whole]).map_err(|e| not_utf8(e.valid_up_to()))?;
                let Some(header) = header(&data[..whole], self.separator)? else {
                    return Err(empty_file());
                };
                self.rows += header.rows_above + 1;
                self.header = Some((header.names, self.rows));
                header.end
            }
        };
        let Some((headers, header_row)) = self.header.clone() else {
            return Err(empty_file());
        };
        let width = headers.len();
        let body = &data[start..];
        // At most a piece's rows: up to that many line breaks, whatever is quoted.
        let most = (PIECE_CELLS / width).max(1);
        let end = match (memchr::memchr_iter(b'\n', body).nth(most), eof) {
            (None, true) => body.len(),
            (limit, _) => match row_ends(&body[..limit.map_or(body.len(), |at| at + 1)]) {
                (_, Some(end)) => end,
                (_, None) => return Err(self.row_too_long(body, width)),
            },
        };
        let piece = &body[..end];
        std::str::from_utf8(piece).map_err(|e| not_utf8(self.offset + start + e.valid_up_to()))?;
        let first_row = self.rows + 1;
        let lines = memchr::memchr_iter(b'\n', piece).count();
        if lines * width > CELLS_PER_BYTE * piece.len() + width {
            return Err(rows_too_short(first_row, lines, piece.len(), width));
        }
        let cells = cells(piece, self.separator, width, first_row)?;
        self.rows += cells.rows();
        self.blank_rows += cells.blank_rows();
        if self.blank_rows > MAX_BLANK_ROWS && 2 * self.blank_rows > self.rows - header_row {
            return Err(mostly_blank(self.blank_rows, self.rows));
        }
        self.offset += start + end;
        self.carry = data.split_off(start + end);
        self.done = eof && self.carry.is_empty();
        if eof && cells.rows() == 0 && self.given > 0 {
            // Nothing after the last piece.
            return Ok(None);
        }
        self.given += 1;
        Ok(Some(RawSheet {
            headers,
            header_row: first_row - 1,
            cells,
        }))
    }

    /// Why `text`, a whole piece's worth of text under a header of `width` columns, holds no
    /// row's end: a cell too long, a quote left open, or else a row longer than a piece.
    fn row_too_long(&self, text: &[u8], width: usize) -> Problem {
        let row = self.rows + 1;
        match cells(text, self.separator, width, row) {
            Err(problem) => problem,
            Ok(_) => Problem::bounds(
                Some(row),
                format!("Dòng {row} dài hơn {} MB.", self.piece_bytes >> 20),
                format!("Row {row} is longer than {} MB.", self.piece_bytes >> 20),
            ),
        }
    }
}

impl<R: Read> Iterator for Pieces<R> {
    type Item = Result<RawSheet, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let piece = self.piece();
        self.done |= piece.is_err();
        piece.transpose()
    }
}

/// CSV text as one sheet of at most [`MAX_SHEET_CELLS`], read in pieces of about
/// `piece_bytes`.
pub(crate) fn whole(text: &[u8], separator: u8, piece_bytes: usize) -> Result<RawSheet, Problem> {
    let mut pieces = Pieces::new(text, separator, piece_bytes);
    let Some(first) = pieces.next().transpose()? else {
        return Err(empty_file());
    };
    let width = first.headers.len();
    let mut rows = first.cells.rows();
    let mut cells = vec![first.cells];
    loop {
        if (rows * width) as u64 > MAX_SHEET_CELLS {
            let row = first.header_row + rows;
            return Err(match 2 * pieces.blank_rows > rows {
                true => mostly_blank(pieces.blank_rows, row),
                false => too_many_cells(row, width),
            });
        }
        match pieces.next() {
            Some(piece) => {
                let piece = piece?;
                rows += piece.cells.rows();
                cells.push(piece.cells);
            }
            None => break,
        }
    }
    Ok(RawSheet {
        cells: Cells::concat(cells),
        ..first
    })
}

/// Rows from `row` on, `lines` of them in `bytes` bytes, far shorter than a header of `width`
/// columns (past [`CELLS_PER_BYTE`]).
fn rows_too_short(row: usize, lines: usize, bytes: usize, width: usize) -> Problem {
    Problem::bounds(
        Some(row),
        format!(
            "Từ dòng {row}, {lines} dòng chỉ có {bytes} byte, quá ngắn so với dòng tiêu đề {width} cột: tệp không phải \
             một báo cáo theo mẫu. Hãy xoá các dòng trống và các cột thừa, hoặc dùng mẫu của báo cáo."
        ),
        format!(
            "From row {row}, {lines} rows hold only {bytes} bytes, far shorter than the header's {width} columns: the \
             file is not a report in the template's shape. Delete the blank rows and extra columns, or start from the \
             report's template."
        ),
    )
}

/// A file read whole past [`MAX_SHEET_CELLS`] by row `row`, under a header of `width` columns.
fn too_many_cells(row: usize, width: usize) -> Problem {
    Problem::bounds(
        Some(row),
        format!(
            "Tệp có hơn {MAX_SHEET_CELLS} ô (số dòng × {width} cột) khi đọc đến dòng {row}, quá lớn so với một báo \
             cáo. Hãy xoá các dòng trống hoặc thừa, và gửi mỗi tỉnh, mỗi năm học một tệp."
        ),
        format!(
            "The file holds more than {MAX_SHEET_CELLS} cells (its rows × {width} columns) by row {row}, out of \
             proportion for a report. Delete the blank or extra rows, and send one file per province and school \
             year."
        ),
    )
}

/// A file without a header row.
pub(crate) fn empty_file() -> Problem {
    Problem::file(Rule::EmptyFile, String::new())
}

/// Bytes that are not UTF-8, at byte `at` of the file.
pub(crate) fn not_utf8(at: usize) -> Problem {
    Problem::file(Rule::Encoding, format!("byte {at}"))
}

/// How many rows end in `bytes`, and where the text after the last one starts (none when no
/// row ends there).
pub(crate) fn row_ends(bytes: &[u8]) -> (usize, Option<usize>) {
    let (count, last) = CountLines::new(Some(b'"'), b'\n', None).count(bytes);
    (count, (count > 0).then_some(last + 1))
}

/// Blank rows a file may have above its header (each is split on its own).
const MAX_ROWS_ABOVE: usize = 1000;

/// A file's header row.
#[derive(Debug)]
pub(crate) struct Header {
    /// Its cells, cleaned as [`header_name`] says.
    pub names: Vec<String>,
    /// Blank rows above it.
    pub rows_above: usize,
    /// Where the rows below it start in the text.
    pub end: usize,
}

/// The first row of `text` that is not blank, split at `separator`; none when every row of the
/// text is blank. A header wider than [`MAX_COLUMNS`] is refused.
pub(crate) fn header(text: &[u8], separator: u8) -> Result<Option<Header>, Problem> {
    let (mut start, mut rows_above) = (0, 0);
    while start < text.len() {
        if rows_above == MAX_ROWS_ABOVE {
            return Err(Problem::bounds(
                Some(rows_above),
                format!("Không có dòng tiêu đề trong {MAX_ROWS_ABOVE} dòng đầu của tệp. Hãy dùng mẫu của báo cáo."),
                format!("No header row in the file's first {MAX_ROWS_ABOVE} rows. Start from the report's template."),
            ));
        }
        let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |at| start + at + 1);
        let row = 1 + rows_above;
        let line = &text[start..end];
        let names: Vec<String> = match line.iter().all(u8::is_ascii_whitespace) {
            true => Vec::new(),
            false => {
                let frame = read(line, separator, None).map_err(|_| unsplittable(row))?;
                frame
                    .get_columns()
                    .iter()
                    .map(|column| {
                        let cell = column
                            .as_materialized_series()
                            .str()
                            .ok()
                            .and_then(|cells| cells.get(0));
                        header_name(cell.unwrap_or_default())
                    })
                    .collect()
            }
        };
        if names.iter().any(|name| !name.is_empty()) {
            if names.len() > MAX_COLUMNS {
                return Err(too_many_columns(row, names.len()));
            }
            return Ok(Some(Header { names, rows_above, end }));
        }
        rows_above += 1;
        start = end;
    }
    Ok(None)
}

/// The cells of whole rows of CSV text under a header of `width` columns, the first of them row
/// `first_row` of its file.
pub(crate) fn cells(text: &[u8], separator: u8, width: usize, first_row: usize) -> Result<Cells, Problem> {
    // polars passes over line breaks at the start of its text: here they are blank rows.
    let skipped = match width {
        1 => 0,
        _ => text.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count(),
    };
    let blank_above = text[..skipped].iter().filter(|&&b| b == b'\n').count();
    let text = &text[skipped..];
    let frame = read(text, separator, Some(width)).map_err(|_| {
        let (good, _) = row_ends(&text[..longest_readable(text, separator, width)]);
        unsplittable(first_row + blank_above + good)
    })?;
    let rows = blank_above + frame.height();
    let columns = frame
        .get_columns()
        .iter()
        .map(|column| {
            let cells = arrow_column(column.as_materialized_series());
            match blank_above {
                0 => cells,
                _ => std::iter::repeat_n(None, blank_above).chain(cells.iter()).collect(),
            }
        })
        .collect();
    let cells = Cells::from_arrays(columns, rows);
    match cells.first_long_cell() {
        Some((row, _)) => Err(cell_too_long(first_row + row)),
        None => Ok(cells),
    }
}

/// polars' reading of `text`: every column text, `width` of them (as many as the first row has
/// when none is given).
fn read(text: &[u8], separator: u8, width: Option<usize>) -> PolarsResult<DataFrame> {
    let schema = width.map(|width| {
        let fields = (0..width).map(|index| Field::new(index.to_string().into(), DataType::String));
        Arc::new(Schema::from_iter(fields))
    });
    CsvReadOptions::default()
        .with_has_header(false)
        .with_schema(schema)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(false)
        .map_parse_options(|options| {
            options
                .with_separator(separator)
                .with_quote_char(Some(b'"'))
                .with_missing_is_null(true)
                .with_truncate_ragged_lines(true)
        })
        .into_reader_with_file_handle(Cursor::new(text))
        .finish()
}

/// How much of `text` polars reads (up to where a row ends), when it cannot read all of it.
fn longest_readable(text: &[u8], separator: u8, width: usize) -> usize {
    let readable = |length: usize| {
        let (_, end) = row_ends(&text[..length]);
        end.is_none_or(|end| read(&text[..end], separator, Some(width)).is_ok())
    };
    let (mut good, mut bad) = (0, text.len());
    while bad - good > 1 {
        let middle = good + (bad - good) / 2;
        match readable(middle) {
            true => good = middle,
            false => bad = middle,
        }
    }
    row_ends(&text[..good]).1.unwrap_or(0)
}

/// A row polars cannot split into cells.
fn unsplittable(row: usize) -> Problem {
    Problem {
        row: Some(row),
        column: None,
        value: None,
        rule: Rule::Unreadable,
        message_vi: format!(
            "Không tách được dòng {row} thành các ô: một dấu ngoặc kép (\") chưa được đóng, hoặc nằm giữa một ô không \
             bắt đầu bằng dấu ngoặc kép. Hãy đặt ô đó trong ngoặc kép và viết mỗi \" bên trong thành \"\", hoặc xoá \
             dấu ngoặc kép."
        ),
        message_en: format!(
            "Row {row} cannot be split into cells: a quote mark (\") is left open, or stands inside a cell that does \
             not start with one. Put that cell in quotes with each \" inside written twice (\"\"), or remove the \
             quote."
        ),
    }
}

/// A polars string column as an arrow one, through the C data interface: the same buffers.
#[allow(unsafe_code)]
fn arrow_column(series: &polars::prelude::Series) -> StringViewArray {
    use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
    let Ok(cells) = series.str() else {
        // Every column of the schema is text.
        return std::iter::repeat_n(None::<&str>, series.len()).collect();
    };
    let cells = cells.rechunk();
    let Some(array) = cells.downcast_iter().next() else {
        return StringViewArray::new_null(0);
    };
    let field = ArrowField::new("cells".into(), ArrowDataType::Utf8View, true);
    let array = polars_arrow::ffi::export_array_to_c(Box::new(array.clone()));
    let schema = polars_arrow::ffi::export_field_to_c(&field);
    // SAFETY: polars' `ArrowArray` and `ArrowSchema` and arrow's `FFI_ArrowArray` and
    // `FFI_ArrowSchema` are each the C data interface's struct, `#[repr(C)]` with the same fields;
    // the array is a valid Utf8View array polars exported with its schema, and arrow takes over
    // its release callback, so the buffers are freed once, by whichever side drops them last.
    let data = unsafe {
        let array: arrow::ffi::FFI_ArrowArray = std::mem::transmute(array);
        let schema: arrow::ffi::FFI_ArrowSchema = std::mem::transmute(schema);
        arrow::ffi::from_ffi(array, &schema)
    };
    match data {
        Ok(data) => StringViewArray::from(data),
        Err(_) => cells.iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, width: usize) -> Vec<Vec<Option<String>>> {
        let cells = cells(text.as_bytes(), b',', width, 2).expect("cells");
        (0..cells.rows())
            .map(|row| {
                (0..cells.width())
                    .map(|column| cells.column(column).get(row).map(str::to_string))
                    .collect()
            })
            .collect()
    }

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn cells_are_split_at_separators_and_line_breaks_outside_quotes() {
        let text = "\n\"a,b\",\"say \"\"hi\"\"\"\r\n\"line\nbreak\",\n,\nx\nq,r,s,t\n";
        assert_eq!(
            rows(text, 2),
            [
                row(&[None, None]),
                row(&[Some("a,b"), Some("say \"hi\"")]),
                row(&[Some("line\nbreak"), None]),
                row(&[None, None]),
                row(&[Some("x"), None]),
                row(&[Some("q"), Some("r")]),
            ]
        );
        assert_eq!(rows("a\n\nb", 1), [row(&[Some("a")]), row(&[None]), row(&[Some("b")])]);
        assert_eq!(row_ends(b"a,\"b\nc\"\nd"), (1, Some(8)));
        assert_eq!(row_ends(b"a,\"b\nc"), (0, None));
    }

    #[test]
    fn the_header_is_the_first_row_not_blank() {
        let found = header("\n;;\n\u{feff}\"Mã, tỉnh\";năm\nx;y\n".as_bytes(), b';')
            .expect("header")
            .expect("found");
        assert_eq!(found.names, ["Mã, tỉnh", "năm"]);
        assert_eq!((found.rows_above, found.end), (2, 26));
        assert!(header(b"\n \n", b',').expect("blank").is_none());
        let problem = header(",,,\n".repeat(500_000).as_bytes(), b',').expect_err("no header");
        assert_eq!((problem.rule, problem.row), (Rule::Bounds, Some(MAX_ROWS_ABOVE)));
        let wide = format!("{}\n", vec!["a"; MAX_COLUMNS + 1].join(","));
        let problem = header(wide.as_bytes(), b',').expect_err("too wide");
        assert_eq!((problem.rule, problem.row), (Rule::Bounds, Some(1)));
    }

    #[test]
    fn a_row_polars_cannot_split_is_named() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!("{i},ok\n"));
        }
        text.push_str("12\" screen,no\nx,\"y\n");
        for problem in [
            cells(text.as_bytes(), b',', 2, 2).expect_err("a quote inside a cell"),
            cells(b"1,2\n\"open,3\n", b',', 2, 2).expect_err("a quote left open"),
        ] {
            assert_eq!(problem.rule, Rule::Unreadable, "{problem:?}");
            assert!(problem.message_en.contains("quote"), "{}", problem.message_en);
        }
        let problem = cells(text.as_bytes(), b',', 2, 2).expect_err("a quote inside a cell");
        assert_eq!(problem.row, Some(502), "{}", problem.message_en);
    }

    #[test]
    fn a_file_read_whole_holds_a_bounded_number_of_cells() {
        // Short rows under a wide header: each row 256 cells for 2 bytes of text.
        let header = vec!["a"; MAX_COLUMNS].join(",");
        let text = format!("{header}\n{}", "1\n".repeat(20_000));
        let problem = whole(text.as_bytes(), b',', PIECE_BYTES).expect_err("rows too short");
        assert_eq!((problem.rule, problem.row), (Rule::Bounds, Some(2)));
        assert!(problem.message_en.contains("far shorter"), "{}", problem.message_en);
        // Rows of 100 bytes under it: 20,000 of them are 5.12 million cells.
        let text = format!("{header}\n{}", format!("{},1\n", "x".repeat(97)).repeat(20_000));
        let problem = whole(text.as_bytes(), b',', PIECE_BYTES).expect_err("too many cells");
        assert_eq!(problem.rule, Rule::Bounds);
        assert!(
            problem.message_en.contains("more than 5000000 cells"),
            "{}",
            problem.message_en
        );
        let text = format!("{}\n{}", ["a"; 4].join(","), "1\n".repeat(20_000));
        let sheet = whole(text.as_bytes(), b',', 4096).expect("80,000 cells");
        assert_eq!((sheet.header_row, sheet.cells.rows()), (1, 20_000));
        assert_eq!(sheet.cells.column(0).get(19_999), Some("1"));
    }

    #[test]
    fn a_long_cell_is_refused_at_its_row() {
        let text = format!("a,b\nc,{}\n", "x".repeat(crate::sheet::MAX_CELL_BYTES + 1));
        let problem = cells(text.as_bytes(), b',', 2, 10).expect_err("too long");
        assert_eq!((problem.rule, problem.row), (Rule::Bounds, Some(11)));
    }
}
