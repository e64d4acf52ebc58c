//! Who may do what, in one place. Every way in asks here: the web's role extractors, the
//! upload API and page, the review, the PostgreSQL sign-in, and the intake pipeline itself;
//! and which files each account sees ([`sees_held_file`], [`lists_submission`]).
//! Which tables a role reads is the catalogue's part ([`crate::tables::catalogue`]).
//!
//! To add a role: a variant of [`Role`], its row in [`Role::may`], and its tables'
//! [`crate::tables::catalogue::Readers`].

use serde::{Deserialize, Serialize};

use ingest::{ProvinceCode, ProvinceRegistry, ReportKind, SchoolYear};

use crate::{Error, Result};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A provincial department: uploads and sees its own province's submissions.
    Province,
    /// A ministry analyst: sees everything, queries with SQL; uploads nothing.
    Analyst,
    /// Everything, including national (`content`) uploads and approvals.
    Admin,
}

impl Role {
    /// Its name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Province => "province",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "province" => Ok(Role::Province),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Account(format!(
                "unknown role {other:?}: use province, analyst or admin"
            ))),
        }
    }
}

/// What an account may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send report files (its own province's, for a province account).
    Upload,
    /// Query the tables with SQL (on the web, the API and the PostgreSQL wire).
    Query,
    /// Approve or return submissions.
    Review,
    /// See the flags of the plausibility checks (a province account, its own province's).
    SeeFlags,
    /// Explain a flag (a province account, one of its own province's).
    Explain,
}

impl Role {
    /// Whether an account of this role may do `action` at all.
    pub fn may(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Role::Admin, _)
                | (Role::Province, Action::Upload | Action::Explain)
                | (Role::Analyst, Action::Query)
                | (_, Action::SeeFlags)
        )
    }
}

/// Why someone may not do something, in words for them (English, then Vietnamese).
pub fn refusal(role: Role, action: Action) -> (&'static str, &'static str) {
    match (role, action) {
        (Role::Analyst, Action::Upload) => (
            "an analyst account reads and queries; it cannot upload",
            "Tài khoản phân tích chỉ xem và truy vấn, không nộp báo cáo.",
        ),
        (_, Action::Query) => (
            "a province account uploads; SQL is for analyst and admin accounts",
            "Tài khoản của tỉnh dùng để nộp báo cáo; truy vấn SQL dành cho tài khoản phân tích và quản trị.",
        ),
        (_, Action::Explain) => (
            "an analyst account reads the flags; an admin or the province explains them",
            "Tài khoản phân tích chỉ xem cảnh báo; quản trị viên hoặc tỉnh ghi lời giải thích.",
        ),
        _ => (
            "only an admin account reviews submissions",
            "Chỉ tài khoản quản trị của Bộ duyệt báo cáo.",
        ),
    }
}

/// Who is acting: an account, or whoever runs the CLI on the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account's name (or the CLI's `--user`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The province a province account speaks for.
    pub province: Option<String>,
    /// Where it acts from.
    pub via: Via,
}

/// Where an actor acts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `khoso ingest`, `khoso init --sample`: the operator of the data directory.
    Cli,
    /// The web server (pages and API).
    Web,
}

impl Actor {
    /// The operator of the CLI, under the name it gives.
    pub fn operator(name: &str) -> Self {
        Self {
            name: name.to_string(),
            role: Role::Admin,
            province: None,
            via: Via::Cli,
        }
    }
}

/// A request refused, by whose fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request lacks something or says it wrongly.
    #[error("{0}")]
    BadRequest(String),
    /// The actor may not do it.
    #[error("{0}")]
    Forbidden(String),
}

impl Refusal {
    /// Its code in the audit log and the API.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Forbidden(_) => "forbidden",
        }
    }
}

/// The report kind, school year and province of an upload, as the actor may send it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadSlice {
    /// The report kind.
    pub kind: ReportKind,
    /// The school year.
    pub school_year: SchoolYear,
    /// The province (none for the national content report).
    pub province: Option<ProvinceCode>,
}

/// What an upload asks to send, as the request gave it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadAsk<'a> {
    /// `school`, `university` or `content`.
    pub kind: Option<&'a str>,
    /// A school year like 2024-2025.
    pub year: Option<&'a str>,
    /// A province code.
    pub province: Option<&'a str>,
}

