//! Where results go: their names, the start-up probe of the folder, atomic writes.
//!
//! Names follow the seed's convention, `{runtime}-v{version}-{llm}-{vus}vu`, with `vus` the
//! plan's most VUs; a sweep's runs (the plan's `target.tier` set) are `{runtime}-{tier}`.
//! A result is never overwritten: a second run with the same labels writes
//! `{name}-2.summary.json`, then `-3`… ([`write_new`]), and the final path is printed.
use crate::Plan;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("the results folder {dir} cannot be written ({source}); pick another --results-dir or fix its permissions")]
    Unwritable { dir: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `{runtime}-v{version}-{llm}-{vus}vu`, or `{runtime}-{tier}` for a sweep.
pub fn base_name(plan: &Plan) -> String {
    let t = &plan.target;
    match &t.tier {
        Some(tier) => format!("{}-{}", t.runtime, tier),
        None => format!(
            "{}-v{}-{}-{}vu",
            t.runtime,
            t.version.trim_start_matches('v'),
            t.llm,
            plan.max_vus()
        ),
    }
}

/// The summary's path in `dir`.
pub fn summary_path(dir: &Path, plan: &Plan) -> PathBuf {
    dir.join(format!("{}.summary.json", base_name(plan)))
}

/// `path` with `-{n}` before its extension (`a-v0.1.0.summary.json` →
/// `a-v0.1.0-2.summary.json`, `x.json` → `x-2.json`); `n` = 1 is `path` itself.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    const SUMMARY: &str = ".summary.json";
    if n <= 1 {
        return path.to_path_buf();
    }
    let name = path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let numbered = match name.strip_suffix(SUMMARY) {
        Some(stem) => format!("{stem}-{n}{SUMMARY}"),
        None => match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
            _ => format!("{name}-{n}"),
        },
    };
    path.with_file_name(numbered)
}

/// Creates `dir` if needed and proves a file can be created there, before the run starts.
pub fn probe_dir(dir: &Path) -> Result<(), ResultsError> {
    let err = |source| ResultsError::Unwritable {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let probe = tempfile::Builder::new()
        .prefix(".barrage-probe-")
        .tempfile_in(dir)
        .map_err(err)?;
    drop(probe);
    Ok(())
}

/// The parent folder of a file path (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`: readers never
/// see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let err = |source| ResultsError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = staged(path, bytes)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Writes `bytes` atomically as `path`, or as the first of `path-2`, `path-3`… that does
/// not exist ([`numbered`]); never replaces a file. Returns the path written.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf, ResultsError> {
    let err = |source| ResultsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut tmp = staged(path, bytes)?;
    for n in 1..=10_000 {
        let candidate = numbered(path, n);
        match tmp.persist_noclobber(&candidate) {
            Ok(_) => return Ok(candidate),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => tmp = e.file,
            Err(e) => return Err(err(e.error)),
        }
    }
    Err(err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "10000 results with these labels already exist; move them or pick another --results-dir",
    )))
}

/// `bytes` in a synced temp file beside `path`, readable by others.
fn staged(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, ResultsError> {
    let err = |source| ResultsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".barrage-")
        // results are for reading by others: 0644 like any file, not tempfile's 0600
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(parent_dir(path))
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn names() {
        // (runtime, version, llm, tier, profile) -> name
        type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Profile, &'a str);
        let cases: &[Case] = &[
            (
                "ts",
                "0.1.0",
                "mock",
                None,
                Profile::Default,
                "ts-v0.1.0-mock-5vu",
            ),
            (
                "python",
                "v0.1.0",
                "mock",
                None,
                Profile::Default,
                "python-v0.1.0-mock-5vu",
            ),
            (
                "reference",
                "0.2.0",
                "gpt4",
                None,
                Profile::Tier,
                "reference-v0.2.0-gpt4-10vu",
            ),
            (
                "ts",
                "0.1.0",
                "mock",
                None,
                Profile::Smoke,
                "ts-v0.1.0-mock-1vu",
            ),
            ("ts", "0.1.0", "mock", Some("xs"), Profile::Tier, "ts-xs"),
        ];
        for (rt, v, llm, tier, profile, want) in cases {
            let mut p = Plan::profile(*profile);
            p.target.runtime = rt.to_string();
            p.target.version = v.to_string();
            p.target.llm = llm.to_string();
            p.target.tier = tier.map(str::to_string);
            assert_eq!(base_name(&p), *want);
            assert_eq!(
                summary_path(Path::new("results"), &p),
                PathBuf::from(format!("results/{want}.summary.json"))
            );
        }
    }

    #[test]
    fn probe_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        probe_dir(&sub).unwrap();
        assert_eq!(
            std::fs::read_dir(&sub).unwrap().count(),
            0,
            "probe left a file"
        );
        let f = sub.join("x.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o044,
            0o044,
            "results must be readable by others: {mode:o}"
        );
        // never overwritten: numbered instead
        let s = sub.join("r.summary.json");
        assert_eq!(write_new(&s, b"1").unwrap(), s);
        assert_eq!(write_new(&s, b"2").unwrap(), sub.join("r-2.summary.json"));
        assert_eq!(write_new(&s, b"3").unwrap(), sub.join("r-3.summary.json"));
        assert_eq!(std::fs::read(&s).unwrap(), b"1");
        assert_eq!(std::fs::read(sub.join("r-2.summary.json")).unwrap(), b"2");
        assert_eq!(
            std::fs::read_dir(&sub).unwrap().count(),
            4,
            "a temp file was left"
        );
        for (path, want) in [
            ("d/x", "d/x-2"),
            ("d/x.json", "d/x-2.json"),
            (
                "d/ts-v0.1.0-mock-5vu.summary.json",
                "d/ts-v0.1.0-mock-5vu-2.summary.json",
            ),
        ] {
            assert_eq!(numbered(Path::new(path), 2), PathBuf::from(want));
        }
        // a regular file where the folder should be
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = probe_dir(&file.join("sub")).unwrap_err().to_string();
        assert!(e.contains("--results-dir"), "{e}");
    }
}
