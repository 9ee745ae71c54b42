//! The documentation keeps up with the code:
//!
//! - README.md's "The state machine" diagram has exactly the states of
//!   `statemachine/promotion.asl.json` (nested Parallel/Map states included) and exactly its
//!   transitions: `Next`, `Choices[].Next` and `Default` drawn `-->`, `Catch[].Next` drawn `-.->`
//!   and labelled with the errors it catches;
//! - every repository path the documents cite (markdown links, backticked paths, paths under a
//!   top-level directory) exists;
//! - every `cargo test -p PACKAGE FILTER` the documents give names a workspace package and runs
//!   at least one test;
//! - code comments cite the design documents where they live: docs/DESIGN.md and
//!   docs/ARCHITECTURE.md.
//!
//! Plain file reading and `serde_json`: nothing to start, nothing to install.

use crate::support::pipeline::root;
use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// The README section that holds the diagram.
const DIAGRAM_HEADING: &str = "## The state machine";
/// The definition it draws.
const DEFINITION: &str = "statemachine/promotion.asl.json";

/// Documents whose citations are checked; `true`: the document must exist. Every other
/// `docs/*.md` is checked too.
const DOCUMENTS: &[(&str, bool)] = &[
    ("README.md", true),
    ("docs/DESIGN.md", true),
    ("docs/ARCHITECTURE.md", true),
    ("functions/README.md", true),
    ("infra/README.md", true),
    ("statemachine/README.md", false),
    ("bench/README.md", false),
];

/// Top-level directories a cited path may start with (besides those that exist): a path under
/// one of these names is a citation even when the directory is gone.
const TOP_LEVEL: &[&str] = &[
    ".ci",
    "bench",
    "crates",
    "docs",
    "functions",
    "infra",
    "scripts",
    "statemachine",
    "tests",
];

/// Project-local tools and build output: cited, never committed.
const IGNORED_TOP_LEVEL: &[&str] = &[".work", "target", ".git"];

/// Citations of documents that live beside the repository, not in it (named from the root).
const OUTSIDE_THE_REPOSITORY: &[&str] = &["../shared/DESIGN.md"];

/// File types a backticked `dir/file.ext` names even outside a top-level directory.
const FILE_TYPES: &[&str] = &[
    "md", "rs", "sh", "json", "yaml", "yml", "toml", "py", "mjs", "js", "txt",
];

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))
}

// ------------------------------------------------------------------------------------------------
// (a) the state machine diagram
// ------------------------------------------------------------------------------------------------

/// A transition: from, to, and whether it is a `Catch` (dashed in the diagram).
type Edge = (String, String, bool);

/// States and transitions, of the definition or of the diagram.
#[derive(Debug, Default)]
struct Graph {
    states: BTreeSet<String>,
    edges: BTreeSet<Edge>,
    /// Definition: the errors each Catch edge catches. Diagram: each edge's labels.
    labels: BTreeMap<Edge, BTreeSet<String>>,
}

/// Every state of `states` (recursing into Parallel branches and Map processors) and its
/// transitions.
fn collect_states(states: &serde_json::Map<String, Value>, graph: &mut Graph) {
    for (name, state) in states {
        graph.states.insert(name.clone());
        let mut to = |next: &Value, catch: bool, errors: &[Value]| {
            let next = next
                .as_str()
                .unwrap_or_else(|| panic!("{DEFINITION}: {name}: a Next that is not a string"));
            let edge = (name.clone(), next.to_owned(), catch);
            graph.edges.insert(edge.clone());
            let names = errors.iter().filter_map(Value::as_str).map(str::to_owned);
            graph.labels.entry(edge).or_default().extend(names);
        };
        if let Some(next) = state.get("Next") {
            to(next, false, &[]);
        }
        for rule in state
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            to(&rule["Next"], false, &[]);
        }
        if let Some(default) = state.get("Default") {
            to(default, false, &[]);
        }
        for catcher in state
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let errors = catcher["ErrorEquals"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            to(&catcher["Next"], true, &errors);
        }
        for branch in state
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = branch.get("States").and_then(Value::as_object) {
                collect_states(s, graph);
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(s) = state
                .get(key)
                .and_then(|p| p.get("States"))
                .and_then(Value::as_object)
            {
                collect_states(s, graph);
            }
        }
    }
}

