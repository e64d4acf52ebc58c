//! Reading a large file in blocks: a UTF-8 CSV file (the national education database's export
//! of a province's learners can be a million rows) is cut at row boundaries into blocks of about
//! [`BLOCK_BYTES`], each split by polars (see [`crate::csv`]) and validated on its own with the
//! file's header, so memory stays that of one block whatever the file's size (and of the next,
//! read and split while one is validated). Rules across blocks hold as for a whole
//! file: one school year and province, one row per person (see [`crate::validate::People`]), row
//! numbers as in the file. The blocks of a valid file go to a sink (the warehouse writes them
//! out); once a problem is found the sink gets nothing more, and the rest of the file is still
//! checked so that its problems are listed: the first [`MAX_LISTED`] in full, then counts by
//! rule and column.
//!
//! A workbook or a UTF-16 file, bounded in size by the reader, is read whole and given to the
//! sink as one block.

use std::fs::File;
use std::path::Path;

pub use crate::csv::PIECE_BYTES as BLOCK_BYTES;
use crate::csv::Pieces;
pub use crate::problem::MAX_LISTED;
use crate::problem::{Problem, Problems, Rule};
use crate::read::{ReadOptions, utf8_csv_separator};
use crate::report::{SliceHint, ValidatedReport};
use crate::schema::ReportKind;
use crate::sheet::RawSheet;
use crate::text::{ProvinceCode, SchoolYear};
use crate::validate::{People, validate_part};

/// A file read in blocks that passed every rule.
#[derive(Debug, Clone)]
pub struct BlocksRead {
    /// The report kind.
    pub kind: ReportKind,
    /// Its school year.
    pub school_year: SchoolYear,
    /// Its province (none for a national kind).
    pub province_code: Option<ProvinceCode>,
    /// Data rows, all blocks together.
    pub rows: usize,
    /// Blocks given to the sink.
    pub blocks: usize,
    /// Things worth knowing that are not errors, each said once.
    pub notices: Vec<String>,
}

/// Reads and validates a file block by block, giving each valid block to `sink` (in order)
/// while the file has no problem. Returns what was read, or its problems; an error of the sink
/// stops everything.
pub fn read_in_blocks<E>(
    path: &Path,
    kind: ReportKind,
    hint: &SliceHint,
    options: &ReadOptions,
    sink: impl FnMut(ValidatedReport) -> Result<(), E>,
) -> Result<Result<BlocksRead, Vec<Problem>>, E> {
    read_in_blocks_of(BLOCK_BYTES, path, kind, hint, options, sink)
}

/// [`read_in_blocks`], in blocks of about `block_bytes`.
fn read_in_blocks_of<E>(
    block_bytes: usize,
    path: &Path,
    kind: ReportKind,
    hint: &SliceHint,
    options: &ReadOptions,
    mut sink: impl FnMut(ValidatedReport) -> Result<(), E>,
) -> Result<Result<BlocksRead, Vec<Problem>>, E> {
    let separator = match utf8_csv_separator(path) {
        Ok(Some(separator)) => separator,
        Ok(None) => {
            // Read whole: a workbook or UTF-16 text is bounded by the reader's limits.
            return match crate::read_report(path, kind, hint, options) {
                Ok(report) => {
                    let read = BlocksRead {
                        kind,
                        school_year: report.school_year,
                        province_code: report.province_code.clone(),
                        rows: report.rows,
                        blocks: 1,
                        notices: report.notices.clone(),
                    };
                    sink(report)?;
                    Ok(Ok(read))
                }
                Err(problems) => Ok(Err(problems)),
            };
        }
        Err(problem) => return Ok(Err(vec![problem])),
    };
    match File::open(path) {
        Ok(file) => std::thread::scope(|scope| {
            // The next block is read and split while this one is validated.
            let (blocks, read) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || {
                for block in Pieces::new(file, separator, block_bytes) {
                    if blocks.send(block).is_err() {
                        break;
                    }
                }
            });
            validate_sheets(read.into_iter(), kind, hint, sink)
        }),
        Err(e) => Ok(Err(vec![Problem::file(Rule::Unreadable, e.to_string())])),
    }
}

