//! A real S3 API for the tests: moto's server (`moto[server]` from PyPI, in the venv `.ci/run`
//! makes), started by the test on a port of its own, with a bucket per warehouse.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Data, available, python_with};

/// A running S3 server, stopped when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
    python: std::path::PathBuf,
}

impl S3Server {
    /// Starts one; none when moto is not installed here (outside CI).
    pub fn start() -> Option<Self> {
        let python = python_with("moto.server, flask, boto3");
        if !available(python.is_some(), "moto[server] (Python)") {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let python = python.expect("checked");
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let server = Self { child, port, python };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// The server's answer (status line, headers, body) to a request without a body.
    fn request(&self, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            stream,
            "{method} /{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        answer
    }

    /// Whether the object `KEY` is in the bucket (asked as a signed request, by boto3).
    pub fn holds(&self, bucket: &Bucket, key: &str) -> bool {
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3')\n\
            try:\n    s3.head_object(Bucket=sys.argv[1], Key=sys.argv[2]); print('yes')\n\
            except s3.exceptions.ClientError:\n    print('no')\n";
        let output = Command::new(&self.python)
            .args(["-c", script, &bucket.name, key])
            .envs(bucket.env())
            .output()
            .expect("python runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim() == "yes"
    }

    /// Copies every file of `folder` into `bucket` under `prefix`.
    pub fn upload_folder(&self, bucket: &Bucket, folder: &std::path::Path, prefix: &str) {
        let script = "import os, sys, boto3\n\
            s3 = boto3.client('s3')\n\
            root = sys.argv[1]\n\
            for folder, _, files in os.walk(root):\n    \
                for name in files:\n        \
                    path = os.path.join(folder, name)\n        \
                    key = sys.argv[3] + '/' + os.path.relpath(path, root).replace(os.sep, '/')\n        \
                    s3.upload_file(path, sys.argv[2], key)\n";
        let output = Command::new(&self.python)
            .args(["-c", script])
            .arg(folder)
            .args([&bucket.name, prefix])
            .envs(bucket.env())
            .output()
            .expect("python runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    /// A new bucket, and the warehouse location `s3://BUCKET/warehouse` in it.
    pub fn bucket(&self, name: &str) -> Bucket {
        let answer = self.request("PUT", name);
        assert!(answer.starts_with("HTTP/1.1 200"), "making bucket {name}: {answer}");
        Bucket {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            name: name.to_string(),
            location: format!("s3://{name}/warehouse"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A warehouse in a bucket of the test's S3 server.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The server's URL.
    pub endpoint: String,
    /// The bucket's name.
    pub name: String,
    /// `s3://BUCKET/warehouse`.
    pub location: String,
}

impl Bucket {
    /// The standard AWS variables that reach it.
    pub fn env(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "khoso-test"),
            ("AWS_SECRET_ACCESS_KEY", "khoso-test-secret"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
    }
}

impl Data for Bucket {
    fn point(&self, command: &mut Command) {
        command.env("KHOSO_DATA", &self.location).envs(self.env());
    }
}

/// Runs a test's `body` on a warehouse in a new bucket of a new S3 server, with a folder of the
/// test's own; skipped (outside CI) where moto is not installed.
pub fn in_bucket(name: &str, body: impl FnOnce(&Bucket, &std::path::Path)) {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    body(&server.bucket(name), dir.path());
}

/// Runs a test's `body` on a warehouse in a folder (`DIR/data`), with the folder `DIR`.
pub fn in_folder(body: impl FnOnce(&std::path::Path, &std::path::Path)) {
    let dir = tempfile::tempdir().expect("tempdir");
    body(&dir.path().join("data"), dir.path());
}
