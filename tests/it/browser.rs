//! A real browser: Debian's headless Chromium, driven through chromedriver (W3C WebDriver),
//! opens the overview and a KPI page of a running `khoso serve`, switches the language with the
//! page's own link, changes the school year with the page's selector, and checks that the
//! charts drew and that nothing logged an error to the console.
//!
//! Needs `chromium` and `chromedriver` on the PATH (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`). Without them the test says so and passes, except under CI (`CI` set),
//! where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::Server;

/// A chromedriver process and one browser session in it, both ended when dropped.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One WebDriver request; the answer's `value`.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().map_err(|_| format!("bad length in {line}"))?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))?;
    match json["value"].get("error") {
        Some(error) => Err(format!("{method} {path}: {error} {}", json["value"]["message"])),
        None => Ok(json["value"].clone()),
    }
}

impl Browser {
    fn start() -> Option<Browser> {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while webdriver(port, "GET", "/status", None).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium()?,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-extensions", "--no-first-run",
                         "--window-size=1200,900"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let session = browser
            .call("POST", "/session", Some(&capabilities))
            .expect("a browser session");
        browser.session = session["sessionId"].as_str().expect("session id").to_string();
        Some(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        webdriver(self.port, method, path, body)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/sync", Some(&json!({ "script": script, "args": [] })))
    }

    /// Runs `script` in the page and returns what it passes to its callback (the last argument).
    fn script_async(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/async", Some(&json!({ "script": script, "args": [] })))
    }

    /// The serious and critical violations axe-core finds on the open page (its rules of WCAG
    /// 2.1 A and AA), each as "rule: what, where".
    fn accessibility_violations(&self, axe: &str) -> Vec<String> {
        self.script(axe);
        let found = self.script_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }) \
               .then(r => done(r.violations.filter(v => ['serious', 'critical'].includes(v.impact)) \
                 .map(v => v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))) \
               .catch(e => done(['axe failed: ' + e]));",
        );
        found
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("axe answered {found}")])
    }

    fn click(&self, css: &str) {
        let element = self.session_call(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        );
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string();
        self.session_call("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Waits until `script` returns true.
    fn wait_for(&self, script: &str) {
        let started = Instant::now();
        while self.script(script) != Value::Bool(true) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {script}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sizes the window (CSS pixels).
    fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        );
    }

    /// Saves a screenshot of the window under `target/screenshots/NAME.png`, for people to look
    /// at.
    fn screenshot(&self, name: &str) {
        let encoded = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot");
    }

    /// The console's messages since the last call.
    fn console(&self) -> Vec<Value> {
        self.session_call("POST", "/se/log", Some(&json!({ "type": "browser" })))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Standard base64 (a WebDriver screenshot), padding and line breaks ignored.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.call("DELETE", &format!("/session/{}", self.session), None).ok();
        }
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(|name| {
            let found = Command::new("which").arg(name).output().ok()?;
            found
                .status
                .success()
                .then(|| String::from_utf8_lossy(&found.stdout).trim().to_string())
        })
}

/// How many charts on the page have been laid out with a size.
const DRAWN_CHARTS: &str =
    "return Array.from(document.querySelectorAll('svg')).filter(s => s.getBoundingClientRect().width > 0).length";

/// Whether chromium and chromedriver are here; under CI they must be.
fn browser_installed() -> bool {
    let installed = chromium().is_some()
        && Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromedriver (.ci/run does)"
        );
        eprintln!("skipped: no chromium/chromedriver here (apt-get install chromium chromium-driver)");
    }
    installed
}

