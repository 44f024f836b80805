//! The modules of `src/` form layers: the module table in `src/lib.rs` lists them from the
//! top down, and each module names (with a `crate::x` path, in code or in a doc link) only
//! modules listed below it. So no two modules import each other, and the table stays the
//! map of the crate.

use std::collections::BTreeMap;
use std::path::Path;

/// The module names of the table rows in `lib.rs`, top row first; a row may name several
/// (`lock` / `sys`), which then share a layer.
fn table_layers(lib: &str) -> Vec<Vec<String>> {
    lib.lines()
        .skip_while(|line| !line.starts_with("//! | module |"))
        .take_while(|line| line.starts_with("//! |"))
        .filter_map(|line| line.strip_prefix("//! | `"))
        .map(|row| {
            let first_cell = row.split(" |").next().unwrap_or_default();
            first_cell.split('/').map(|name| name.trim().trim_matches('`').to_string()).collect()
        })
        .collect()
}

/// The names `text` reaches through `crate::name`.
fn crate_paths(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, prefix)| {
            text[at + prefix.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        })
        .collect()
}

#[test]
fn every_module_imports_only_modules_listed_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut layer_of = BTreeMap::new();
    for (layer, names) in table_layers(&lib).into_iter().enumerate() {
        for name in names {
            layer_of.insert(name, layer);
        }
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|ext| ext != "rs") || module == "lib" {
            continue;
        }
        let own = *layer_of
            .get(&module)
            .unwrap_or_else(|| panic!("src/{module}.rs is missing from the module table in lib.rs"));
        let text = std::fs::read_to_string(&path).unwrap();
        for name in crate_paths(&text) {
            if let Some(&layer) = layer_of.get(&name)
                && name != module
            {
                assert!(
                    layer > own,
                    "src/{module}.rs names crate::{name}, which the table in lib.rs lists above it"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, layer_of.len(), "the table lists a module that src/ does not have");
}

#[test]
fn the_table_parser_and_the_path_finder_see_what_they_should() {
    let lib = "//! | module | what |\n//! |---|---|\n//! | `api` | x |\n//! | `lock` / `sys` | y |\n//!\n//! | `OPTION` | z |\n";
    assert_eq!(table_layers(lib), vec![vec!["api".to_string()], vec!["lock".to_string(), "sys".to_string()]]);
    assert_eq!(
        crate_paths("use crate::heap::{self}; [`crate::guard`] crate::Stats"),
        ["heap", "guard", "Stats"]
    );
}