fn definition_graph() -> Graph {
    let def: Value = serde_json::from_str(&read(DEFINITION))
        .unwrap_or_else(|e| panic!("{DEFINITION} is not JSON: {e}"));
    let states = def["States"]
        .as_object()
        .unwrap_or_else(|| panic!("{DEFINITION} has no States"));
    let mut graph = Graph::default();
    collect_states(states, &mut graph);
    graph
}

/// The first ```mermaid block under `heading` (up to the next `#`/`##` heading).
fn mermaid_block(markdown: &str, heading: &str) -> Result<String, String> {
    let mut lines = markdown.lines().skip_while(|l| l.trim_end() != heading);
    if lines.next().is_none() {
        return Err(format!("no {heading:?} section"));
    }
    let mut block: Option<Vec<&str>> = None;
    for line in lines {
        match &mut block {
            None if line.starts_with("## ") || line.starts_with("# ") => break,
            None if line.trim_start().starts_with("```mermaid") => block = Some(Vec::new()),
            None => {}
            Some(b) if line.trim_start().starts_with("```") => return Ok(b.join("\n")),
            Some(b) => b.push(line),
        }
    }
    Err(match block {
        None => format!("no ```mermaid block under {heading:?}"),
        Some(_) => format!("the ```mermaid block under {heading:?} is not closed"),
    })
}

/// Nodes and edges of a Mermaid flowchart written one node or one edge per line:
/// `Id["label"]` (any shape), `A --> B`, `A -->|label| B`, `A -.->|label| B`. Styling lines are
/// skipped; any other line is an error, so that nothing is silently left out.
fn parse_mermaid(block: &str) -> Result<Graph, Vec<String>> {
    let id = r"([A-Za-z_][A-Za-z0-9_]*)";
    let edge_re = re(&format!(
        r"^{id}\s*(-->|-\.->)\s*(?:\|([^|]*)\|)?\s*{id}\s*;?$"
    ));
    let node_re = re(&format!(r"^{id}\s*[\[({{>]"));
    let skipped = [
        "%%",
        "classDef ",
        "class ",
        "style ",
        "linkStyle ",
        "click ",
        "subgraph ",
        "direction ",
    ];
    let mut graph = Graph::default();
    let mut errors = Vec::new();
    let mut header = false;
    for (n, raw) in block.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line == "end" || skipped.iter().any(|s| line.starts_with(s)) {
            continue;
        }
        if !header {
            header = true;
            if line.starts_with("flowchart") || line.starts_with("graph") {
                continue;
            }
            errors.push(format!(
                "line {}: expected `flowchart TD`, found {line:?}",
                n + 1
            ));
            continue;
        }
        if let Some(c) = edge_re.captures(line) {
            let edge: Edge = (c[1].to_owned(), c[4].to_owned(), &c[2] == "-.->");
            graph.states.insert(edge.0.clone());
            graph.states.insert(edge.1.clone());
            let label = c.get(3).map(|m| m.as_str().trim().to_owned());
            graph.labels.entry(edge.clone()).or_default().extend(label);
            graph.edges.insert(edge);
        } else if let Some(c) = node_re.captures(line) {
            graph.states.insert(c[1].to_owned());
        } else {
            errors.push(format!(
                "line {}: cannot read {line:?} (write one node `Id[\"label\"]` or one edge \
                 `A --> B`, `A -->|label| B`, `A -.->|error| B` per line)",
                n + 1
            ));
        }
    }
    if errors.is_empty() {
        Ok(graph)
    } else {
        Err(errors)
    }
}

fn describe(edge: &Edge) -> String {
    let (from, to, catch) = edge;
    if *catch {
        format!("{from} -.-> {to} (Catch)")
    } else {
        format!("{from} --> {to} (Next, Choices or Default)")
    }
}

