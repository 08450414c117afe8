//! The one rule for labels that become part of a file name (`target.runtime`, `version`,
//! `llm`, `tier`): results are written under `--results-dir` as
//! `{runtime}-v{version}-{llm}-{vus}vu` or `{runtime}-{tier}`, so a label holding `/`, `..`
//! or a control character could write outside that folder or make a name no shell quotes
//! cleanly. Every label is checked here, whichever way it arrived (plan file, profile or
//! flag), so the rule cannot drift between fields.

/// Longest accepted label: file names stay well under every file system's 255-byte limit.
pub const MAX_LEN: usize = 64;

/// Why a label cannot name a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; keep it to at most {MAX_LEN}")]
    TooLong { len: usize },
    #[error("must start with a letter or a digit (it names result files)")]
    BadStart,
    #[error("holds {found:?}; use only letters, digits, '.', '_' or '-' (it names result files)")]
    BadChar { found: char },
}

/// Checks that `value` is safe as part of a file name: 1 to [`MAX_LEN`] ASCII letters,
/// digits, `.`, `_` or `-`, starting with a letter or a digit (so never `.`, `..` or a
/// hidden file).
pub fn check_path_label(value: &str) -> Result<(), LabelError> {
    let Some(first) = value.chars().next() else {
        return Err(LabelError::Empty);
    };
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(LabelError::BadChar { found });
    }
    if value.len() > MAX_LEN {
        return Err(LabelError::TooLong { len: value.len() });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(LabelError::BadStart);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_could_leave_the_folder_are_refused() {
        let cases: &[(&str, Result<(), LabelError>)] = &[
            ("reference", Ok(())),
            ("0.1.0", Ok(())),
            ("ts_v2-rc.1", Ok(())),
            ("m", Ok(())),
            ("", Err(LabelError::Empty)),
            (
                "x/../../../escaped",
                Err(LabelError::BadChar { found: '/' }),
            ),
            ("..", Err(LabelError::BadStart)),
            (".hidden", Err(LabelError::BadStart)),
            ("-rf", Err(LabelError::BadStart)),
            ("a\\b", Err(LabelError::BadChar { found: '\\' })),
            ("a\0b", Err(LabelError::BadChar { found: '\0' })),
            ("a\nb", Err(LabelError::BadChar { found: '\n' })),
            ("tier m", Err(LabelError::BadChar { found: ' ' })),
            ("é", Err(LabelError::BadChar { found: 'é' })),
        ];
        for (value, want) in cases {
            assert_eq!(&check_path_label(value), want, "{value:?}");
        }
        assert_eq!(check_path_label(&"a".repeat(MAX_LEN)), Ok(()));
        assert_eq!(
            check_path_label(&"a".repeat(MAX_LEN + 1)),
            Err(LabelError::TooLong { len: MAX_LEN + 1 })
        );
    }
}
