//! Report schemas: what a report kind's columns are, as data (`ingest/schemas/*.toml`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::text::{SchoolYear, fold_header};
use crate::{Error, Result};

/// The kinds of report khoso accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// General and continuing education: one row per (school, level) per school year.
    School,
    /// Higher education: one row per institution per school year.
    University,
    /// The national learning-materials repository: one row per (subject, grade).
    Content,
    /// Learner records from the national education database: one row per learner.
    Learner,
    /// Teacher records from the national education database: one row per teacher.
    Teacher,
}

impl ReportKind {
    /// Every kind, in a stable order.
    pub const ALL: [ReportKind; 5] = [
        Self::School,
        Self::University,
        Self::Content,
        Self::Learner,
        Self::Teacher,
    ];

    /// The kind's name as written on the command line and in the `submissions` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::School => "school",
            Self::University => "university",
            Self::Content => "content",
            Self::Learner => "learner",
            Self::Teacher => "teacher",
        }
    }

    /// Whether a report of this kind belongs to one province (`content` is national).
    pub fn is_provincial(self) -> bool {
        !matches!(self, Self::Content)
    }

    /// The kinds that are reports of institutions (not records of people).
    pub const REPORTS: [ReportKind; 3] = [Self::School, Self::University, Self::Content];

    /// Whether a row is a person (learner and teacher records): its identifier is kept only as
    /// a pseudonym, personal columns refuse the file, and figures of small groups are withheld.
    pub fn holds_people(self) -> bool {
        self.schema().person_id().is_some()
    }

    /// The schema of this kind: the built-in one, or the file that replaced it (see
    /// [`use_schemas_from`]).
    pub fn schema(self) -> &'static ReportSchema {
        let all = SCHEMAS.get_or_init(|| {
            ReportKind::ALL.map(|kind| {
                ReportSchema::from_toml(kind.schema_text())
                    .unwrap_or_else(|e| panic!("built-in schema {kind} is invalid: {e}"))
            })
        });
        &all[self as usize]
    }

    /// The kind a header row is of: the one whose columns it names most (by name, former name
    /// or alias, in either language), when no other names as many. `Err` holds the kinds tied
    /// for most, none of them when the header names no column of any kind.
    pub fn of_header<'h>(
        headers: impl IntoIterator<Item = &'h str>,
    ) -> std::result::Result<ReportKind, Vec<ReportKind>> {
        let headers: Vec<&str> = headers.into_iter().collect();
        let named = |kind: ReportKind| {
            let schema = kind.schema();
            let columns: HashSet<&str> = headers
                .iter()
                .filter_map(|h| schema.column_for_header(h))
                .map(|c| c.name.as_str())
                .collect();
            columns.len()
        };
        let counts = ReportKind::ALL.map(|kind| (kind, named(kind)));
        let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let tied: Vec<ReportKind> = counts.iter().filter(|(_, n)| *n == most).map(|(k, _)| *k).collect();
        match tied.as_slice() {
            _ if most == 0 => Err(Vec::new()),
            [only] => Ok(*only),
            _ => Err(tied),
        }
    }

    fn schema_text(self) -> &'static str {
        match self {
            Self::School => include_str!("../schemas/school.toml"),
            Self::University => include_str!("../schemas/university.toml"),
            Self::Content => include_str!("../schemas/content.toml"),
            Self::Learner => include_str!("../schemas/learner.toml"),
            Self::Teacher => include_str!("../schemas/teacher.toml"),
        }
    }
}

/// The report schemas in force, read once.
static SCHEMAS: std::sync::OnceLock<[ReportSchema; 5]> = std::sync::OnceLock::new();

