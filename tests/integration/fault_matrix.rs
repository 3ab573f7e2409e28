//! The README's fault matrix names, in each proven cell, the tests that prove it: this checks
//! that every name is a test that exists (under `tests/integration` for L, the executor's tests
//! for E), so the matrix cannot claim a proof that was renamed or removed; that no cell is left
//! empty; and prints the matrix (`scripts/test.sh` prints it again after the suite).

use std::path::Path;

/// The matrix's rows, as the README has them.
fn matrix() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .lines()
        .skip_while(|line| !line.starts_with("| step in flight |"))
        .take_while(|line| line.starts_with('|'))
        .map(str::to_string)
        .collect()
}

/// Every `fn NAME` under `dir`, recursively.
fn functions_under(dir: &Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            functions_under(&path, names);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            names.extend(text.lines().filter_map(|line| {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix("async fn ")
                    .or_else(|| line.strip_prefix("fn "))?;
                Some(rest.split(['(', '<']).next()?.to_string())
            }));
        }
    }
}

#[test]
fn every_test_the_fault_matrix_names_exists() {
    let rows = matrix();
    assert!(rows.len() >= 8, "the matrix in the README: {rows:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut lab = Vec::new();
    functions_under(&root.join("tests/integration"), &mut lab);
    let mut executor = Vec::new();
    functions_under(&root.join("src/exec"), &mut executor);
    let mut named = 0;
    for row in &rows[2..] {
        for cell in row.split('|').skip(2).filter(|cell| !cell.is_empty()) {
            assert!(
                !matches!(cell.trim(), "" | "—" | "-"),
                "a cell of the fault matrix proves nothing: {row}"
            );
            // `L name, name; E name`: each name belongs to the kind that precedes it.
            let mut kind = "";
            for word in cell.split(['`', ' ', ',', ';']) {
                match word {
                    "L" | "E" => kind = word,
                    name if name.contains('_')
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
                    {
                        let known = if kind == "E" { &executor } else { &lab };
                        assert!(
                            known.iter().any(|function| function == name),
                            "the fault matrix names {kind} `{name}`, which is no test"
                        );
                        named += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(named >= 15, "{named} tests named");
    eprintln!("{}", rows.join("\n"));
}
