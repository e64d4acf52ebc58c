//! A sheet's text cells, one Arrow string column per header, and the bounds a sheet is held to.
//!
//! A cell with nothing in it is missing. A row with fewer cells than the header is missing the
//! rest; cells past the header's width are dropped. What the cells take grows with the rows
//! and the text, never past what the bounds allow: no header wider than [`MAX_COLUMNS`], no cell
//! longer than [`MAX_CELL_BYTES`], not more than [`MAX_BLANK_ROWS`] blank rows in a file mostly
//! blank (see [`crate::csv`] for how CSV text is read in pieces held to them).

use arrow::array::{Array, StringViewArray};
use arrow::buffer::BooleanBuffer;

use crate::problem::Problem;

/// A sheet of text cells: the header row as the user typed it, and the data rows below it.
#[derive(Debug)]
pub struct RawSheet {
    /// Header cells, in file order.
    pub headers: Vec<String>,
    /// The row number of the header row as the user sees it (1 unless the sheet starts lower).
    pub header_row: usize,
    /// One column of cells per header (same order); row `i` is row `header_row + 1 + i`.
    pub cells: Cells,
}

impl RawSheet {
    /// A sheet of text cells given by column (a block of a file another reader read, such as a
    /// Parquet file's rows cast to text), its header said to be on row `header_row`. Refused
    /// past [`MAX_COLUMNS`] columns or a cell of [`MAX_CELL_BYTES`].
    pub fn from_columns(
        headers: Vec<String>,
        header_row: usize,
        columns: Vec<Vec<Option<String>>>,
    ) -> Result<RawSheet, Problem> {
        if headers.len() > MAX_COLUMNS {
            return Err(too_many_columns(header_row, headers.len()));
        }
        for (index, cells) in columns.iter().enumerate() {
            if let Some(row) = cells
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.len() > MAX_CELL_BYTES))
            {
                let row = header_row + 1 + row;
                let header = headers.get(index).map_or("", String::as_str);
                return Err(Problem::bounds(
                    Some(row),
                    format!("Dòng {row}, cột \"{header}\" có một ô dài hơn {MAX_CELL_BYTES} byte."),
                    format!("Row {row}, column \"{header}\" has a cell longer than {MAX_CELL_BYTES} bytes."),
                ));
            }
        }
        Ok(RawSheet {
            headers,
            header_row,
            cells: Cells::from_columns(&columns),
        })
    }
}

/// Columns a file may have (a report's template has about 25).
pub const MAX_COLUMNS: usize = 256;

/// The longest cell of a CSV file, in bytes (a report's cells are names, codes and numbers).
pub const MAX_CELL_BYTES: usize = 4096;

/// The most cells a sheet read whole may hold (rows × columns; a worksheet's used area from its
/// first cell to its last): a school report of 50,000 rows and 30 columns is 1.5 million. A
/// record file, read in blocks, has no such bound.
pub const MAX_SHEET_CELLS: u64 = 5_000_000;

/// Blank rows a file may have when they are most of its rows: more than an Excel sheet holds, so
/// that a sheet saved from Excel with every row below its data is still read.
pub const MAX_BLANK_ROWS: usize = 1_048_576;

/// The text cells of a sheet's rows, under a header: one column per header cell.
#[derive(Debug, Default)]
pub struct Cells {
    columns: Vec<StringViewArray>,
    rows: usize,
}

impl Cells {
    /// Cells given by column (a shorter column is missing its last cells).
    pub fn from_columns(columns: &[Vec<Option<String>>]) -> Cells {
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        let columns = columns
            .iter()
            .map(|values| {
                let missing = std::iter::repeat_n(None, rows - values.len());
                values.iter().map(Option::as_deref).chain(missing).collect()
            })
            .collect();
        Cells { columns, rows }
    }

    /// Cells of `rows` rows given as Arrow columns of that length.
    pub(crate) fn from_arrays(columns: Vec<StringViewArray>, rows: usize) -> Cells {
        debug_assert!(columns.iter().all(|column| column.len() == rows));
        Cells { columns, rows }
    }

