//! Helpers the deployed-shape tests share.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use imghost_deployed::stack::LAMBDA_VARIABLES;
use imghost_deployed::{HttpResponse, InvokeError, Lambda};

/// Where the shared test photos live, relative to this crate (outside the repository).
pub fn photos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos")
}

pub fn photo(name: &str) -> Vec<u8> {
    let path = photos_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The response, or a panic that shows why the invocation failed (with the process's output).
pub fn ok(result: Result<HttpResponse, InvokeError>) -> HttpResponse {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Checks that `lambda`'s process runs with exactly the template's variables for its function
/// and the ones Lambda sets, nothing from the test's environment.
pub fn assert_template_environment(lambda: &Lambda) {
    let Some(env) = lambda.environ() else {
        eprintln!("[deployed] /proc is not readable here; skipping the environment check of {}", lambda.logical_id);
        return;
    };
    for (k, v) in &lambda.facts.environment {
        assert_eq!(env.get(k), Some(v), "{}: {k} is not what the template gives", lambda.logical_id);
    }
    let extra: Vec<&String> = env
        .keys()
        .filter(|k| !lambda.facts.environment.contains_key(*k) && !LAMBDA_VARIABLES.contains(&k.as_str()))
        .collect();
    assert!(extra.is_empty(), "{}: variables the template does not give: {extra:?}", lambda.logical_id);
}
