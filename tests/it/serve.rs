//! `khoso serve` as a process: it answers on the address it prints, and a commit made by
//! `khoso ingest` in another process shows on the next request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use crate::{corpus, khoso, run, stderr};

/// A plain HTTP/1.0 GET (no chunked answers); the body of the answer.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn t1_national_2024(address: &str) -> f64 {
    let body = http_get(address, "/api/v1/kpis/T1_pupils?year=2024-2025");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    json["values"][0]["value"].as_f64().expect("a value")
}

#[test]
fn a_commit_from_another_process_shows_on_the_next_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(run(khoso(&data).arg("init")).status.success());
    let first = run(khoso(&data)
        .args(["ingest", "--kind", "school"])
        .arg(corpus("good_utf8_no_bom.csv")));
    assert!(first.status.success(), "{}", stderr(&first));

    let mut server = khoso(&data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let address = lines
        .find_map(|line| {
            let line = line.ok()?;
            let start = line.find("http://")? + "http://".len();
            Some(line[start..].split('/').next()?.to_string())
        })
        .expect("the server prints its address");

    // 2,500 of 3,684 pupils able to study online.
    let before = t1_national_2024(&address);
    assert!((before - 100.0 * 2500.0 / 3684.0).abs() < 1e-9, "{before}");
    assert!(http_get(&address, "/").contains("Học sinh đủ điều kiện học trực tuyến"));

    let text = std::fs::read_to_string(corpus("good_utf8_no_bom.csv")).expect("corpus");
    let fixed = dir.path().join("fixed.csv");
    std::fs::write(&fixed, text.replacen(",800,", ",1000,", 1)).expect("write");
    let second = run(khoso(&data).args(["ingest", "--kind", "school"]).arg(&fixed));
    assert!(second.status.success(), "{}", stderr(&second));
    let after = t1_national_2024(&address);
    assert!((after - 100.0 * 2700.0 / 3684.0).abs() < 1e-9, "{after}");

    server.kill().ok();
    server.wait().ok();
}
