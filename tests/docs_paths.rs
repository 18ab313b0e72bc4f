//! The docs name files, and files move: this test reads `README.md` and every
//! `docs/*.md` and fails, listing each one, on
//!
//! - a markdown link to a local file or folder that does not exist;
//! - a backticked path that does not exist: a word that starts with one of
//!   the repository's folders (`runtime/`, `redis-client/`, `demo/`,
//!   `tests/`, `bench/`, `docs/`, `scripts/`), or that ends in `.rs`, `.md`
//!   or `.sh` (such a name may be relative to the page, to the repository,
//!   or the tail of a file under those folders: `hub/park.rs`, `lib.rs`).
//!
//! Fenced code blocks are skipped: they quote commands and output, not paths.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's top-level folders a backticked path may start with.
const FOLDERS: [&str; 7] = [
    "runtime/",
    "redis-client/",
    "demo/",
    "tests/",
    "bench/",
    "docs/",
    "scripts/",
];

/// Endings that make a backticked word a file name.
const ENDINGS: [&str; 3] = [".rs", ".md", ".sh"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// `README.md`, the published crates' READMEs, `CHANGELOG.md` and
/// `docs/*.md`, relative to the root.
fn pages(root: &Path) -> Vec<String> {
    let mut pages: Vec<String> = [
        "README.md",
        "runtime/README.md",
        "redis-client/README.md",
        "CHANGELOG.md",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut docs: Vec<String> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| format!("docs/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Every file and folder under the root's folders (and the root's own
/// files), as `/`-separated paths relative to the root; build output and
/// hidden folders are left out.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("a readable folder") {
            let path = entry.expect("a readable entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                found.insert(format!("{rel}/"));
                stack.push(path);
            } else {
                found.insert(rel);
            }
        }
    }
    found
}

/// Splits a line into its code spans' contents and the line with each span
/// blanked out (so that a link whose text is code is still seen as a link).
fn code_spans(line: &str) -> (Vec<String>, String) {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut rest = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            let next = line[i..].find('`').map_or(line.len(), |at| i + at);
            rest.push_str(&line[i..next]);
            i = next;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let fence = &line[i..i + run];
        let body_start = i + run;
        // The span ends at the next run of exactly as many backticks.
        let mut search = body_start;
        let mut end = None;
        while let Some(at) = line[search..].find(fence) {
            let at = search + at;
            let len = bytes[at..].iter().take_while(|&&b| b == b'`').count();
            if len == run {
                end = Some(at);
                break;
            }
            search = at + len;
        }
        match end {
            Some(end) => {
                spans.push(line[body_start..end].trim().to_owned());
                rest.push_str(&"x".repeat(end + run - i));
                i = end + run;
            }
            None => {
                // An unmatched run is literal text.
                rest.push_str(fence);
                i = body_start;
            }
        }
    }
    (spans, rest)
}

/// The targets of inline links and images, `[text](target "title")`, and of
/// reference definitions, `[label]: target`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        if let Some(close) = trimmed.find("]:") {
            if let Some(target) = trimmed[close + 2..].split_whitespace().next() {
                targets.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
            }
        }
    }
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let (target, used) = if let Some(inner) = after.strip_prefix('<') {
            match inner.find('>') {
                Some(end) => (inner[..end].to_owned(), end + 2),
                None => break,
            }
        } else {
            // Up to the `)` that closes the link, allowing balanced parens.
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = Some(i);
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let Some(end) = end else { break };
            let inside = &after[..end];
            let target = inside.split_whitespace().next().unwrap_or("").to_owned();
            (target, end + 1)
        };
        targets.push(target);
        rest = &after[used.min(after.len())..];
    }
    targets
}

/// Whether a link target names a local file (not a web page or an anchor).
fn is_local(target: &str) -> bool {
    !(target.is_empty()
        || target.starts_with('#')
        || target.contains("://")
        || target.starts_with("mailto:"))
}

/// Whether a backticked word is meant as a repository path.
fn looks_like_path(word: &str) -> bool {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-+".contains(c));
    plain
        && !word.starts_with('/')
        && (FOLDERS.iter().any(|f| word.starts_with(f))
            || ENDINGS
                .iter()
                .any(|e| word.len() > e.len() && word.ends_with(e)))
}

