//! The documents' commands run as written: every block fenced as ```` ```sh run ```` in
//! README.md, ARCHITECTURE.md and docs/ is run, line after line, by `sh -e` in a folder of its
//! own that holds `sample-data/` and `metrics.toml` (as a checkout does), with this build's
//! `khoso` first on the PATH and `KHOSO_DATA` pointing into that folder. A command that no longer
//! exists, a flag renamed, a file moved: the block fails and says which line.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A block of commands to run, and where it was found.
struct Block {
    file: PathBuf,
    line: usize,
    script: String,
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read docs/") {
            let path = entry.expect("an entry of docs/").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn runnable_blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).expect("read a document");
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_end() == "```sh run" => open = Some((index + 2, String::new())),
            None => {}
            Some(_) if line.starts_with("```") => {
                if let Some((first, script)) = open.take() {
                    blocks.push(Block {
                        file: file.to_path_buf(),
                        line: first,
                        script,
                    });
                }
            }
            Some((_, script)) => {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn every_runnable_block_of_the_documents_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let khoso = Path::new(env!("CARGO_BIN_EXE_khoso"));
    let blocks: Vec<Block> = documents(root).iter().flat_map(|f| runnable_blocks(f)).collect();
    assert!(
        blocks.iter().any(|b| b.file.ends_with("README.md")) && blocks.len() >= 3,
        "the README's commands and the operations' are marked to run"
    );
    let path = std::env::join_paths(
        std::iter::once(khoso.parent().expect("the binary's folder").to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("a PATH");
    // Each block in a folder of its own, all at once (each starts with a warehouse of its own).
    std::thread::scope(|scope| {
        let runs: Vec<_> = blocks
            .iter()
            .map(|block| scope.spawn(|| run_block(root, &path, block)))
            .collect();
        for run in runs {
            run.join().expect("a block's thread");
        }
    });
}

/// Runs a block by `sh -e -x` in a new folder beside links to `sample-data/` and `metrics.toml`.
fn run_block(root: &Path, path: &std::ffi::OsStr, block: &Block) {
    let dir = tempfile::tempdir().expect("tempdir");
    for shared in ["sample-data", "metrics.toml"] {
        std::os::unix::fs::symlink(root.join(shared), dir.path().join(shared)).expect("link a shared file");
    }
    // Each line echoed before it runs, so that a failure names its line.
    let out = Command::new("sh")
        .args(["-e", "-x", "-c", &block.script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KHOSO_DATA", dir.path().join("khoso-data"))
        .env_remove("KHOSO_CONFIG")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{}:{}: the block failed\n--- its output:\n{}\n--- its errors:\n{}",
        block.file.display(),
        block.line,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_block_is_read_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doc.md");
    std::fs::write(
        &file,
        "text\n```sh run\nkhoso init\nkhoso kpi\n```\n```sh\nkhoso serve\n```\n```sh run\necho ok\n```\n",
    )
    .expect("write");
    let blocks = runnable_blocks(&file);
    assert_eq!(blocks.len(), 2, "a block not marked to run is left");
    assert_eq!(blocks[0].script, "khoso init\nkhoso kpi\n");
    assert_eq!(blocks[0].line, 3);
    assert_eq!(blocks[1].script, "echo ok\n");
}
