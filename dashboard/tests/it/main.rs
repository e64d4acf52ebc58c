//! The dashboard's routes driven in-process (`oneshot`): every page and API route, both
//! languages, HTML escaping, 404s, and the same numbers on the page as in the API.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dashboard::AppState;
use dashboard::i18n::Words;
use http_body_util::BodyExt;
use ingest::generate::{GenerateOptions, generate};
use ingest::{ReportKind, SliceHint};
use tower::ServiceExt;
use warehouse::Warehouse;
use warehouse::intake::steps::{Delivery, Intent, Outcome};
use warehouse::kpi::metrics::Metrics;
use warehouse::people::rights::Actor;

fn metrics_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics.toml")).expect("metrics.toml")
}

/// The one report left out of the test warehouse, so that completeness has a gap to show.
const LEFT_OUT: &str = "school-96-2024-2025";

/// A warehouse of generated reports (two school years, Cà Mau's 2024-2025 school report
/// missing), built once for all tests.
fn data_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        // Built on a thread of its own: the tests' runtime cannot block on another.
        std::thread::spawn(move || build(&root))
            .join()
            .expect("warehouse built");
        dir
    })
    .path()
}

fn build(dir: &Path) {
    {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let options = GenerateOptions {
                scale: 0.01,
                first_year: "2023-2024".parse().expect("year"),
                last_year: "2024-2025".parse().expect("year"),
                seed: 3,
                out: dir.join("reports"),
                kinds: ReportKind::REPORTS.to_vec(),
                write_from: None,
            };
            let summary = generate(&options, |_| {}).expect("generate");
            let warehouse = Warehouse::init(&dir.join("data")).await.expect("init");
            let deliveries = summary
                .files
                .iter()
                .filter_map(|file| {
                    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    let kind = ReportKind::ALL.into_iter().find(|k| name.starts_with(k.as_str()))?;
                    (!name.starts_with(LEFT_OUT)).then(|| Delivery::file(file.clone(), kind, SliceHint::default()))
                })
                .collect();
            let received = warehouse
                .intake(false)
                .receive(
                    deliveries,
                    &Actor::operator("test"),
                    Intent::Commit,
                    chrono::DateTime::UNIX_EPOCH,
                )
                .await
                .expect("commit");
            assert!(received.iter().all(|r| matches!(r.outcome, Outcome::Committed(_))));
        });
    }
}

