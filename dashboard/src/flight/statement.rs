//! A statement as a ticket and a prepared statement's handle carry it: its text and the values
//! bound to its parameters. Nothing is kept on the server between calls — a handle comes back
//! from the client and is checked again, whole, by the call that uses it — so a prepared
//! statement costs the server nothing while it waits, and a forged handle is just another query.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use tonic::Status;

/// What a handle starts with, so that bytes of another kind are refused plainly.
const MARK: &[u8] = b"khoso-statement-1\n";

/// A statement and its bound values (`$1`, `$2`, … in order; none when it takes none).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) parameters: Vec<ScalarValue>,
}

impl Statement {
    /// A statement with nothing bound yet; `?` placeholders are numbered `$1`, `$2`, … in the
    /// order they are written (DB-API and JDBC clients write `?`).
    pub(super) fn new(sql: &str) -> Result<Self, Status> {
        Ok(Self {
            sql: numbered_placeholders(sql)?,
            parameters: Vec::new(),
        })
    }

    /// The statement's bytes: the mark, the text's length (8 bytes, little-endian), the text,
    /// and the bound values as an Arrow IPC stream of one row.
    pub(super) fn encode(&self) -> Result<Vec<u8>, Status> {
        let mut bytes = MARK.to_vec();
        bytes.extend_from_slice(&(self.sql.len() as u64).to_le_bytes());
        bytes.extend_from_slice(self.sql.as_bytes());
        if self.parameters.is_empty() {
            return Ok(bytes);
        }
        let fields: Vec<Field> = self
            .parameters
            .iter()
            .enumerate()
            .map(|(i, value)| Field::new(format!("${}", i + 1), value.data_type(), true))
            .collect();
        let columns = self
            .parameters
            .iter()
            .map(ScalarValue::to_array)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(e.to_string()))?;
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut writer =
            StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(|e| Status::internal(e.to_string()))?;
        writer
            .write(&batch)
            .and_then(|()| writer.finish())
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(writer);
        Ok(bytes)
    }

    /// The statement of a handle or ticket a client sent back.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, Status> {
        let refused = || Status::invalid_argument("not a statement handle of this server: prepare the statement again");
        let rest = bytes.strip_prefix(MARK).ok_or_else(refused)?;
        let (length, rest) = rest.split_first_chunk::<8>().ok_or_else(refused)?;
        let length = usize::try_from(u64::from_le_bytes(*length)).map_err(|_| refused())?;
        if length > rest.len() {
            return Err(refused());
        }
        let (sql, values) = rest.split_at(length);
        let sql = std::str::from_utf8(sql).map_err(|_| refused())?.to_string();
        if values.is_empty() {
            return Ok(Self {
                sql,
                parameters: Vec::new(),
            });
        }
        let batches = StreamReader::try_new(values, None)
            .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
            .map_err(|_| refused())?;
        match batches.as_slice() {
            [batch] => Ok(Self {
                sql,
                parameters: parameters_of(batch)?,
            }),
            _ => Err(refused()),
        }
    }
}

/// The values of a batch of parameters sent for a query: its one row (a query runs with one set
/// of values; several rows are for updates, which khoso does not take).
pub(super) fn parameters_of(batch: &RecordBatch) -> Result<Vec<ScalarValue>, Status> {
    match batch.num_rows() {
        0 => Ok(Vec::new()),
        1 => batch
            .columns()
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(format!("a parameter's value could not be read: {e}"))),
        rows => Err(Status::invalid_argument(format!(
            "{rows} rows of parameters were sent: a query runs with one row of values (run it once per row)"
        ))),
    }
}

/// The schema of a statement's parameters, `$1`, `$2`, … with the types the statement settles
/// (`Null` where it leaves the type to the value).
pub(super) fn parameter_schema(parameters: &[(String, Option<DataType>)]) -> Schema {
    Schema::new(
        parameters
            .iter()
            .map(|(name, kind)| Field::new(name, kind.clone().unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    )
}

/// `sql` with each `?` placeholder written `$1`, `$2`, … in the order of the text (strings,
/// quoted names and comments left as they are). A statement that mixes `?` with numbered
/// placeholders is refused: which value goes where would be a guess.
fn numbered_placeholders(sql: &str) -> Result<String, Status> {
    if !sql.contains('?') {
        return Ok(sql.to_string());
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Status::invalid_argument(format!("SQL error: {e}")))?;
    let mut questions = std::collections::HashSet::new();
    for token in &tokens {
        match &token.token {
            Token::Placeholder(p) if p == "?" => {
                questions.insert((token.span.start.line, token.span.start.column));
            }
            Token::Placeholder(p) if p.starts_with('$') => {
                return Err(Status::invalid_argument(
                    "the statement mixes ? with $1-style placeholders: write them all one way",
                ));
            }
            _ => {}
        }
    }
    // The tokenizer's places: lines and columns counted in characters from 1, a line ending at
    // each '\n'.
    let (mut line, mut column, mut count) = (1u64, 1u64, 0usize);
    let mut numbered = String::with_capacity(sql.len() + questions.len() * 2);
    for c in sql.chars() {
        match c {
            '?' if questions.contains(&(line, column)) => {
                count += 1;
                numbered.push_str(&format!("${count}"));
            }
            c => numbered.push(c),
        }
        (line, column) = if c == '\n' { (line + 1, 1) } else { (line, column + 1) };
    }
    match count == questions.len() {
        true => Ok(numbered),
        false => Err(Status::invalid_argument(
            "the statement's ? placeholders could not be told apart: write them $1, $2, …",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_in_the_order_of_the_text_and_strings_are_left_alone() {
        let sql = "SELECT 'it''s ?' AS \"q?\", a FROM t\nWHERE b = ? AND c IN (?,?) -- why?\n AND d = 'ồ?' || ?";
        assert_eq!(
            numbered_placeholders(sql).expect("numbered"),
            "SELECT 'it''s ?' AS \"q?\", a FROM t\nWHERE b = $1 AND c IN ($2,$3) -- why?\n AND d = 'ồ?' || $4"
        );
        assert_eq!(numbered_placeholders("SELECT $1").expect("numbered"), "SELECT $1");
        assert!(numbered_placeholders("SELECT $1, ?").is_err());
    }

    #[test]
    fn a_statement_comes_back_from_its_bytes_as_it_went_and_other_bytes_are_refused() {
        let plain = Statement::new("SELECT 1").expect("a statement");
        assert_eq!(
            Statement::decode(&plain.encode().expect("encoded")).expect("decoded"),
            plain
        );
        let bound = Statement {
            sql: "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3".into(),
            parameters: vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Utf8(Some("Hà Nội".into())),
                ScalarValue::Null,
            ],
        };
        assert_eq!(
            Statement::decode(&bound.encode().expect("encoded")).expect("decoded"),
            bound
        );
        let bytes = bound.encode().expect("encoded");
        for cut in [0, MARK.len(), MARK.len() + 4, MARK.len() + 12, bytes.len() - 1] {
            assert!(Statement::decode(&bytes[..cut]).is_err(), "{cut} bytes");
        }
        let mut long = MARK.to_vec();
        long.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Statement::decode(&long).is_err());
    }
}