#[test]
fn headless_chromium_opens_the_dashboard() {
    if !browser_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = crate::generated_with_learners(dir.path(), "0.01", "5");
    let server = Server::start(&data);
    let base = format!("http://{}", server.address);
    let browser = Browser::start().expect("chromedriver starts");

    browser.open(&format!("{base}/"));
    assert_eq!(browser.script("return document.documentElement.lang"), "vi");
    // The reported KPIs and the six from learner records (no teacher records are loaded).
    let cards = browser.script("return document.querySelectorAll('.card').length");
    assert_eq!(cards, 23);
    let drawn = browser.script(DRAWN_CHARTS).as_u64().unwrap_or(0);
    assert!(drawn >= 23, "{drawn} sparklines drawn");

    // The page's own toggle switches to English, and the cookie keeps it on the next page.
    browser.click("a.lang");
    browser.wait_for("return document.documentElement.lang === 'en'");
    let heading = browser.script("return document.querySelector('h1').textContent");
    assert_eq!(heading, "Progress on the targets of Decision 131");
    browser.open(&format!("{base}/kpi/T1_pupils?list=province"));
    assert_eq!(browser.script("return document.documentElement.lang"), "en");
    let drawn = browser.script(DRAWN_CHARTS).as_u64().unwrap_or(0);
    assert!(drawn >= 4, "trend, ranking, map and breakdowns: {drawn}");
    let tiles = browser.script("return document.querySelectorAll('svg.tiles rect').length");
    assert_eq!(tiles, 63);
    let text = browser.script("return document.body.innerText").to_string();
    assert!(text.contains("Provinces ranked"), "{text}");

    // The year selector reloads the page for the year chosen.
    browser.script(
        "const s = document.querySelector('select[name=year]'); s.value = '2023-2024'; \
         s.dispatchEvent(new Event('change'));",
    );
    browser.wait_for("return location.search.includes('year=2023-2024')");
    browser.wait_for("return document.readyState === 'complete'");
    let ranked = browser.script("return document.querySelectorAll('section h2')[1].textContent");
    assert_eq!(ranked, "Provinces ranked — 2023-2024");
    assert!(browser.script(DRAWN_CHARTS).as_u64().unwrap_or(0) >= 4);

    // Back to Vietnamese on the same page: the year and the list stay.
    browser.click("a.lang");
    browser.wait_for("return document.documentElement.lang === 'vi'");
    let search = browser.script("return location.search");
    assert_eq!(search, "?lang=vi&year=2023-2024&list=province");
    browser.open(&format!("{base}/province/01"));
    assert!(browser.script(DRAWN_CHARTS).as_u64().unwrap_or(0) >= 10);

    // The breakdowns by grade and gender, at a phone's width and a desktop's: every bar a row
    // of at least 20 pixels and its text at least 10, screenshots kept for people to look at.
    for (width, name) in [(390, "phone"), (1280, "desktop")] {
        browser.resize(width, 900);
        browser.open(&format!(
            "{base}/kpi/records_pupils_online_ready?year=2024-2025&lang=en"
        ));
        let charts = browser.script(
            "return [...document.querySelectorAll('svg.breakdown')].map(s => { const r = s.getBoundingClientRect(); \
             return [r.width, r.height, s.querySelectorAll('rect').length, s.viewBox.baseVal.width]; })",
        );
        let charts = charts.as_array().cloned().unwrap_or_default();
        assert_eq!(charts.len(), 3, "by level, grade and gender: {charts:?}");
        for chart in &charts {
            let number = |i: usize| chart[i].as_f64().unwrap_or(0.0);
            let (shown, height, bars, drawn) = (number(0), number(1), number(2), number(3));
            assert!(bars >= 2.0 && shown <= f64::from(width), "{chart:?}");
            let scale = shown / drawn;
            assert!(height / bars >= 20.0, "{name}: bars {:.1} px high", height / bars);
            assert!(17.0 * scale >= 10.0, "{name}: text {:.1} px", 17.0 * scale);
        }
        browser.script("document.querySelector('svg.breakdown').scrollIntoView()");
        browser.screenshot(&format!("breakdowns-{name}"));
    }

    // The boundary map on a KPI page, the overview (device access unless another KPI is picked)
    // and a province page (a locator), at a phone's width and a desktop's: every province of
    // the list a link with a shape on the screen, the map within the window.
    for (width, name) in [(390, "phone"), (1280, "desktop")] {
        browser.resize(width, 900);
        for (path, provinces, page) in [
            ("/kpi/T1_pupils?list=province&year=2024-2025", 63, "kpi"),
            ("/?year=2024-2025", 63, "overview"),
            ("/kpi/T1_pupils?list=province_2025&year=2025-2026", 34, "kpi-2025"),
            ("/province/79?year=2025-2026", 34, "province"),
        ] {
            browser.open(&format!("{base}{path}"));
            let map = browser.script(
                "const s = document.querySelector('svg.boundary-map'); const r = s.getBoundingClientRect(); \
                 const shapes = [...s.querySelectorAll('a path')].filter(p => { \
                   const b = p.getBoundingClientRect(); return b.width > 0 && b.height > 0; }); \
                 return [s.querySelectorAll('a').length, shapes.length, r.width, \
                   ['Hoang Sa', 'Truong Sa'].every(name => s.textContent.normalize('NFD') \
                     .replace(/[\\u0300-\\u036f]/g, '').includes(name))]",
            );
            let number = |i: usize| map[i].as_f64().unwrap_or(0.0);
            assert_eq!(number(0), f64::from(provinces), "{page} at {name}: {map}");
            assert_eq!(number(1), f64::from(provinces), "{page} at {name}: every shape drawn");
            assert!(
                number(2) > 100.0 && number(2) <= f64::from(width),
                "{page} at {name}: {map}"
            );
            assert_eq!(map[3], json!(true), "both archipelagos on {page}");
            browser.script("document.querySelector('svg.boundary-map').scrollIntoView()");
            browser.screenshot(&format!("map-{page}-{name}"));
        }
        let picked = browser.script("return document.querySelector('select[name=map]') === null");
        assert_eq!(picked, json!(true), "a province page has no KPI to pick");
    }
    browser.open(&format!("{base}/?year=2024-2025"));
    let picked = browser.script("return document.querySelector('select[name=map]').value");
    assert_eq!(picked, "records_device_access");

    // Signing in with the page's own form: a browser says the form is the server's own
    // (Origin, Sec-Fetch-Site), which the sign-in takes; another site's form it refuses.
    let token = crate::account(&data, "so-gd-ha-noi", "province", Some("01"));
    browser.open(&format!("{base}/sign-in"));
    browser.script(&format!(
        "document.querySelector('input[name=token]').value = {}",
        json!(token)
    ));
    browser.click("form.portal button");
    browser.wait_for("return location.pathname === '/upload'");

    // axe-core (from npm, under target/node) finds no serious or critical violation on the
    // pages people open first, signed in as a province.
    let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node/node_modules/axe-core/axe.min.js");
    if crate::available(axe.exists(), "axe-core (npm, under target/node)") {
        let axe = std::fs::read_to_string(&axe).expect("axe-core");
        browser.resize(1280, 900);
        for path in [
            "/?year=2024-2025",
            "/kpi/T1_pupils?list=province&year=2024-2025",
            "/province/79?year=2025-2026",
            "/completeness",
            "/quality?year=2024-2025",
            "/upload",
            "/catalogue",
        ] {
            browser.open(&format!("{base}{path}"));
            let violations = browser.accessibility_violations(&axe);
            assert!(violations.is_empty(), "{path}: {violations:#?}");
        }
        browser.open(&format!("{base}/quality?year=2024-2025&lang=en"));
        let heading = browser.script("return document.querySelector('h1').textContent");
        assert_eq!(heading, "Figures that look wrong — 2024-2025");
        browser.screenshot("quality-desktop");
    }

    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");
}