/// Validates a file given as a sequence of sheets (its blocks, each with the file's header and
/// row numbers), giving each valid one to `sink` while the file has no problem; see
/// [`read_in_blocks`]. A reader of another format (Parquet) hands its blocks here.
pub fn validate_sheets<E>(
    sheets: impl Iterator<Item = Result<RawSheet, Problem>>,
    kind: ReportKind,
    hint: &SliceHint,
    mut sink: impl FnMut(ValidatedReport) -> Result<(), E>,
) -> Result<Result<BlocksRead, Vec<Problem>>, E> {
    let mut reading = Reading {
        kind,
        hint,
        people: People::default(),
        problems: Problems::default(),
        read: None,
        notices: Vec::new(),
    };
    for sheet in sheets {
        match sheet {
            Ok(sheet) => reading.sheet(&sheet, &mut sink)?,
            Err(problem) => {
                reading.problems.push(problem);
                break;
            }
        }
    }
    Ok(reading.finish())
}

/// The state of a file being read in blocks.
struct Reading<'h> {
    kind: ReportKind,
    hint: &'h SliceHint,
    people: People,
    problems: Problems,
    /// The file so far, once a block was valid.
    read: Option<BlocksRead>,
    notices: Vec<String>,
}

impl Reading<'_> {
    fn sheet<E>(&mut self, sheet: &RawSheet, sink: &mut impl FnMut(ValidatedReport) -> Result<(), E>) -> Result<(), E> {
        let report = match validate_part(sheet, self.kind, self.hint, &mut self.people) {
            Ok(report) => report,
            Err(problems) => {
                // A block of blank rows after the data is no problem of its own.
                let blank = problems.total() == problems.listed().len()
                    && problems.listed().iter().all(|p| p.rule == Rule::NoRows);
                if !(blank && self.read.is_some()) {
                    self.problems.absorb(problems);
                }
                return Ok(());
            }
        };
        for notice in &report.notices {
            if !self.notices.contains(notice) {
                self.notices.push(notice.clone());
            }
        }
        match &mut self.read {
            None => {
                self.read = Some(BlocksRead {
                    kind: self.kind,
                    school_year: report.school_year,
                    province_code: report.province_code.clone(),
                    rows: 0,
                    blocks: 0,
                    notices: Vec::new(),
                })
            }
            Some(read) if read.school_year != report.school_year || read.province_code != report.province_code => {
                let slice = |year: SchoolYear, code: &Option<ProvinceCode>| match code {
                    Some(code) => format!("{year}/{code}"),
                    None => year.to_string(),
                };
                let (first, other) = (
                    slice(read.school_year, &read.province_code),
                    slice(report.school_year, &report.province_code),
                );
                self.problems.push(Problem {
                    row: Some(sheet.header_row + 1),
                    column: None,
                    value: None,
                    rule: Rule::OneSlice,
                    message_vi: format!(
                        "Tệp chứa nhiều năm học/tỉnh ({first}, {other}); mỗi tệp chỉ gồm một tỉnh và một năm học."
                    ),
                    message_en: format!(
                        "The file mixes school years/provinces ({first}, {other}); send one file per province and year."
                    ),
                });
                return Ok(());
            }
            Some(_) => {}
        }
        let Some(read) = self.read.as_mut() else {
            return Ok(());
        };
        read.rows += report.rows;
        if self.problems.is_empty() {
            read.blocks += 1;
            sink(report)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<BlocksRead, Vec<Problem>> {
        if !self.problems.is_empty() {
            return Err(self.problems.into_vec());
        }
        match self.read {
            Some(mut read) => {
                read.notices = self.notices;
                Ok(read)
            }
            None => Err(vec![Problem::file(Rule::NoRows, String::new())]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_at_rows_and_keep_their_numbers() {
        let text = "\nid,name\n1,\"a\nb\"\n2,c\n3,d\n";
        let blocks: Vec<RawSheet> = Pieces::new(text.as_bytes(), b',', BLOCK_BYTES)
            .map(|b| b.expect("block"))
            .collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].header_row, 2, "a blank line above the header");
        assert_eq!(blocks[0].headers, ["id", "name"]);
        let names: Vec<Option<&str>> = (0..3).map(|row| blocks[0].cells.column(1).get(row)).collect();
        assert_eq!(names, [Some("a\nb"), Some("c"), Some("d")]);

        // In blocks of about 1 KB: a row whose line break in quotes ends a block goes whole into
        // the next one, and every row keeps its number.
        let text: String = std::iter::once("id,name\n".to_string())
            .chain((0..300).map(|i| format!("{i},\"line {i}\nand \"\"more\"\"\"\n")))
            .collect();
        let blocks: Vec<RawSheet> = Pieces::new(text.as_bytes(), b',', 1024)
            .map(|b| b.expect("block"))
            .collect();
        assert!(blocks.len() > 5, "{} blocks", blocks.len());
        let mut row = 0;
        for block in &blocks {
            assert_eq!(block.headers, ["id", "name"]);
            assert_eq!(block.header_row, 1 + row, "rows before the block");
            for i in 0..block.cells.rows() {
                assert_eq!(block.cells.column(0).get(i), Some(row.to_string().as_str()));
                let name = format!("line {row}\nand \"more\"");
                assert_eq!(block.cells.column(1).get(i), Some(name.as_str()));
                row += 1;
            }
        }
        assert_eq!(row, 300);
    }

    fn learners(rows: usize, id: impl Fn(usize) -> String) -> String {
        let mut text = "school_year,province_code,school_id,learner_id,level,grade,gender,device,home_internet,\
                        online_ready,domestic_platform,digital_record\n"
            .to_string();
        for i in 0..rows {
            text.push_str(&format!(
                "2024-2025,01,0100001,{},primary,{},female,own,yes,yes,no,yes\n",
                id(i),
                1 + i % 5
            ));
        }
        text
    }

    fn read_text(text: &str, block_bytes: usize) -> (Result<BlocksRead, Vec<Problem>>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("learners.csv");
        std::fs::write(&path, text).expect("write");
        let mut blocks = 0;
        let read = read_in_blocks_of(
            block_bytes,
            &path,
            ReportKind::Learner,
            &SliceHint::default(),
            &ReadOptions::default(),
            |_| {
                blocks += 1;
                Ok::<(), ()>(())
            },
        )
        .expect("no sink error");
        (read, blocks)
    }

    #[test]
    fn a_file_in_many_blocks_is_one_file() {
        let text = learners(2_000, |i| format!("{:012}", 1_000_000 + i));
        let (read, blocks) = read_text(&text, 4096);
        let read = read.expect("valid");
        assert_eq!((read.rows, read.blocks, blocks), (2_000, blocks, blocks));
        assert!(blocks > 20, "{blocks} blocks");

        // A person on row 3 named again on row 1,999: found across blocks, said by row.
        let text = learners(2_000, |i| format!("{:012}", 1_000_000 + if i == 1_997 { 1 } else { i }));
        let (read, _) = read_text(&text, 4096);
        let problems = read.expect_err("a person twice");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].rule, problems[0].row), (Rule::UniqueKey, Some(1_999)));
        assert!(problems[0].message_en.contains("row 3"), "{}", problems[0].message_en);

        // Every row bad: the first thousand listed, the rest counted by rule and column.
        let text = learners(3_000, |_| "12345".to_string());
        let (read, _) = read_text(&text, 4096);
        let problems = read.expect_err("bad identifiers");
        assert_eq!(problems.len(), MAX_LISTED + 1);
        let more = problems.last().expect("the count");
        assert_eq!(more.rule, Rule::More);
        assert!(
            more.message_en.starts_with("2000 more [person_id]"),
            "{}",
            more.message_en
        );
    }

    #[test]
    fn each_block_is_checked_for_encoding_and_shape_where_it_lies_in_the_file() {
        let text = learners(2_000, |i| format!("{:012}", 1_000_000 + i));
        // A Windows-1258 byte on data row 1,500, many blocks into the file.
        let at = text.match_indices('\n').nth(1_500).map(|(i, _)| i + 25).expect("row");
        let mut bytes = text.clone().into_bytes();
        bytes[at] = 0xD0;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("learners.csv");
        std::fs::write(&path, &bytes).expect("write");
        let read = read_in_blocks_of(
            4096,
            &path,
            ReportKind::Learner,
            &SliceHint::default(),
            &ReadOptions::default(),
            |_| Ok::<(), ()>(()),
        )
        .expect("no sink error");
        let problems = read.expect_err("not UTF-8");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].rule, Rule::Encoding);
        assert!(
            problems[0].message_en.contains(&format!("(byte {at})")),
            "{}",
            problems[0].message_en
        );

        // On row 1,802 (the header is row 1): a cell longer than a block, a quote inside a cell.
        for (cell, rule) in [
            ("x".repeat(5_000), Rule::Bounds),
            ("12\" screen".to_string(), Rule::Unreadable),
        ] {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[1_801] = lines[1_801].replacen("primary", &cell, 1);
            let (read, _) = read_text(&(lines.join("\n") + "\n"), 4096);
            let problems = read.expect_err("not read");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!((problems[0].rule, problems[0].row), (rule, Some(1_802)), "{problems:?}");
        }
    }
}