/// The differences between the definition and the diagram, one sentence each.
fn differences(asl: &Graph, diagram: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for s in asl.states.difference(&diagram.states) {
        out.push(format!("state {s} is missing from the diagram"));
    }
    for s in diagram.states.difference(&asl.states) {
        out.push(format!("node {s} is not a state of {DEFINITION}"));
    }
    for e in asl.edges.difference(&diagram.edges) {
        out.push(format!(
            "transition {} is missing from the diagram",
            describe(e)
        ));
    }
    for e in diagram.edges.difference(&asl.edges) {
        out.push(format!(
            "edge {} is not a transition of {DEFINITION}",
            describe(e)
        ));
    }
    for e in asl.edges.intersection(&diagram.edges).filter(|e| e.2) {
        let drawn = diagram.labels.get(e).cloned().unwrap_or_default();
        for error in asl.labels.get(e).into_iter().flatten() {
            if !drawn.iter().any(|l| l.contains(error.as_str())) {
                out.push(format!(
                    "edge {} is not labelled with the error it catches, {error} (labels: {drawn:?})",
                    describe(e)
                ));
            }
        }
    }
    out
}

#[test]
fn the_readme_diagram_has_every_state_and_transition_of_the_state_machine() {
    let asl = definition_graph();
    assert!(asl.states.len() > 10, "{DEFINITION}: only {:?}", asl.states);
    let block = mermaid_block(&read("README.md"), DIAGRAM_HEADING)
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let diagram = parse_mermaid(&block)
        .unwrap_or_else(|e| panic!("README.md, {DIAGRAM_HEADING:?} diagram:\n{}", e.join("\n")));
    let diff = differences(&asl, &diagram);
    assert!(
        diff.is_empty(),
        "README.md's {DIAGRAM_HEADING:?} diagram and {DEFINITION} disagree:\n  {}",
        diff.join("\n  ")
    );
}

#[test]
fn the_diagram_check_notices_a_missing_node_a_stray_edge_and_a_solid_catch() {
    // The parser and the comparison, on a small machine: the check above is only as good as
    // these.
    let def = serde_json::json!({"A": {"Type": "Task", "Next": "B",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}]},
        "B": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "P",
            "States": {"P": {"Type": "Pass", "End": true}}}]},
        "C": {"Type": "Fail"}});
    let mut asl = Graph::default();
    collect_states(def.as_object().expect("object"), &mut asl);
    assert!(asl.states.contains("P"), "nested states count: {asl:?}");
    let good = "flowchart TD\n  A[\"A\"]\n  P(\"P\")\n  A --> B\n  A -.->|States.ALL| C\n  \
                classDef task fill:#eef\n  class A task";
    let diagram = parse_mermaid(good).expect("parses");
    assert_eq!(differences(&asl, &diagram), Vec::<String>::new());
    let bad = "flowchart TD\n  A --> B\n  A -->|States.ALL| C\n  B --> C";
    let diff = differences(&asl, &parse_mermaid(bad).expect("parses")).join("\n");
    for needle in [
        "state P is missing",
        "A -.-> C (Catch) is missing",
        "edge A --> C",
        "edge B --> C",
    ] {
        assert!(diff.contains(needle), "{needle:?} not in:\n{diff}");
    }
    let unlabelled = "flowchart TD\n  P\n  A --> B\n  A -.-> C";
    let e = parse_mermaid(unlabelled).expect_err("a bare id is not a node declaration");
    assert!(e[0].contains("line 2"), "{e:?}");
    let diff = differences(
        &asl,
        &parse_mermaid("flowchart TD\n  P(\"P\")\n  A --> B\n  A -.-> C").expect("parses"),
    );
    assert!(diff.iter().any(|d| d.contains("States.ALL")), "{diff:?}");
    assert!(mermaid_block("## Other\n```mermaid\nflowchart TD\n```\n", DIAGRAM_HEADING).is_err());
}

// ------------------------------------------------------------------------------------------------
// (b) citations
// ------------------------------------------------------------------------------------------------

/// The documents to check: those of [`DOCUMENTS`] and every `docs/*.md`.
fn documents() -> Vec<String> {
    let mut docs = Vec::new();
    for (rel, required) in DOCUMENTS {
        if root().join(rel).is_file() {
            docs.push((*rel).to_owned());
        } else {
            assert!(!required, "{rel} is missing");
        }
    }
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("docs/{name}");
            if name.ends_with(".md") && !docs.contains(&rel) {
                docs.push(rel);
            }
        }
    }
    docs
}