    /// The rows of `parts`, one after the other (the parts have the same width).
    pub(crate) fn concat(parts: Vec<Cells>) -> Cells {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Cells::default();
        };
        let rest: Vec<Cells> = parts.collect();
        if rest.is_empty() {
            return first;
        }
        let rows = first.rows + rest.iter().map(|part| part.rows).sum::<usize>();
        let columns = (0..first.width())
            .map(|index| {
                std::iter::once(&first)
                    .chain(&rest)
                    .flat_map(|part| part.columns[index].iter())
                    .collect()
            })
            .collect();
        Cells { columns, rows }
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// How many cells a row has.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The cells of column `column` (counted from 0), which is less than [`Cells::width`].
    pub fn column(&self, column: usize) -> CellColumn<'_> {
        CellColumn {
            array: &self.columns[column],
        }
    }

    /// Rows without a cell.
    pub(crate) fn blank_rows(&self) -> usize {
        let mut filled = BooleanBuffer::new_unset(self.rows);
        for column in &self.columns {
            match column.nulls() {
                Some(nulls) => filled = &filled | nulls.inner(),
                None => return 0,
            }
        }
        self.rows - filled.count_set_bits()
    }

    /// The first row (counted from 0) with a cell longer than [`MAX_CELL_BYTES`], and its column.
    pub(crate) fn first_long_cell(&self) -> Option<(usize, usize)> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(index, column)| {
                let lengths = column.views().iter().map(|view| *view as u32 as usize);
                let row = lengths
                    .enumerate()
                    .position(|(row, length)| length > MAX_CELL_BYTES && column.is_valid(row))?;
                Some((row, index))
            })
            .min()
    }
}

/// One column of [`Cells`].
#[derive(Debug, Clone, Copy)]
pub struct CellColumn<'c> {
    array: &'c StringViewArray,
}

impl<'c> CellColumn<'c> {
    /// The cell of row `row` (counted from 0 below the header), if it has one.
    pub fn get(&self, row: usize) -> Option<&'c str> {
        match self.array.is_valid(row) {
            true => Some(self.array.value(row)),
            false => None,
        }
    }

    /// Whether no row has a cell but spaces.
    pub fn is_blank(&self) -> bool {
        self.array.iter().all(|cell| cell.is_none_or(|c| c.trim().is_empty()))
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

/// A header of `columns` cells, past [`MAX_COLUMNS`], on row `row`.
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
pub(crate) fn mostly_blank(blank_rows: usize, row: usize) -> Problem {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(columns: &[&[Option<&str>]]) -> Cells {
        let columns: Vec<Vec<Option<String>>> = columns
            .iter()
            .map(|column| column.iter().map(|cell| cell.map(str::to_string)).collect())
            .collect();
        Cells::from_columns(&columns)
    }

    #[test]
    fn cells_given_by_column_read_back_by_row_and_join() {
        let short = cells(&[&[Some("a"), Some("b"), None], &[Some("1")]]);
        assert_eq!((short.rows(), short.width()), (3, 2));
        assert_eq!(short.column(1).get(0), Some("1"));
        assert_eq!(
            short.column(1).get(2),
            None,
            "a shorter column is missing its last cells"
        );
        assert_eq!(short.blank_rows(), 1);
        let long = "x".repeat(MAX_CELL_BYTES + 1);
        let more = cells(&[&[None, Some("c")], &[Some(long.as_str()), None]]);
        assert_eq!(more.first_long_cell(), Some((0, 1)));
        let joined = Cells::concat(vec![short, more]);
        assert_eq!((joined.rows(), joined.blank_rows()), (5, 1));
        assert_eq!(joined.column(0).get(4), Some("c"));
        assert_eq!(joined.first_long_cell(), Some((3, 1)));
        assert!(cells(&[&[Some(" "), None]]).column(0).is_blank());
    }
}