/// Puts in force the schema files of a folder (`school.toml`, `university.toml`, `content.toml`,
/// `learner.toml`, `teacher.toml`; a kind without a file keeps its built-in schema), so that a
/// column the ministry adds or renames needs only its schema file edited. Called once, before
/// any report is read; a file that does not parse, fails a check, or names another kind or
/// table is refused with its path.
pub fn use_schemas_from(folder: &Path) -> Result<()> {
    let mut schemas = Vec::with_capacity(ReportKind::ALL.len());
    for kind in ReportKind::ALL {
        let path = folder.join(format!("{kind}.toml"));
        let schema = match std::fs::read_to_string(&path) {
            Ok(text) => {
                ReportSchema::from_toml(&text).map_err(|e| Error::Schema(format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ReportSchema::from_toml(kind.schema_text())?,
            Err(e) => return Err(Error::Schema(format!("{}: {e}", path.display()))),
        };
        let built_in = ReportSchema::from_toml(kind.schema_text())?;
        if schema.kind != built_in.kind || schema.table != built_in.table {
            return Err(Error::Schema(format!(
                "{}: kind = {:?} and table = {:?} must stay {:?} and {:?}",
                path.display(),
                schema.kind,
                schema.table,
                built_in.kind,
                built_in.table
            )));
        }
        schemas.push(schema);
    }
    let schemas: [ReportSchema; 5] = schemas
        .try_into()
        .map_err(|_| Error::Schema("one schema per kind".into()))?;
    SCHEMAS
        .set(schemas)
        .map_err(|_| Error::Schema("the report schemas were in force already".into()))
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| Error::UnknownKind(s.to_string()))
    }
}

/// The type of a column's values once normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Free text (names, identifiers).
    Text,
    /// One of a closed set of values, each with aliases.
    Category,
    /// A whole number ≥ 0.
    Count,
    /// Yes or no.
    Flag,
    /// A school year such as `2024-2025`.
    SchoolYear,
    /// A two-digit province code valid in the row's school year.
    ProvinceCode,
    /// A person's 12-digit national identifier (Circular 42/2021/TT-BGDĐT): personal data, kept
    /// only as a keyed pseudonym.
    PersonId,
}

/// One allowed value of a category column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryValue {
    /// The value as stored.
    pub value: String,
    /// Other ways a user may write it (Vietnamese with or without diacritics, abbreviations).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// One column of a report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name as stored in the warehouse.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether every row must have a value.
    pub required: bool,
    /// Meaning, in Vietnamese.
    pub description_vi: String,
    /// Meaning, in English.
    pub description_en: String,
    /// Header texts that name this column (besides its name).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Allowed values of a category column.
    #[serde(default)]
    pub values: Vec<CategoryValue>,
    /// Smallest allowed count.
    pub min: Option<i64>,
    /// Largest allowed count.
    pub max: Option<i64>,
    /// The longest text a cell of a text column may hold, in characters.
    pub max_chars: Option<usize>,
    /// The first school year whose reports have this column (a column the ministry added):
    /// files of earlier years need not carry it, and are checked under the rules of their year.
    pub from: Option<SchoolYear>,
    /// What a row without this column holds: a file that does not carry it, and the rows a
    /// table holds from before it was added (none: they read as null).
    pub default: Option<DefaultValue>,
    /// The names the column had before it was renamed: a header naming one still names the
    /// column, and the rows a table holds from before the rename are read from it.
    #[serde(default)]
    pub formerly: Vec<String>,
}

/// A column's stated default: a number, yes/no, or text as a cell would hold it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DefaultValue {
    /// A yes/no value.
    Flag(bool),
    /// A count.
    Count(i64),
    /// Text, a category's value, a code.
    Text(String),
}

impl DefaultValue {
    /// The value as a cell of a file would hold it.
    pub fn as_cell(&self) -> String {
        match self {
            DefaultValue::Flag(true) => "yes".to_string(),
            DefaultValue::Flag(false) => "no".to_string(),
            DefaultValue::Count(n) => n.to_string(),
            DefaultValue::Text(text) => text.clone(),
        }
    }
}

impl ColumnSpec {
    /// Whether a report of `year` has this column (every year, unless it was added later).
    pub fn in_year(&self, year: SchoolYear) -> bool {
        self.from.is_none_or(|from| year >= from)
    }

    /// Whether every row of a report of `year` must have a value: a required column is so
    /// from the year it was added.
    pub fn required_in(&self, year: SchoolYear) -> bool {
        self.required && self.in_year(year)
    }

    /// The header a template shows for this column in the given language.
    pub fn header(&self, lang: Lang) -> &str {
        match lang {
            Lang::Vi => self.aliases.first().map_or(&self.name, String::as_str),
            Lang::En => &self.name,
        }
    }

    /// The category value a cell names, if any (case, spacing and diacritics ignored).
    pub fn category_value(&self, cell: &str) -> Option<&str> {
        let folded = fold_header(cell);
        self.values
            .iter()
            .find(|v| fold_header(&v.value) == folded || v.aliases.iter().any(|a| fold_header(a) == folded))
            .map(|v| v.value.as_str())
    }
}

/// A rule that one count never exceeds another in the same row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartOfWhole {
    /// The part (e.g. `students_online_ready`).
    pub part: String,
    /// The whole (e.g. `students`).
    pub whole: String,
}

/// A rule that a count stays within a range that depends on a category of the same row (the
/// grades a level teaches).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeBy {
    /// The count (e.g. `grade`).
    pub column: String,
    /// The category (e.g. `level`).
    pub by: String,
    /// The smallest and largest count allowed, by category value.
    pub ranges: std::collections::BTreeMap<String, [i64; 2]>,
}