/// Who may upload what: a province account its own province's provincial reports, for a
/// school year in which its code is valid; an admin anything; nobody else anything.
pub fn upload_slice(actor: &Actor, ask: UploadAsk<'_>) -> Result<UploadSlice, Refusal> {
    let kind: ReportKind = ask
        .kind
        .ok_or_else(|| Refusal::BadRequest("say which report: kind=school, university or content".into()))?
        .parse()
        .map_err(|_| Refusal::BadRequest("kind is school, university or content".into()))?;
    let school_year: SchoolYear = ask
        .year
        .ok_or_else(|| Refusal::BadRequest("say which school year: year=2024-2025".into()))?
        .parse()
        .map_err(|_| Refusal::BadRequest("year is a school year like 2024-2025".into()))?;
    if !actor.role.may(Action::Upload) {
        return Err(Refusal::Forbidden(refusal(actor.role, Action::Upload).0.into()));
    }
    let asked = ask.province.filter(|p| !p.is_empty());
    let province = match actor.role {
        Role::Province => {
            let own = actor.province.clone().unwrap_or_default();
            if !kind.is_provincial() {
                return Err(Refusal::Forbidden(
                    "the content report is national: only the ministry uploads it".into(),
                ));
            }
            if asked.is_some_and(|p| p != own) {
                return Err(Refusal::Forbidden(format!(
                    "this account uploads for province {own} only"
                )));
            }
            let registry = ProvinceRegistry::shipped();
            if !registry.list_for(school_year).iter().any(|p| p.code == own) {
                return Err(Refusal::Forbidden(format!(
                    "province code {own} is not valid in {school_year} (the provinces changed on 1 July 2025): \
                     ask the ministry for an account of the province in force"
                )));
            }
            Some(
                own.parse::<ProvinceCode>()
                    .map_err(|e| Refusal::Forbidden(format!("this account's province: {e}")))?,
            )
        }
        _ if kind.is_provincial() => Some(
            asked
                .ok_or_else(|| Refusal::BadRequest("say which province: province=01".into()))?
                .parse::<ProvinceCode>()
                .map_err(|e| Refusal::BadRequest(e.to_string()))?,
        ),
        _ => None,
    };
    Ok(UploadSlice {
        kind,
        school_year,
        province,
    })
}

/// Whether an account sees a file held for review, or decided: an admin sees every file, any
/// other account the files of its own province (its province's upload page lists them).
pub fn sees_held_file(role: Role, own_province: Option<&str>, file_province: Option<&str>) -> bool {
    role == Role::Admin || file_province == own_province
}

/// Whether a reader lists an accepted submission (`GET /api/v1/submissions`): on a public
/// dashboard every accepted file is public, so every account lists them all (no account sees
/// less than a stranger); on a private one a province account lists its own province's only.
pub fn lists_submission(private: bool, reader: Option<(Role, Option<&str>)>, file_province: Option<&str>) -> bool {
    match reader {
        Some((Role::Province, Some(own))) if private => file_province == Some(own),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, province: Option<&str>) -> Actor {
        Actor {
            name: "someone".into(),
            role,
            province: province.map(str::to_string),
            via: Via::Web,
        }
    }

    #[test]
    fn each_role_does_its_own_work() {
        let table = [
            (Role::Province, [true, false, false, true, true]),
            (Role::Analyst, [false, true, false, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        let actions = [
            Action::Upload,
            Action::Query,
            Action::Review,
            Action::SeeFlags,
            Action::Explain,
        ];
        for (role, allowed) in table {
            for (action, may) in actions.into_iter().zip(allowed) {
                assert_eq!(role.may(action), may, "{role:?} {action:?}");
            }
        }
    }

    #[test]
    fn who_sees_which_files() {
        // (role, own province, file's province): sees it held, lists it accepted on a private
        // dashboard, lists it on a public one.
        let table = [
            (Role::Admin, None, Some("01"), true, true, true),
            (Role::Admin, None, None, true, true, true),
            (Role::Province, Some("01"), Some("01"), true, true, true),
            (Role::Province, Some("01"), Some("79"), false, false, true),
            (Role::Province, Some("01"), None, false, false, true),
            (Role::Analyst, None, Some("01"), false, true, true),
            (Role::Analyst, None, None, true, true, true),
        ];
        for (role, own, file, held, private, public) in table {
            assert_eq!(sees_held_file(role, own, file), held, "held: {role:?} {own:?} {file:?}");
            assert_eq!(
                lists_submission(true, Some((role, own)), file),
                private,
                "private: {role:?} {own:?} {file:?}"
            );
            assert_eq!(
                lists_submission(false, Some((role, own)), file),
                public,
                "public: {role:?} {own:?} {file:?}"
            );
        }
        assert!(
            lists_submission(true, None, Some("01")),
            "a stranger on a private dashboard is turned away before"
        );
    }

    #[test]
    fn a_province_sends_its_own_provincial_reports_only() {
        let ask = |kind, year, province| UploadAsk {
            kind: Some(kind),
            year: Some(year),
            province,
        };
        let ha_noi = actor(Role::Province, Some("01"));
        assert_eq!(
            upload_slice(&ha_noi, ask("school", "2024-2025", None)).map(|s| s.province.map(String::from)),
            Ok(Some("01".to_string()))
        );
        assert!(matches!(
            upload_slice(&ha_noi, ask("school", "2024-2025", Some("79"))),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            upload_slice(&ha_noi, ask("content", "2024-2025", None)),
            Err(Refusal::Forbidden(_))
        ));
        // Hà Giang (02) merged into Tuyên Quang on 1 July 2025.
        let ha_giang = actor(Role::Province, Some("02"));
        assert!(upload_slice(&ha_giang, ask("school", "2024-2025", None)).is_ok());
        assert!(matches!(
            upload_slice(&ha_giang, ask("school", "2025-2026", None)),
            Err(Refusal::Forbidden(_))
        ));
        let admin = actor(Role::Admin, None);
        assert!(matches!(
            upload_slice(&admin, ask("school", "2024-2025", None)),
            Err(Refusal::BadRequest(_))
        ));
        assert_eq!(
            upload_slice(&admin, ask("content", "2024-2025", None)).map(|s| s.province),
            Ok(None)
        );
        assert!(matches!(
            upload_slice(&actor(Role::Analyst, None), ask("school", "2024-2025", Some("01"))),
            Err(Refusal::Forbidden(_))
        ));
    }
}