/// Names a cited path may start with: [`TOP_LEVEL`] and every top-level directory.
fn top_level_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = TOP_LEVEL.iter().map(|s| (*s).to_owned()).collect();
    for entry in std::fs::read_dir(root())
        .expect("the repository root")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !IGNORED_TOP_LEVEL.contains(&name.as_str()) {
            names.insert(name);
        }
    }
    names
}

/// `path` with `.` and `..` folded away, or `None` when it climbs out of `base`'s root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Whether `rel` (relative to the repository root, maybe with `*` in one segment, maybe ending
/// in `/` for a directory) exists.
fn exists(rel: &str) -> bool {
    let dir_only = rel.ends_with('/');
    let rel = rel.trim_end_matches('/');
    let mut at = root();
    let segments: Vec<&str> = rel.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.contains('*') {
            let pattern = format!(
                "^{}$",
                seg.split('*')
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(".*")
            );
            let pattern = re(&pattern);
            let Ok(entries) = std::fs::read_dir(&at) else {
                return false;
            };
            let last = i + 1 == segments.len();
            return entries.flatten().any(|e| {
                pattern.is_match(&e.file_name().to_string_lossy())
                    && (last || e.path().join(segments[i + 1..].join("/")).exists())
            });
        }
        at = at.join(seg);
    }
    if dir_only { at.is_dir() } else { at.exists() }
}

/// One cited path and where it was found.
#[derive(Debug)]
struct Citation {
    line: usize,
    cited: String,
    /// Candidate paths relative to the root; the citation holds when one of them exists.
    candidates: Vec<String>,
}

/// Where `cited` may point, relative to the root: from the document's directory `doc_dir`, and
/// also from the root unless `relative_only` or it climbs (`../`). Empty: it points outside the
/// repository.
fn resolve(doc_dir: &Path, cited: &str, relative_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    let from_doc = normalise(&doc_dir.join(cited));
    if let Some(p) = from_doc {
        out.push(p.to_string_lossy().into_owned() + if cited.ends_with('/') { "/" } else { "" });
    }
    if !relative_only && !cited.starts_with("../") {
        out.push(cited.trim_start_matches("./").to_owned());
    }
    out
}

/// Every repository path `text` (the document at `doc`) cites.
fn citations(doc: &str, text: &str, top: &BTreeSet<String>) -> Vec<Citation> {
    let doc_dir = Path::new(doc)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let link_re = re(r#"\]\(([^)\s]+)(?:\s+"[^"]*")?\)"#);
    let url_re = re(r"^[A-Za-z][A-Za-z0-9+.\-]*:");
    // A path: segments of path characters with at least one `/`, not inside a longer word,
    // URL, `$VAR/...` or `~/...`.
    let path_re =
        re(r"(?:^|[^A-Za-z0-9_.\-/~$@:<>])((?:\.\.?/)*[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-/*]*)");
    let bare_md_re = re(r"(?:^|[^A-Za-z0-9_.\-/~$])([A-Za-z0-9_\-][A-Za-z0-9_.\-]*\.md)\b");
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        let mut add = |cited: &str, candidates: Vec<String>| {
            out.push(Citation {
                line: line_no,
                cited: cited.to_owned(),
                candidates,
            });
        };
        if !fenced {
            for c in link_re.captures_iter(line) {
                let target = &c[1];
                if url_re.is_match(target) || target.starts_with('#') {
                    continue;
                }
                let path = target.split(['#', '?']).next().unwrap_or_default();
                if path.is_empty() || OUTSIDE_THE_REPOSITORY.contains(&path) {
                    continue;
                }
                let first = path
                    .trim_start_matches("./")
                    .split('/')
                    .next()
                    .unwrap_or("");
                if IGNORED_TOP_LEVEL.contains(&first) {
                    continue;
                }
                let candidates = match path.strip_prefix('/') {
                    Some(abs) => vec![abs.to_owned()],
                    None => resolve(&doc_dir, path, true),
                };
                add(target, candidates);
            }
        }
        // Link targets are checked above; inline code spans are the odd pieces between
        // backticks (fenced lines: all code).
        let rest = if fenced {
            line.into()
        } else {
            link_re.replace_all(line, "]")
        };
        for (i, piece) in rest.split('`').enumerate() {
            let in_code = fenced || i % 2 == 1;
            for c in path_re.captures_iter(piece) {
                let m = c.get(1).expect("group 1");
                let after = &piece[m.end()..];
                if after.starts_with('@')
                    || (after.starts_with(':')
                        && after[1..].starts_with(|x: char| x.is_ascii_alphanumeric()))
                {
                    continue; // a reference such as `incoming/app:1.4.2`
                }
                let cited = m.as_str().trim_end_matches('.');
                if cited.is_empty() || OUTSIDE_THE_REPOSITORY.contains(&cited) {
                    continue;
                }
                let stripped = cited.trim_start_matches("./");
                let first = stripped.split('/').next().unwrap_or("");
                if IGNORED_TOP_LEVEL.contains(&first) {
                    continue;
                }
                let relative = cited.starts_with("../") || cited.starts_with("./");
                let file_type = cited.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
                let typed = in_code && !fenced && FILE_TYPES.contains(&file_type);
                if relative || top.contains(first) || typed {
                    add(cited, resolve(&doc_dir, cited, false));
                }
            }
            if !fenced {
                for c in bare_md_re.captures_iter(piece) {
                    let cited = &c[1];
                    add(cited, resolve(&doc_dir, cited, false));
                }
            }
        }
    }
    out
}