async fn state_with(metrics: &str) -> AppState {
    let metrics = Metrics::load(metrics).await.expect("valid metrics");
    let warehouse = Warehouse::open(&data_dir().join("data"))
        .await
        .expect("open")
        .with_metrics(Arc::new(metrics));
    AppState::new(warehouse)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get_with(state: AppState, uri: &str, cookie: Option<&str>) -> Answer {
    let headers: Vec<(header::HeaderName, &str)> = cookie.map(|c| (header::COOKIE, c)).into_iter().collect();
    get_with_headers(state, uri, &headers).await
}

async fn get_with_headers(state: AppState, uri: &str, headers: &[(header::HeaderName, &str)]) -> Answer {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = dashboard::app(state)
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(uri: &str) -> Answer {
    get_with(state_with(&metrics_text()).await, uri, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn overview_in_both_languages() {
    let vi = get("/").await;
    assert_eq!(vi.status, StatusCode::OK);
    assert!(
        vi.body.contains("Tiến độ các chỉ tiêu của Quyết định 131"),
        "{}",
        vi.body
    );
    // The reported KPIs as cards; those counted from records, with no records loaded, named
    // below them.
    assert_eq!(vi.body.matches("class=\"card\"").count(), 17);
    let without = vi
        .body
        .split("class=\"without\"")
        .nth(1)
        .expect("the KPIs without figures");
    assert_eq!(
        without
            .split("</p>")
            .next()
            .unwrap_or("")
            .matches("/kpi/records_")
            .count(),
        9
    );
    assert!(vi.body.contains("Học sinh đủ điều kiện học trực tuyến"));
    assert!(vi.body.matches("<svg").count() >= 17, "a sparkline per card");

    let en = get("/?lang=en").await;
    assert!(en.body.contains("Progress on the targets of Decision 131"));
    assert!(en.body.contains("Pupils able to study online"));
    let cookie = en
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.starts_with("lang=en"), "{cookie}");
    let remembered = get_with(state_with(&metrics_text()).await, "/catalogue", Some("lang=en")).await;
    assert!(remembered.body.contains("KPI catalogue"), "the cookie keeps English");
}

#[tokio::test(flavor = "multi_thread")]
async fn kpi_page_catalogue_csv_and_health() {
    let page = get("/kpi/T1_pupils?year=2024-2025").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.matches("<svg").count() >= 2, "trend and ranking charts");
    assert!(page.body.contains("Hà Nội (01)"), "provinces by name");
    let merged = get("/kpi/T1_pupils?year=2023-2024&list=province_2025").await;
    assert!(merged.body.contains("Bắc Ninh (24)"));
    assert!(!merged.body.contains("(27)"), "old 27 is inside the new 24");

    let catalogue = get("/catalogue").await;
    for id in ["T1_pupils", "T4_online_degrees", "internet_for_teaching"] {
        assert!(catalogue.body.contains(id), "{id}");
    }
    let csv = get("/kpi/T1_pupils.csv?list=province").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.body.starts_with("kpi_id,dimension,unit,school_year,numerator"),
        "{}",
        &csv.body[..80.min(csv.body.len())]
    );
    let per_province = csv
        .body
        .lines()
        .filter(|l| l.starts_with("T1_pupils,province,"))
        .count();
    assert_eq!(
        per_province,
        63 + 62,
        "63 provinces in 2023-2024, 62 in 2024-2025 (Cà Mau left out)"
    );
    assert_eq!(get("/healthz").await.body, "ok");
    assert!(get("/static/khoso.css").await.body.contains("@media print"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kpis_and_pages_are_404() {
    let page = get("/kpi/T99").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Không tìm thấy"));
    assert_eq!(get("/nowhere").await.status, StatusCode::NOT_FOUND);
    let api = get("/api/v1/kpis/T99").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("json error");
    assert_eq!(json["code"], "not_found");
    let bad = get("/api/v1/kpis/T3_repository_coverage?by=province").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(get("/?year=2024").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_escaped() {
    let hostile = metrics_text().replacen(
        "name_vi = \"Học sinh đủ điều kiện học trực tuyến\"",
        "name_vi = \"<script>alert(1)</script>\"",
        1,
    );
    let page = get_with(state_with(&hostile).await, "/", None).await;
    assert!(!page.body.contains("<script>alert(1)"), "raw script in the page");
    assert!(
        page.body.contains("&#60;script&#62;alert(1)") || page.body.contains("&lt;script&gt;alert(1)"),
        "escaped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_api_number() {
    let api = get("/api/v1/kpis?year=2024-2025").await;
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("json");
    let values = json["values"].as_array().expect("values");
    assert_eq!(values.len(), 17);
    let t1 = values.iter().find(|v| v["kpi_id"] == "T1_pupils").expect("T1_pupils");
    let value = t1["value"].as_f64().expect("value");
    let shown = dashboard::i18n::Lang::Vi.percent(Some(value));
    let page = get("/?year=2024-2025").await;
    assert!(
        page.body.contains(&format!("<p class=\"value\">{shown}</p>")),
        "{shown} on the overview"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provinces_submissions_and_openapi() {
    let provinces: Vec<serde_json::Value> = serde_json::from_str(&get("/api/v1/provinces").await.body).expect("json");
    assert_eq!(provinces.len(), 63 + 34);
    let bac_ninh_old = provinces
        .iter()
        .find(|p| p["code"] == "27" && p["valid_to"].is_string())
        .expect("old 27");
    assert_eq!(bac_ninh_old["province_2025_code"], "24");
    let submissions: Vec<serde_json::Value> =
        serde_json::from_str(&get("/api/v1/submissions").await.body).expect("json");
    assert!(submissions.len() > 60, "{} submissions", submissions.len());
    assert!(
        submissions
            .iter()
            .all(|s| s["sha256"].as_str().is_some_and(|h| h.len() == 64))
    );
    let openapi: serde_json::Value = serde_json::from_str(&get("/api/v1/openapi.json").await.body).expect("json");
    for path in [
        "/api/v1/kpis",
        "/api/v1/kpis/{id}",
        "/api/v1/provinces",
        "/api/v1/submissions",
        "/api/v1/submissions/{id}/approve",
        "/api/v1/submissions/{id}/return",
        "/api/v1/quality",
        "/api/v1/quality/explanations",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
}

/// The KPI's value for one unit as the API gives it.
async fn api_value(kpi: &str, by: &str, unit: &str, year: &str) -> Option<f64> {
    let answer = get(&format!("/api/v1/kpis/{kpi}?by={by}&year={year}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    json["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|v| v["unit"] == unit)
        .and_then(|v| v["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn kpi_page_has_map_and_breakdowns() {
    let old = get("/kpi/T1_pupils?year=2024-2025&list=province").await;
    let tiles = |body: &str| {
        let start = body.find("class=\"tiles\"").expect("tile map");
        let end = start + body[start..].find("</svg>").expect("end of map");
        body[start..end].matches("<rect").count()
    };
    assert_eq!(tiles(&old.body), 63, "the 63 provinces of 2024-2025");
    assert!(
        old.body
            .contains("href=\"/province/96?year=2024-2025&amp;list=province\"")
    );
    let new = get("/kpi/T1_pupils?year=2024-2025&list=province_2025").await;
    assert_eq!(tiles(&new.body), 34, "the 34 provinces");
    for heading in [
        "Theo cấp học",
        "Tiểu học",
        "Trung học cơ sở",
        "Theo loại hình",
        "Công lập",
    ] {
        assert!(old.body.contains(heading), "{heading}");
    }
    let english = get("/kpi/T1_pupils?year=2024-2025&lang=en").await;
    assert!(english.body.contains("By level") && english.body.contains("Lower secondary"));
    // A KPI split by nothing but the nation has neither map nor ranking.
    let national = get("/kpi/T3_repository_coverage").await;
    assert_eq!(national.status, StatusCode::OK);
    assert!(!national.body.contains("class=\"tiles\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn province_page_against_the_nation() {
    let page = get("/province/24?year=2023-2024").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1>Bắc Ninh (24)</h1>"), "the 2025 province");
    let ours = api_value("T1_pupils", "province_2025", "24", "2023-2024").await;
    let national = api_value("T1_pupils", "national", "VN", "2023-2024").await;
    let vi = dashboard::i18n::Lang::Vi;
    let row = page
        .body
        .split("<tr>")
        .find(|r| r.contains("/kpi/T1_pupils?"))
        .expect("T1_pupils row");
    assert!(
        row.contains(&format!("<td class=\"value\">{}</td>", vi.percent(ours))),
        "{row}"
    );
    assert!(row.contains(&format!("<td>{}</td>", vi.percent(national))), "{row}");
    assert!(row.contains("<svg"), "a trend");
    // The submissions of both provinces merged into the new 24, superseded ones marked.
    for file in ["school-24-2023-2024", "school-27-2023-2024", "school-24-2024-2025"] {
        assert!(page.body.contains(file), "{file}");
    }
    assert!(page.body.contains("Bắc Giang (24)") && page.body.contains("Bắc Ninh (27)"));

    let old = get("/province/27?list=province&lang=en").await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(old.body.contains("<h1>Bac Ninh (27)</h1>"), "as reported, in English");
    assert!(old.body.contains("school-27-2024-2025") && !old.body.contains("school-24-2024-2025"));
    assert!(old.body.contains("Submissions") && old.body.contains("Trend (dashed: Viet Nam)"));
    assert_eq!(get("/province/99").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get("/province/%3Cscript%3E").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn region_page_lists_its_provinces() {
    let page = get("/region/RRD?year=2024-2025&lang=en").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1>Red River Delta</h1>"));
    let ours = api_value("T1_pupils", "region", "RRD", "2024-2025").await;
    let en = dashboard::i18n::Lang::En;
    assert!(
        page.body
            .contains(&format!("<td class=\"value\">{}</td>", en.percent(ours)))
    );
    for province in ["Ha Noi (01)", "Hai Phong (31)", "Ninh Binh (37)"] {
        assert!(page.body.contains(province), "{province}");
    }
    assert_eq!(get("/region/XX").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn completeness_shows_the_missing_report() {
    let page = get("/completeness?year=2024-2025").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("62/63"), "62 of 63 school reports");
    let missing = page
        .body
        .split("<tr>")
        .find(|r| r.contains("Cà Mau (96)"))
        .expect("Cà Mau");
    assert!(missing.contains("class=\"missing\""), "{missing}");
    let reported = page
        .body
        .split("<tr>")
        .find(|r| r.contains("Hà Nội (01)"))
        .expect("Hà Nội");
    assert!(
        reported.contains("class=\"reported\"") && reported.contains("test"),
        "{reported}"
    );
    let earlier = get("/completeness?year=2023-2024&lang=en").await;
    assert!(earlier.body.contains("63/63") && earlier.body.contains("Reporting completeness"));
    let after = get("/completeness?year=2025-2026").await;
    assert!(
        after.body.contains("0/34"),
        "nothing reported for a year with no data yet"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn etag_answers_not_modified() {
    let first = get("/kpi/T1_pupils").await;
    let etag = first
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .expect("etag");
    assert!(first.headers.get(header::LAST_MODIFIED).is_some());
    assert_eq!(
        first.headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    let again = get_with_headers(
        state_with(&metrics_text()).await,
        "/kpi/T1_pupils",
        &[(header::IF_NONE_MATCH, etag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    let other_page = get("/kpi/T1_teachers").await;
    assert_ne!(
        other_page.headers.get(header::ETAG).and_then(|v| v.to_str().ok()),
        Some(etag)
    );
    let english = get_with(state_with(&metrics_text()).await, "/kpi/T1_pupils", Some("lang=en")).await;
    assert_ne!(
        english.headers.get(header::ETAG).and_then(|v| v.to_str().ok()),
        Some(etag)
    );
    // Other metrics give other figures: the tag, and so the ETag, changes.
    let edited = metrics_text().replacen("tolerance = ", "tolerance = 0.5 # ", 1);
    let changed = get_with(state_with(&edited).await, "/kpi/T1_pupils", None).await;
    assert_ne!(
        changed.headers.get(header::ETAG).and_then(|v| v.to_str().ok()),
        Some(etag)
    );
    let api = get("/api/v1/kpis").await;
    assert!(api.headers.get(header::ETAG).is_some(), "the API is revalidated too");
}