/// `path` (relative to `dir`, a folder of the repository) with `.` and `..`
/// resolved; `None` if it climbs out of the repository.
fn join(dir: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    let mut joined = parts.join("/");
    if path.ends_with('/') && !joined.is_empty() {
        joined.push('/');
    }
    Some(joined)
}

/// Whether `rel` (already resolved) names a file or folder of the tree.
fn exists(tree: &BTreeSet<String>, rel: &str) -> bool {
    let rel = rel.trim_end_matches('/');
    rel.is_empty() || tree.contains(rel) || tree.contains(&format!("{rel}/"))
}

/// Whether a backticked path names something: relative to the page's
/// folder, to the root, or (a bare name such as `hub/park.rs` or `lib.rs`)
/// as the tail of a path under the repository's folders.
fn path_exists(tree: &BTreeSet<String>, page_dir: &str, word: &str) -> bool {
    if join(page_dir, word).is_some_and(|p| exists(tree, &p)) || exists(tree, word) {
        return true;
    }
    if FOLDERS.iter().any(|f| word.starts_with(f)) {
        return false;
    }
    let tail = format!("/{}", word.trim_end_matches('/'));
    tree.iter().any(|path| {
        let path = path.trim_end_matches('/');
        FOLDERS.iter().any(|f| path.starts_with(f)) && path.ends_with(&tail)
    })
}

/// Every missing path named by `text` (the markdown of the page at `page`).
fn problems(tree: &BTreeSet<String>, page: &str, text: &str) -> Vec<String> {
    let page_dir = page.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut found = Vec::new();
    let mut fenced: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let at = format!("{page}:{}", number + 1);
        let start = line.trim_start();
        let marker: String = start
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        if marker.len() >= 3 && marker.chars().all(|c| c == marker.chars().next().unwrap()) {
            match &fenced {
                None => fenced = Some(marker),
                Some(open) if marker.starts_with(open.as_str()) && start.trim() == marker => {
                    fenced = None
                }
                Some(_) => {}
            }
            continue;
        }
        if fenced.is_some() {
            continue;
        }
        let (spans, rest) = code_spans(line);
        for target in link_targets(&rest) {
            if !is_local(&target) {
                continue;
            }
            let path = target.split(['#', '?']).next().unwrap_or("");
            if path.is_empty() {
                continue;
            }
            let resolved = if let Some(from_root) = path.strip_prefix('/') {
                Some(from_root.to_owned())
            } else {
                join(page_dir, path)
            };
            if !resolved.is_some_and(|p| exists(tree, &p)) {
                found.push(format!("{at}: link to `{target}`: no such file"));
            }
        }
        for span in spans {
            for word in span.split_whitespace() {
                if looks_like_path(word) && !path_exists(tree, page_dir, word) {
                    found.push(format!("{at}: `{word}`: no such file"));
                }
            }
        }
    }
    found
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let tree = tree(&root);
    let mut found = Vec::new();
    for page in pages(&root) {
        let text = fs::read_to_string(root.join(&page)).expect("a readable page");
        found.extend(problems(&tree, &page, &text));
    }
    assert!(
        found.is_empty(),
        "{} path(s) in the docs name nothing:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_links_code_and_fences() {
    let tree: BTreeSet<String> = [
        "README.md",
        "docs/",
        "docs/demo.md",
        "runtime/",
        "runtime/src/",
        "runtime/src/hub/",
        "runtime/src/hub/park.rs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let page = "\
[ok](demo.md) [ok too](../README.md#top) [web](https://example.com/x.rs) [anchor](#here)
[`runtime/src/hub.rs`](../runtime/src/hub.rs) and `hub/park.rs`, `park.rs`, `coroutine.rs`
`cargo test -p x` `runtime/src/hub/` `scripts/gone.sh --help` `Hub::park`
```text
`runtime/src/fenced.rs` [fenced](nothing.md)
```
[ref]: ../docs/missing.md
";
    let found = problems(&tree, "docs/page.md", page);
    assert_eq!(
        found,
        [
            "docs/page.md:2: link to `../runtime/src/hub.rs`: no such file",
            "docs/page.md:2: `runtime/src/hub.rs`: no such file",
            "docs/page.md:2: `coroutine.rs`: no such file",
            "docs/page.md:3: `scripts/gone.sh`: no such file",
            "docs/page.md:7: link to `../docs/missing.md`: no such file",
        ]
    );
}
