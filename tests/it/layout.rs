//! The code's own layout: no file of any crate imports, directly or through other files, a file
//! that imports it; and no source file is over 900 lines outside its tests.
//!
//! A file's imports are the paths it names — `crate::a::b`, `super::c`, `use crate::{a, b::c}`,
//! and in a `mod.rs` or `lib.rs` its own submodules (`child::f`) — each taken to the file of the
//! longest module it names, through the re-exports of `lib.rs` and `mod.rs` files. Comments and
//! a file's `#[cfg(test)]` part are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be, outside its tests.
const MAX_LINES: usize = 900;

const CRATES: [&str; 4] = ["src", "ingest/src", "warehouse/src", "dashboard/src"];

/// One source file: its module path (`a::b`; empty for the crate root) and its text without
/// comments and tests.
struct Source {
    path: PathBuf,
    module: String,
    is_parent: bool,
    text: String,
}

fn sources(root: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under the root").with_extension("");
                let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                let is_parent = matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main"));
                let module = if is_parent {
                    &parts[..parts.len() - 1]
                } else {
                    &parts[..]
                }
                .join("::");
                let text = std::fs::read_to_string(&path).expect("read a source file");
                found.push(Source {
                    path,
                    module,
                    is_parent,
                    text: without_tests(&without_comments(&text)),
                });
            }
        }
    }
    found
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text before a file's `#[cfg(test)] mod …` (its tests come last, by this project's style).
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
        .unwrap_or(lines.len());
    lines[..end].join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths that follow `prefix` in a text: `crate::a::b::Name` gives `a::b::Name`,
/// and a group `crate::{a::B, c}` gives `a::B` and `c` (its first level).
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix).map(|at| from + at) {
        // What comes before is read in the whole text: `super::super::x` is one path, not two.
        let before = text[..at].chars().next_back();
        from = at + prefix.len();
        let rest = &text[from..];
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => paths.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            paths.push(item);
        } else {
            paths.push(rest.chars().take_while(|&c| is_ident(c) || c == ':').collect());
        }
    }
    paths
        .into_iter()
        .map(|p| p.trim().trim_end_matches(':').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `pub use a::b::{C, D};` of a parent file: `C` → `a::b`, `D` → `a::b` (relative to it).
fn re_exports(source: &Source) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for statement in source.text.split(';') {
        let statement = statement.trim();
        let Some(used) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let used = used.trim_start_matches("self::").trim_start_matches("crate::");
        let (base, names) = match used.find("::{") {
            Some(at) => (
                &used[..at],
                used[at + 3..].trim_end_matches('}').split(',').collect::<Vec<_>>(),
            ),
            None => match used.rfind("::") {
                Some(at) => (&used[..at], vec![&used[at + 2..]]),
                None => continue,
            },
        };
        for name in names {
            let name = name.trim();
            if !name.is_empty() {
                found.push((name.to_string(), base.to_string()));
            }
        }
    }
    found
}

fn parent_of(module: &str) -> String {
    module.rsplit_once("::").map(|(p, _)| p.to_string()).unwrap_or_default()
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

/// Each file's imports, as indexes of the files they name.
fn imports(files: &[Source]) -> Vec<BTreeSet<usize>> {
    let index: BTreeMap<&str, usize> = files.iter().enumerate().map(|(i, f)| (f.module.as_str(), i)).collect();
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    for file in files.iter().filter(|f| f.is_parent) {
        for (name, base) in re_exports(file) {
            exported.insert(join(&file.module, &name), join(&file.module, &base));
        }
    }
    files
        .iter()
        .enumerate()
        .map(|(me, file)| {
            let mut named: Vec<String> = paths_after(&file.text, "crate::");
            // `super::` names the parent of the file's own module (for a `mod.rs` too), each
            // further `super::` the parent's parent.
            for path in paths_after(&file.text, "super::") {
                let mut base = parent_of(&file.module);
                let mut rest = path.as_str();
                while let Some(up) = rest.strip_prefix("super::") {
                    base = parent_of(&base);
                    rest = up;
                }
                named.push(join(&base, rest));
            }
            if file.is_parent {
                let own = if file.module.is_empty() {
                    String::new()
                } else {
                    format!("{}::", file.module)
                };
                for (module, _) in index.iter().filter(|(m, _)| {
                    m.strip_prefix(own.as_str())
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains("::"))
                }) {
                    let child = module.rsplit("::").next().unwrap_or(module);
                    if !paths_after(&file.text, &format!("{child}::")).is_empty()
                        || !paths_after(&file.text, &format!("self::{child}")).is_empty()
                    {
                        named.push(module.to_string());
                    }
                }
            }
            let mut targets = BTreeSet::new();
            for path in named {
                let mut path = path;
                if let Some(base) = exported.get(&path) {
                    path = base.clone();
                } else if let Some((head, tail)) = path.split_once("::")
                    && let Some(base) = exported.get(head)
                {
                    path = format!("{base}::{tail}");
                }
                let segments: Vec<&str> = path.split("::").collect();
                if let Some(target) = (1..=segments.len())
                    .rev()
                    .find_map(|n| index.get(segments[..n].join("::").as_str()))
                    && *target != me
                {
                    targets.insert(*target);
                }
            }
            targets
        })
        .collect()
}