#[test]
fn every_path_the_documents_cite_exists() {
    let top = top_level_names();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for c in citations(&doc, &read(&doc), &top) {
            checked += 1;
            if c.candidates.is_empty() {
                broken.push(format!(
                    "{doc}:{}: `{}` points outside the repository",
                    c.line, c.cited
                ));
            } else if !c.candidates.iter().any(|p| exists(p)) {
                broken.push(format!(
                    "{doc}:{}: `{}` does not exist (looked for {})",
                    c.line,
                    c.cited,
                    c.candidates.join(", ")
                ));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} citations found: is the scanner broken?"
    );
    assert!(
        broken.is_empty(),
        "citations that point nowhere ({} of {checked}):\n  {}",
        broken.len(),
        broken.join("\n  ")
    );
}

#[test]
fn the_citation_scanner_finds_links_paths_and_document_names() {
    let top = top_level_names();
    let text = "See [the contract](CONTRACT.md), `scripts/nope.sh` and `CONTRACT.md`.\n\
                Not `incoming/app:1.4.2`, `linux/amd64`, https://example.com/docs/x.md or `.work/venv`.\n\
                ```sh\nbench/copy-bench.sh --fast\n```\n\
                (crates/promotion-core/src/error.rs) and `sign/store.rs`.";
    let found: Vec<(usize, String)> = citations("docs/X.md", text, &top)
        .into_iter()
        .map(|c| (c.line, c.cited))
        .collect();
    let expected: Vec<(usize, String)> = [
        (1, "CONTRACT.md"),
        (1, "scripts/nope.sh"),
        (1, "CONTRACT.md"),
        (4, "bench/copy-bench.sh"),
        (6, "crates/promotion-core/src/error.rs"),
        (6, "sign/store.rs"),
    ]
    .iter()
    .map(|(l, s)| (*l, (*s).to_owned()))
    .collect();
    assert_eq!(found, expected);
    assert!(exists("statemachine/*.asl.json") && exists("tests/fixtures/"));
    assert!(!exists("scripts/nope.sh") && !exists("statemachine/*.yaml"));
}