/// The text of each page of a PDF file, read with pypdf (`$KHOSO_TEST_PYTHON`, see `.ci/run`).
fn pdf_pages(pdf: &Path) -> Vec<String> {
    let python = std::env::var("KHOSO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let read = Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys, pypdf\n\
             print(json.dumps([p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages]))",
        )
        .arg(pdf)
        .output()
        .expect("python runs");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    serde_json::from_slice(&read.stdout).expect("the pages' text")
}

#[test]
fn a_province_report_prints_on_a4_without_cutting_a_chart() {
    if !browser_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = crate::generated(dir.path(), "0.02", "2023-2024..2024-2025", "3", true);
    let metrics = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics.toml")).expect("metrics");
    // The KPIs split by the provinces of 2025.
    let kpis = metrics
        .split("[[kpi]]")
        .skip(1)
        .filter(|kpi| {
            kpi.lines()
                .any(|l| l.starts_with("dimensions") && l.contains("\"province_2025\""))
        })
        .count();

    // Hồ Chí Minh City of 2025 (79, which Bình Dương and Bà Rịa - Vũng Tàu joined), in English;
    // Bình Dương (74) as reported up to 2024-2025, in Vietnamese.
    let report = |args: &[&str], out: &Path| {
        let made = crate::run(crate::khoso(&data).arg("report").args(args).arg("--out").arg(out));
        assert!(made.status.success(), "{}", crate::stderr(&made));
        std::fs::read_to_string(out).expect("the report")
    };
    let hcmc = dir.path().join("79.html");
    let html = report(&["--province", "79", "--year", "2024-2025", "--lang", "en"], &hcmc);
    assert!(
        html.contains("Ho Chi Minh") && html.contains("school year 2024-2025"),
        "{html}"
    );
    assert_eq!(html.matches("<tr class=\"kpi\"").count(), kpis, "every KPI");
    assert!(
        html.contains("The files the figures rest on") && html.contains(".csv"),
        "the files"
    );
    assert!(html.contains("@page { size: A4"));
    let merged = report(
        &["--province", "74", "--list", "province", "--year", "2024-2025"],
        &dir.path().join("74.html"),
    );
    assert!(
        merged.contains("Bình Dương (74)") && merged.contains("Hồ Chí Minh"),
        "{merged}"
    );
    let after = crate::run(
        crate::khoso(&data)
            .args(["report", "--province", "74", "--list", "province"])
            .args(["--year", "2025-2026", "--out"])
            .arg(dir.path().join("none.html")),
    );
    assert!(!after.status.success(), "74 is no province of 2025-2026");

    // Printed by Chromium on A4: a few pages, and each KPI's row — its name and, under its
    // chart, its id again — on one page.
    let Some(browser) = Browser::start() else {
        panic!("chromedriver did not start");
    };
    browser.open(&format!("file://{}", hcmc.display()));
    let printed = browser.session_call(
        "POST",
        "/print",
        Some(&json!({ "page": { "width": 21.0, "height": 29.7 }, "background": true })),
    );
    let pdf = base64_decode(printed.as_str().unwrap_or_default());
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let file = dir.path().join("79.pdf");
    std::fs::write(&file, pdf).expect("pdf");
    let pages = pdf_pages(&file);
    assert!(
        (1..=kpis.div_ceil(3) + 2).contains(&pages.len()),
        "{} pages",
        pages.len()
    );
    let ids: Vec<&str> = html
        .split("<tr class=\"kpi\" id=\"kpi-")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    for id in ids {
        let on: Vec<usize> = pages
            .iter()
            .enumerate()
            .flat_map(|(page, text)| std::iter::repeat_n(page, mentions(text, id)))
            .collect();
        assert!(on.len() >= 2, "{id} twice in the PDF: {on:?}");
        assert!(
            on.windows(2).all(|w| w[0] == w[1]),
            "{id}'s row is cut across pages {on:?}"
        );
    }
}

/// How often `id` is in `text` as a whole word (`T1_pupils`, not inside `T1_pupils_records`).
fn mentions(text: &str, id: &str) -> usize {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(id)
        .filter(|(at, _)| !word(text[..*at].chars().next_back()) && !word(text[at + id.len()..].chars().next()))
        .count()
}