/// Headers of personal data a file must not carry (names, birth dates, addresses, phone
/// numbers): a header holding one of the `phrases`, or one of the `words` as a whole word, once
/// folded (case, spacing and diacritics ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalData {
    /// What the column holds, in Vietnamese.
    pub what_vi: String,
    /// What the column holds, in English.
    pub what_en: String,
    /// Folded phrases.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// Folded words.
    #[serde(default)]
    pub words: Vec<String>,
}

impl PersonalData {
    /// Whether a header names this kind of personal data.
    pub fn names(&self, header: &str) -> bool {
        let folded = fold_header(header);
        let padded = format!(" {folded} ");
        self.phrases.iter().any(|p| padded.contains(&format!(" {p} ")))
            || folded.split(' ').any(|word| self.words.iter().any(|w| w == word))
    }
}

/// A report kind described as data: its columns, keys and row rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSchema {
    /// The kind's name (`school`, `university`, `content`).
    pub kind: String,
    /// The warehouse table the reports go to.
    pub table: String,
    /// Name, in Vietnamese.
    pub name_vi: String,
    /// Name, in English.
    pub name_en: String,
    /// Columns that identify a row; no two rows of a file may share them.
    pub keys: Vec<String>,
    /// The columns, in template order.
    pub columns: Vec<ColumnSpec>,
    /// Part ≤ whole rules.
    #[serde(default)]
    pub parts: Vec<PartOfWhole>,
    /// Ranges that depend on a category.
    #[serde(default)]
    pub range_by: Vec<RangeBy>,
    /// Personal columns that refuse a file.
    #[serde(default)]
    pub personal_data: Vec<PersonalData>,
    /// Each column's place by every name a header may give it, folded (see
    /// [`ReportSchema::column_for_header`]); filled as the schema is read.
    #[serde(skip)]
    by_header: HashMap<String, usize>,
}

/// The language of a page, a message or a template: Vietnamese first, English second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Vietnamese (the default).
    #[default]
    Vi,
    /// English.
    En,
}

impl Lang {
    /// The code used in `?lang=`, cookies and file names.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language (for a toggle).
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    /// Parses a code exactly; anything else is none.
    pub fn from_code(code: &str) -> Option<Lang> {
        match code.trim() {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Picks the Vietnamese or English text.
    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

impl FromStr for Lang {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vi" => Ok(Lang::Vi),
            "en" => Ok(Lang::En),
            _ => Err(Error::Schema(format!("unknown language {s:?}: use vi or en"))),
        }
    }
}

impl ReportSchema {
    /// Parses and checks a schema file: unknown fields, unknown column names in keys and rules,
    /// and a header alias claimed by two columns are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut schema: ReportSchema = toml::from_str(text).map_err(|e| Error::Schema(e.message().to_string()))?;
        schema.validate()?;
        // The first column claiming a name keeps it (two claiming one are refused above).
        for (place, column) in schema.columns.iter().enumerate().rev() {
            for name in column.header_names() {
                schema.by_header.insert(fold_header(name), place);
            }
        }
        Ok(schema)
    }

    fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        for column in &self.columns {
            if !names.insert(column.name.as_str()) {
                return Err(Error::Schema(format!("column {} is declared twice", column.name)));
            }
            if let Some(default) = &column.default {
                column.check_default(default)?;
            }
            if column.from.is_some() && matches!(column.column_type, ColumnType::SchoolYear | ColumnType::ProvinceCode)
            {
                return Err(Error::Schema(format!(
                    "column {}: the school year and province columns are in every year's reports",
                    column.name
                )));
            }
            if column.max_chars.is_some() && column.column_type != ColumnType::Text {
                return Err(Error::Schema(format!(
                    "column {}: max_chars belongs to text columns",
                    column.name
                )));
            }
            let has_values = !column.values.is_empty();
            if has_values != (column.column_type == ColumnType::Category) {
                return Err(Error::Schema(format!(
                    "column {}: `values` belong to category columns, and every category column needs them",
                    column.name
                )));
            }
        }
        let known = |name: &str, field: &str| {
            if names.contains(name) {
                Ok(())
            } else {
                Err(Error::Schema(format!("{field} names unknown column {name}")))
            }
        };
        for key in &self.keys {
            known(key, "keys")?;
        }
        for rule in &self.parts {
            known(&rule.part, "parts.part")?;
            known(&rule.whole, "parts.whole")?;
        }
        for rule in &self.range_by {
            known(&rule.column, "range_by.column")?;
            known(&rule.by, "range_by.by")?;
            let by = self.column(&rule.by).filter(|c| c.column_type == ColumnType::Category);
            for value in rule.ranges.keys() {
                if !by.is_some_and(|c| c.values.iter().any(|v| &v.value == value)) {
                    return Err(Error::Schema(format!(
                        "range_by: {value} is not a value of the category column {}",
                        rule.by
                    )));
                }
            }
        }
        if self
            .columns
            .iter()
            .filter(|c| c.column_type == ColumnType::PersonId)
            .count()
            > 1
        {
            return Err(Error::Schema("a kind has at most one person_id column".into()));
        }
        for column in &self.columns {
            if let Some(data) = self
                .personal_data
                .iter()
                .find(|d| column.header_names().any(|h| d.names(h)))
            {
                return Err(Error::Schema(format!(
                    "column {} has a header that names personal data ({})",
                    column.name, data.what_en
                )));
            }
        }
        let mut claimed: HashMap<String, &str> = HashMap::new();
        for column in &self.columns {
            for header in column.header_names() {
                if let Some(other) = claimed.insert(fold_header(header), &column.name)
                    && other != column.name
                {
                    return Err(Error::Schema(format!(
                        "header {header:?} is an alias of both {other} and {}",
                        column.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The column of the person a row is about, if rows are people.
    pub fn person_id(&self) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.column_type == ColumnType::PersonId)
    }

    /// The personal data a header names, if it names any.
    pub fn personal_data_named(&self, header: &str) -> Option<&PersonalData> {
        self.personal_data.iter().find(|d| d.names(header))
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column a header names (case, spacing, punctuation and diacritics ignored).
    pub fn column_for_header(&self, header: &str) -> Option<&ColumnSpec> {
        let folded = fold_header(header);
        if folded.is_empty() {
            return None;
        }
        self.by_header.get(&folded).map(|&place| &self.columns[place])
    }
}

impl ColumnSpec {
    /// The column's name, its former names, then its aliases.
    fn header_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str())
            .chain(self.formerly.iter().map(String::as_str))
            .chain(self.aliases.iter().map(String::as_str))
    }

    /// Refuses a default a cell of this column could not hold.
    fn check_default(&self, default: &DefaultValue) -> Result<()> {
        let fits = match (self.column_type, default) {
            (ColumnType::Count, DefaultValue::Count(n)) => {
                self.min.is_none_or(|min| *n >= min) && self.max.is_none_or(|max| *n <= max) && *n >= 0
            }
            (ColumnType::Flag, DefaultValue::Flag(_)) => true,
            (ColumnType::Category, DefaultValue::Text(text)) => self.values.iter().any(|v| &v.value == text),
            (ColumnType::Text, DefaultValue::Text(_)) => true,
            _ => false,
        };
        match fits {
            true => Ok(()),
            false => Err(Error::Schema(format!(
                "column {}: default {default:?} is not a value of a {:?} column{}",
                self.name,
                self.column_type,
                match self.column_type {
                    ColumnType::Category => " (use one of its values)",
                    ColumnType::Count => " (a whole number within its min and max)",
                    ColumnType::Flag => " (true or false)",
                    ColumnType::Text => " (text in quotes)",
                    _ => " (these columns take no default)",
                }
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_schemas_load() {
        for kind in ReportKind::ALL {
            let schema = kind.schema();
            assert_eq!(schema.kind, kind.as_str());
            assert!(schema.column("school_year").is_some());
        }
    }

    #[test]
    fn headers_match_with_or_without_diacritics() {
        let schema = ReportKind::School.schema();
        for header in [
            "Tổng số học sinh",
            "tong so hoc sinh",
            "  TONG  SO HOC SINH ",
            "Students",
        ] {
            assert_eq!(
                schema.column_for_header(header).map(|c| c.name.as_str()),
                Some("students"),
                "{header}"
            );
        }
        assert!(schema.column_for_header("STT").is_none());
    }

    #[test]
    fn category_values_match_aliases() {
        let level = ReportKind::School.schema().column("level").expect("level column");
        assert_eq!(level.category_value("Tiểu học"), Some("primary"));
        assert_eq!(level.category_value("thcs"), Some("lower_secondary"));
        assert_eq!(level.category_value("upper_secondary"), Some("upper_secondary"));
        assert_eq!(level.category_value("kindergarten"), None);
    }

    #[test]
    fn unknown_field_in_a_schema_file_is_an_error() {
        let text = ReportKind::Content
            .schema_text()
            .replace("keys =", "colour = \"red\"\nkeys =");
        let err = ReportSchema::from_toml(&text).expect_err("unknown field must fail");
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn unknown_key_column_is_an_error() {
        let text = ReportKind::Content.schema_text().replace("\"grade\"]", "\"grades\"]");
        let err = ReportSchema::from_toml(&text).expect_err("unknown key must fail");
        assert!(err.to_string().contains("grades"), "{err}");
    }
}