/// The groups of files that import each other (strongly connected components of more than one).
fn circles(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        edges: &'a [BTreeSet<usize>],
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            self.order[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in self.edges[v].clone().iter() {
                match self.order[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(order) if self.on_stack[w] => self.low[v] = self.low[v].min(order),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.order[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let n = edges.len();
    let mut walk = Walk {
        edges,
        order: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if walk.order[v].is_none() {
            walk.visit(v);
        }
    }
    walk.found
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let mut found = Vec::new();
    for krate in CRATES {
        let files = sources(&repository().join(krate));
        assert!(files.len() > 3, "{krate} has its files");
        let edges = imports(&files);
        for group in circles(&edges) {
            let names: Vec<String> = group.iter().map(|&i| files[i].path.display().to_string()).collect();
            found.push(names.join(" ↔ "));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn no_source_file_is_over_900_lines_outside_its_tests() {
    let mut long = Vec::new();
    for krate in CRATES {
        for file in sources(&repository().join(krate)) {
            let lines = std::fs::read_to_string(&file.path)
                .map(|t| without_tests(&t).lines().count())
                .unwrap_or(0);
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.path.display()));
            }
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines outside tests: {long:?}");
}

#[test]
fn the_circle_finder_finds_circles() {
    let file = |module: &str, text: &str| Source {
        path: PathBuf::from(format!("{module}.rs")),
        module: module.to_string(),
        is_parent: module.is_empty(),
        text: text.to_string(),
    };
    let files = vec![
        file("", "pub mod a; pub mod b; pub mod c; pub use a::Thing;"),
        file("a", "use crate::b::B;"),
        file("b", "use crate::{c::{C, D}, Error};"),
        file("c", "fn f() -> crate::Thing { super::a::make() }"),
    ];
    let groups = circles(&imports(&files));
    assert_eq!(
        groups.len(),
        1,
        "a → b → c → a (c names a through the root's re-export)"
    );
    assert_eq!(groups[0].len(), 3);
    let acyclic = vec![
        file("", "pub mod a; pub mod b;"),
        file("a", "use crate::b::B;"),
        file("b", "pub struct B;"),
    ];
    assert!(circles(&imports(&acyclic)).is_empty());
    // `super::super::` climbs twice: x/y/z.rs naming `super::super::w` names x/w.rs, not x/y.
    let nested = vec![
        file("", "pub mod x;"),
        Source {
            is_parent: true,
            ..file("x", "mod w; mod y; fn f() { y::g() }")
        },
        file("x::w", "pub struct W;"),
        Source {
            is_parent: true,
            ..file("x::y", "mod z; pub fn g() {}")
        },
        file("x::y::z", "use super::super::w::W;"),
    ];
    assert!(circles(&imports(&nested)).is_empty(), "z names w, which names nothing");
    let climbing = vec![
        file("", "pub mod x;"),
        Source {
            is_parent: true,
            ..file("x", "mod w; mod y;")
        },
        file("x::w", "use crate::x::y::z::Z;"),
        Source {
            is_parent: true,
            ..file("x::y", "mod z;")
        },
        file("x::y::z", "use super::super::w::W;"),
    ];
    assert_eq!(circles(&imports(&climbing)).len(), 1, "w names z, z names w");
}