/// The two design documents' file names, spelt so that this file does not cite them bare.
fn design_documents() -> [String; 2] {
    [format!("{}.md", "DESIGN"), format!("{}.md", "ARCHITECTURE")]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !IGNORED_TOP_LEVEL.contains(&name.as_str()) && !name.starts_with("target") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn code_cites_the_design_documents_under_docs() {
    let mut files = Vec::new();
    for dir in ["crates", "functions", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    files.sort();
    assert!(files.len() > 20, "only {} .rs files found", files.len());
    let mut wrong = Vec::new();
    for name in design_documents() {
        let at = format!("docs/{name}");
        assert!(root().join(&at).is_file(), "{at} is missing");
        for file in &files {
            let text = std::fs::read_to_string(file).expect("a readable .rs file");
            for (n, line) in text.lines().enumerate() {
                for (i, _) in line.match_indices(name.as_str()) {
                    let before = &line[..i];
                    // `../shared/` names the founders' design, beside the repository.
                    if !before.ends_with("docs/") && !before.ends_with("../shared/") {
                        let rel = file.strip_prefix(root()).unwrap_or(file);
                        wrong.push(format!(
                            "{}:{}: says {name}, not {at}",
                            rel.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the design documents are in docs/; cite them by that path:\n  {}",
        wrong.join("\n  ")
    );
}

// ------------------------------------------------------------------------------------------------
// (c) the test commands the documents give
// ------------------------------------------------------------------------------------------------

/// Workspace packages: name → directory (relative to the root).
fn workspace_packages() -> BTreeMap<String, String> {
    let manifest = read("Cargo.toml");
    let members = re(r"(?s)members\s*=\s*\[(.*?)\]")
        .captures(&manifest)
        .map(|c| c[1].to_owned())
        .expect("Cargo.toml: workspace members");
    let name_re = re(r#"(?m)^name\s*=\s*"([^"]+)""#);
    let mut out = BTreeMap::new();
    for m in re(r#""([^"]+)""#).captures_iter(&members) {
        let dir = m[1].to_owned();
        let toml = read(&format!("{dir}/Cargo.toml"));
        let name = name_re
            .captures(&toml)
            .map(|c| c[1].to_owned())
            .unwrap_or_else(|| panic!("{dir}/Cargo.toml has no package name"));
        out.insert(name, dir);
    }
    out
}

/// The tests of the package in `dir`, as cargo names them (`module::tests::name`), roughly:
/// the module path from the file's place, `tests::` after a `mod tests`.
fn test_names(dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    let fn_re = re(r"\bfn\s+([A-Za-z0-9_]+)");
    let mut out = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root().join(dir))
            .expect("under the package");
        let mut module: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if matches!(module.first().map(String::as_str), Some("src" | "it")) {
            module.remove(0);
        }
        module.retain(|m| !matches!(m.as_str(), "lib" | "main" | "mod"));
        let text = std::fs::read_to_string(&file).expect("a readable .rs file");
        let lines: Vec<&str> = text.lines().collect();
        let mut in_tests = false;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("mod tests") {
                in_tests = true;
            }
            let t = line.trim_start();
            if !(t.starts_with("#[test]") || t.starts_with("#[tokio::test")) {
                continue;
            }
            let Some(name) = lines[i + 1..]
                .iter()
                .take(4)
                .find_map(|l| fn_re.captures(l).map(|c| c[1].to_owned()))
            else {
                continue;
            };
            let mut path = module.clone();
            if in_tests {
                path.push("tests".into());
            }
            path.push(name);
            out.push(path.join("::"));
        }
    }
    out
}

#[test]
fn the_test_commands_the_documents_give_run_tests() {
    let packages = workspace_packages();
    let command_re = re(r"cargo test -p ([A-Za-z0-9_\-]+)(?: +([A-Za-z0-9_:]+))?");
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for (n, line) in read(&doc).lines().enumerate() {
            for c in command_re.captures_iter(line) {
                checked += 1;
                let package = &c[1];
                let filter = c.get(2).map_or("", |m| m.as_str());
                let Some(dir) = packages.get(package) else {
                    wrong.push(format!(
                        "{doc}:{}: `{}`: {package} is not a workspace package",
                        n + 1,
                        &c[0]
                    ));
                    continue;
                };
                let tests = names
                    .entry(package.to_owned())
                    .or_insert_with(|| test_names(dir));
                if !tests.iter().any(|t| t.contains(filter)) {
                    wrong.push(format!(
                        "{doc}:{}: `{}` runs no test of {package} ({dir})",
                        n + 1,
                        &c[0]
                    ));
                }
            }
        }
    }
    assert!(
        checked > 14,
        "only {checked} test commands found in the documents"
    );
    assert!(
        wrong.is_empty(),
        "test commands that name no test:\n  {}",
        wrong.join("\n  ")
    );
}
