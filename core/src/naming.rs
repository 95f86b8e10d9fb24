//! The naming rule of the crate docs ("Naming"), checked over the public functions' source.
//!
//! - a public function that takes the current time (`now: Instant`) ends in `_at`;
//! - a public function ending in `_with` takes a timer, by value (`timer: T`);
//! - no public function takes a timer by reference.

use std::fs;
use std::path::{Path, PathBuf};

/// Known exceptions, as `file: function`, each with the reason it is still here. (This file,
/// whose test strings break the rule on purpose, is not checked.)
const EXCEPTIONS: &[&str] = &[];

/// One public function: where it is, its name, and its parameter list.
struct Signature {
    place: String,
    name: String,
    params: String,
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("core/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("naming.rs") {
            out.push(path);
        }
    }
}

/// Every `pub fn` / `pub async fn` of `text`, with its parameters (up to the closing paren
/// that matches the opening one, across lines).
fn public_functions(relative: &str, text: &str) -> Vec<Signature> {
    let mut found = Vec::new();
    for marker in ["pub fn ", "pub async fn "] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            let after = &rest[at + marker.len()..];
            let name_end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = after[..name_end].to_owned();
            // Skip generics, then take the balanced parameter list.
            let open = after.find('(').unwrap_or(after.len());
            let mut depth = 0usize;
            let mut close = open;
            for (i, c) in after[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let params = after[open..=close.min(after.len() - 1)].to_owned();
            found.push(Signature {
                place: format!("{relative}: {name}"),
                name,
                params,
            });
            rest = &after[name_end..];
        }
    }
    found
}

/// What `text` (the file at `relative`) does against the rule.
fn check(relative: &str, text: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for f in public_functions(relative, text) {
        if EXCEPTIONS.contains(&f.place.as_str()) {
            continue;
        }
        let params: String = f.params.split_whitespace().collect::<Vec<_>>().join(" ");
        if params.contains("now: Instant") && !f.name.ends_with("_at") {
            wrong.push(format!("{} takes `now` but does not end in `_at`", f.place));
        }
        if f.name.ends_with("_with") && !params.contains("timer: T") {
            wrong.push(format!(
                "{} ends in `_with` but takes no timer by value",
                f.place
            ));
        }
        if params.contains("timer: &") {
            wrong.push(format!("{} takes its timer by reference", f.place));
        }
    }
    wrong
}

#[test]
fn every_public_function_follows_the_naming_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut wrong = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .expect("under core/src")
            .to_string_lossy()
            .replace('\\', "/");
        wrong.extend(check(
            &relative,
            &fs::read_to_string(&file).expect("readable"),
        ));
    }
    wrong.sort();
    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn the_check_finds_each_kind_of_violation() {
    let text = "pub fn try_acquire(&self, now: Instant) {}\n\
                pub async fn call_with<C, F>(\n    &self,\n    classify: C,\n    op: F,\n) {}\n\
                pub fn graceful_with<T: Timer>(&self, timer: &T, within: Duration) {}\n\
                pub fn try_acquire_at(&self, now: Instant) {}\n\
                pub fn timeout_with<T: Timer>(timer: T, d: Duration) {}";
    assert_eq!(
        check("x.rs", text),
        [
            "x.rs: try_acquire takes `now` but does not end in `_at`",
            "x.rs: graceful_with ends in `_with` but takes no timer by value",
            "x.rs: graceful_with takes its timer by reference",
            "x.rs: call_with ends in `_with` but takes no timer by value",
        ]
    );
}
