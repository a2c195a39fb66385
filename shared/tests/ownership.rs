//! Every kind of storage item has one owning module, which alone knows its keys and fields;
//! everything else calls that module. Read from the source, so that the rule holds as the code
//! changes: the key prefixes are spelled only in their owner, the functions and constants that
//! build keys are private to it, and the entry points (HTTP handlers, workers) never touch
//! storage or item fields at all.

#[path = "support/source.rs"]
mod source;
use source::{rust_files, src_dir};

/// Each key literal (a partition or sort key prefix, or an index partition) and the file or
/// folder of the module that owns the items it names (see ARCHITECTURE.md's table).
const OWNERS: &[(&str, &str)] = &[
    ("\"IMG#", "images/"),
    ("\"UPL#", "images/"),
    ("\"HASH#", "images/"),
    ("\"IMAGES\"", "images/"),
    ("\"META\"", "images/"),
    ("\"UPLOAD#", "uploads.rs"),
    ("\"LINK#", "links.rs"),
    ("\"LINKTOKEN#", "links.rs"),
    ("\"LINKS\"", "links.rs"),
    ("\"STATS#", "stats.rs"),
    ("\"DAY#", "stats.rs"),
    ("\"CAM#", "stats.rs"),
    ("\"CAMERAS\"", "stats.rs"),
    ("\"TOTALS\"", "stats.rs"),
    ("\"IMPORT#", "imports.rs"),
    ("\"KA#", "keepalive/"),
    ("\"KAURL#", "keepalive/"),
    ("\"KADUE#", "keepalive/"),
    ("\"KALIST\"", "keepalive/"),
    ("\"ACCT#", "accounts.rs"),
    ("\"APIKEY#", "accounts.rs"),
    ("\"ACCOUNTS\"", "accounts.rs"),
    ("\"BUY#", "accounts.rs"),
    ("\"IDEM#", "memes/"),
];

/// The entry points: they call the domain and never read or write items or objects.
const ENTRY_POINTS: &[&str] = &["http/", "workers/", "fuzzing.rs"];

/// What touching storage or an item's fields looks like in the source.
const STORAGE_TOUCHES: &[&str] =
    &[".table.", ".objects.", "Item::", "Update::", "Cond::", "TxOp", ".str(\"", ".num(\"", ".bool(\""];

/// Every source file as (path relative to `src/`, code without comments and without its test
/// module, which by convention ends the file).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code = text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
            (path.strip_prefix(src_dir()).unwrap().to_string_lossy().into_owned(), code)
        })
        .collect()
}

fn owned_by(file: &str, owner: &str) -> bool {
    if owner.ends_with('/') { file.starts_with(owner) } else { file == owner }
}

#[test]
fn key_literals_appear_only_in_their_owner() {
    // Given the source of the library (the storage ports themselves excepted: they know no
    // item kinds, only `pk` and `sk`),
    let sources = sources();
    let mut strays = Vec::new();
    for (literal, owner) in OWNERS {
        let mut seen_in_owner = false;
        for (file, code) in &sources {
            if !code.contains(literal) {
                continue;
            }
            if owned_by(file, owner) {
                seen_in_owner = true;
            } else {
                strays.push(format!("{literal} in {file} (owned by {owner})"));
            }
        }
        // The table must describe the code: a literal nobody spells is a stale entry.
        assert!(seen_in_owner, "{literal} no longer appears in its owner {owner}; update OWNERS");
    }
    // then each item kind's keys are spelled in one place.
    assert!(strays.is_empty(), "item keys spelled outside their owning module:\n{}", strays.join("\n"));
}

#[test]
fn key_builders_are_private_to_their_owner() {
    // Given every function that builds a key and every key constant,
    let mut exposed = Vec::new();
    for (file, code) in sources().iter().filter(|(f, _)| !f.starts_with("store/")) {
        for line in code.lines().map(str::trim) {
            let builds_key = (line.contains("fn ") && (line.contains("_pk(") || line.contains("_sk(")))
                || (line.contains("const ")
                    && ["_SK:", "_PK:", "META:", "PARTITION:", "_INDEX:"].iter().any(|k| line.contains(k)));
            // then none is visible beyond its module: private, or `pub(super)` for the
            // siblings inside an owner's folder.
            if builds_key && line.starts_with("pub") && !line.starts_with("pub(super)") {
                exposed.push(format!("{file}: {line}"));
            }
        }
    }
    assert!(exposed.is_empty(), "key builders visible outside their owner:\n{}", exposed.join("\n"));
}

#[test]
fn entry_points_never_touch_storage() {
    // Given the HTTP handlers, the workers and the fuzz targets,
    let mut touches = Vec::new();
    for (file, code) in sources().iter().filter(|(f, _)| ENTRY_POINTS.iter().any(|e| owned_by(f, e))) {
        for (n, line) in code.lines().enumerate() {
            for touch in STORAGE_TOUCHES {
                if line.contains(touch) {
                    touches.push(format!("{file}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    // then none reads or writes an item or an object itself: each calls the owning module.
    assert!(touches.is_empty(), "entry points touching storage:\n{}", touches.join("\n"));
}
