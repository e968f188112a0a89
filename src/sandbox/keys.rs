//! API key pairs: the key-pairs file, the checks on each pair, and the store of known keys.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The public key of the example pair in the API documentation; always accepted.
pub const DEFAULT_API_KEY: &str = "pk_live_abc123";
/// The secret of the example pair in the API documentation; always accepted.
pub const DEFAULT_API_SECRET: &str = "sk_live_xyz789";

const KEY_PREFIX: &str = "pk_";
const SECRET_PREFIX: &str = "sk_";

/// One API key pair the sandbox accepts.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub api_key: String,
    pub api_secret: String,
}

impl Credential {
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Credential {
        Credential {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The documentation's example pair.
    pub fn documented() -> Credential {
        Credential::new(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    }
}

/// The secret is never shown, nor a key that is not shaped like one: it may be a misplaced secret.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let api_key = if is_key_shaped(&self.api_key) {
            self.api_key.as_str()
        } else {
            "<invalid>"
        };
        f.debug_struct("Credential")
            .field("api_key", &api_key)
            .field("api_secret", &"<secret>")
            .finish()
    }
}

/// Why a key-pairs file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key-pairs file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse key-pairs file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: KeyFileParseError,
    },
    #[error("invalid key-pairs file {path}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: CredentialError,
    },
}

/// Where and why a key-pairs file does not parse.
///
/// The toml crate's own error quotes the offending source line, and its Debug form holds the
/// whole file, so neither is kept: only the position, the entry, and the message with every
/// quoted fragment that could be file content removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileParseError {
    /// The entry the error is in, like `credentials[1].api_secret`, when known.
    pub entry: Option<String>,
    /// 1-based line and column (in characters) of the error, when known.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for KeyFileParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.entry, self.position) {
            (Some(entry), Some((line, column))) => {
                write!(f, "{entry} (line {line}, column {column}): ")?;
            }
            (Some(entry), None) => write!(f, "{entry}: ")?,
            (None, Some((line, column))) => write!(f, "line {line}, column {column}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeyFileParseError {}

impl KeyFileParseError {
    fn new(text: &str, entry: Option<String>, error: &toml::de::Error) -> KeyFileParseError {
        KeyFileParseError {
            entry,
            position: error.span().map(|span| line_and_column(text, span.start)),
            message: without_file_content(error.message()),
        }
    }
}

/// A key pair that breaks the documented key shape or repeats a key. Secrets are never named,
/// and neither is an `api_key` that is not shaped like a key: it may be a secret given in the
/// wrong field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credentials[{index}].api_key: must start with \"pk_\"")]
    KeyPrefix { index: usize },
    #[error("credentials[{index}].api_key: has nothing after \"pk_\"")]
    KeyEmpty { index: usize },
    #[error(
        "credentials[{index}].api_key: may contain only letters, digits, '_' and '-' after \"pk_\""
    )]
    KeyCharacters { index: usize },
    #[error("credentials[{index}].api_secret: must start with \"sk_\"")]
    SecretPrefix { index: usize },
    #[error("credentials[{index}].api_secret: has nothing after \"sk_\"")]
    SecretEmpty { index: usize },
    #[error("credentials[{index}].api_key: duplicate key {value:?}, first at credentials[{first}]")]
    Duplicate {
        index: usize,
        first: usize,
        value: String,
    },
    #[error(
        "credentials[{index}].api_key: {value:?} is the built-in example key with another secret"
    )]
    ConflictsWithDefault { index: usize, value: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    credentials: Vec<Credential>,
}

/// Field names of the key-pairs file: the only names an error may quote from it.
const FIELD_NAMES: [&str; 3] = ["credentials", "api_key", "api_secret"];

/// TOML tokens the toml crate quotes in what it expected; they are not file content.
const TOML_TOKENS: [&str; 25] = [
    "\"", "'", "`", "\\", "[", "]", "]]", "{", "}", "=", ",", ".", "#", "-", "_", "b", "e", "f",
    "n", "r", "u", "U", "x", "0x", "0o",
];

/// Reads and checks a key-pairs file. Errors name entries by their index in this file.
pub fn load_key_file(path: &Path) -> Result<Vec<Credential>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = parse_key_file(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    check_credentials(&file.credentials).map_err(|source| KeyFileError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok(file.credentials)
}

fn parse_key_file(text: &str) -> Result<KeyFile, KeyFileParseError> {
    let deserializer = toml::de::Deserializer::parse(text)
        .map_err(|error| KeyFileParseError::new(text, None, &error))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let entry = entry_path(error.path());
        KeyFileParseError::new(text, entry, error.inner())
    })
}

/// The path of the entry an error is in, like `credentials[1].api_secret`, up to the first name
/// that is not one of the file's fields (an unknown field's name is file content).
fn entry_path(path: &serde_path_to_error::Path) -> Option<String> {
    let mut entry = String::new();
    for segment in path {
        match segment {
            serde_path_to_error::Segment::Seq { index } => entry.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } if FIELD_NAMES.contains(&key.as_str()) => {
                if !entry.is_empty() {
                    entry.push('.');
                }
                entry.push_str(key);
            }
            _ => break,
        }
    }
    (!entry.is_empty()).then_some(entry)
}

/// 1-based line and column, in characters, of a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde and toml quote the file's values and unknown names in their messages (``invalid type:
/// integer `12345` ``, ``invalid type: string "sk_..."``). Every quoted fragment is dropped
/// unless it is a field name or a TOML token, and an unterminated quote drops the rest.
fn without_file_content(message: &str) -> String {
    let message = without_unknown_name(message);
    let mut kept = String::new();
    let mut rest = message.as_str();
    while let Some(start) = rest.find(['`', '"', '\'']) {
        kept.push_str(&rest[..start]);
        let quote = &rest[start..=start];
        let after = &rest[start + 1..];
        let Some(length) = quoted_length(after, quote) else {
            kept.truncate(kept.trim_end().len());
            rest = "";
            break;
        };
        let fragment = &after[..length];
        if FIELD_NAMES.contains(&fragment) || TOML_TOKENS.contains(&fragment) {
            kept.push_str(&rest[start..start + length + 2]);
        } else {
            kept.truncate(kept.trim_end().len());
        }
        rest = &after[length + 1..];
    }
    kept.push_str(rest);
    kept
}

/// serde quotes an unknown field's name without escaping it, so a name holding a backtick
/// would end its fragment early; its own text resumes at the last "`, expected ".
fn without_unknown_name(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let resume = rest
        .rfind("`, expected ")
        .or_else(|| rest.rfind("`, there are no fields"));
    match resume {
        Some(end) => format!("unknown field{}", &rest[end + 1..]),
        None => "unknown field".to_owned(),
    }
}

/// Length of the quoted fragment at the start of `text`, up to its closing `quote`. Double
/// quotes are serde's Debug strings, where a backslash escapes the next character.
fn quoted_length(text: &str, quote: &str) -> Option<usize> {
    if quote != "\"" {
        return text.find(quote);
    }
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Checks every pair's shape and that no key appears twice. Repeating the documented example
/// pair exactly is allowed, since it is accepted anyway.
pub fn check_credentials(credentials: &[Credential]) -> Result<(), CredentialError> {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, credential) in credentials.iter().enumerate() {
        check_shape(index, credential)?;
        check_default_conflict(index, credential)?;
        if *credential == Credential::documented() {
            continue;
        }
        if let Some(&first) = first_index.get(credential.api_key.as_str()) {
            return Err(CredentialError::Duplicate {
                index,
                first,
                value: credential.api_key.clone(),
            });
        }
        first_index.insert(&credential.api_key, index);
    }
    Ok(())
}

/// True for `pk_` followed by at least one letter, digit, `_` or `-`: the only API key values
/// the sandbox logs, counts or shows in an error. Anything else may be a misplaced secret.
pub fn is_key_shaped(value: &str) -> bool {
    value
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(is_key_char))
}

fn check_shape(index: usize, credential: &Credential) -> Result<(), CredentialError> {
    let Some(key_rest) = credential.api_key.strip_prefix(KEY_PREFIX) else {
        return Err(CredentialError::KeyPrefix { index });
    };
    if key_rest.is_empty() {
        return Err(CredentialError::KeyEmpty { index });
    }
    if !key_rest.chars().all(is_key_char) {
        return Err(CredentialError::KeyCharacters { index });
    }
    match credential.api_secret.strip_prefix(SECRET_PREFIX) {
        None => Err(CredentialError::SecretPrefix { index }),
        Some("") => Err(CredentialError::SecretEmpty { index }),
        Some(_) => Ok(()),
    }
}

/// Keys appear in admin URLs, so they are kept to characters that need no escaping.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn check_default_conflict(index: usize, credential: &Credential) -> Result<(), CredentialError> {
    if credential.api_key == DEFAULT_API_KEY && credential.api_secret != DEFAULT_API_SECRET {
        return Err(CredentialError::ConflictsWithDefault {
            index,
            value: credential.api_key.clone(),
        });
    }
    Ok(())
}

#[derive(Debug)]
struct KeyEntry {
    secret: String,
    revoked: bool,
}

/// The keys the sandbox accepts and whether each is revoked.
#[derive(Debug)]
pub struct KeyStore {
    keys: BTreeMap<String, KeyEntry>,
}

impl KeyStore {
    /// The documented example pair plus `credentials`, which must already be checked.
    pub fn new(credentials: &[Credential]) -> KeyStore {
        let keys = std::iter::once(Credential::documented())
            .chain(credentials.iter().cloned())
            .map(|c| {
                let entry = KeyEntry {
                    secret: c.api_secret,
                    revoked: false,
                };
                (c.api_key, entry)
            })
            .collect();
        KeyStore { keys }
    }

    /// True when the pair is known and its key is not revoked.
    pub fn accepts(&self, api_key: &str, api_secret: &str) -> bool {
        self.keys
            .get(api_key)
            .is_some_and(|entry| !entry.revoked && entry.secret == api_secret)
    }

    pub fn is_revoked(&self, api_key: &str) -> bool {
        self.keys.get(api_key).is_some_and(|entry| entry.revoked)
    }

    /// Marks a key revoked or not; false when the key is unknown.
    pub fn set_revoked(&mut self, api_key: &str, revoked: bool) -> bool {
        match self.keys.get_mut(api_key) {
            Some(entry) => {
                entry.revoked = revoked;
                true
            }
            None => false,
        }
    }

    /// Every known key with its revocation state, in key order.
    pub fn list(&self) -> Vec<(&str, bool)> {
        self.keys
            .iter()
            .map(|(key, entry)| (key.as_str(), entry.revoked))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sandbox-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("temp file is writable");
        path
    }

    fn pair(key: &str, secret: &str) -> Credential {
        Credential::new(key, secret)
    }

    #[test]
    fn a_valid_file_loads_every_pair() {
        let path = write_file(
            "valid.toml",
            "[[credentials]]\napi_key = \"pk_test_one\"\napi_secret = \"sk_test_one\"\n\n\
             [[credentials]]\napi_key = \"pk_test_two\"\napi_secret = \"sk_test_two\"\n",
        );

        let credentials = load_key_file(&path).expect("file is valid");

        assert_eq!(
            credentials,
            [
                pair("pk_test_one", "sk_test_one"),
                pair("pk_test_two", "sk_test_two")
            ]
        );
    }

    #[test]
    fn an_empty_file_adds_no_pairs() {
        let path = write_file("empty.toml", "");

        assert_eq!(load_key_file(&path).expect("file is valid"), []);
    }

    #[test]
    fn bad_pairs_are_reported_with_their_entry() {
        let cases: &[(&[Credential], &str)] = &[
            (
                &[pair("xk_test", "sk_test")],
                "credentials[0].api_key: must start with \"pk_\"",
            ),
            (
                &[pair("pk_ok", "sk_ok"), pair("pk_", "sk_x")],
                "credentials[1].api_key: has nothing after \"pk_\"",
            ),
            (
                &[pair("pk_a b", "sk_x")],
                "credentials[0].api_key: may contain only letters, digits, '_' and '-' after \
                 \"pk_\"",
            ),
            (
                &[pair("pk_a", "pk_wrong")],
                "credentials[0].api_secret: must start with \"sk_\"",
            ),
            (
                &[pair("pk_a", "sk_")],
                "credentials[0].api_secret: has nothing after \"sk_\"",
            ),
            (
                &[
                    pair("pk_a", "sk_1"),
                    pair("pk_b", "sk_2"),
                    pair("pk_a", "sk_3"),
                ],
                "credentials[2].api_key: duplicate key \"pk_a\", first at credentials[0]",
            ),
            (
                &[pair(DEFAULT_API_KEY, "sk_other")],
                "credentials[0].api_key: \"pk_live_abc123\" is the built-in example key with \
                 another secret",
            ),
        ];

        for (credentials, expected) in cases {
            let error = check_credentials(credentials).expect_err(expected);
            assert_eq!(error.to_string(), *expected);
        }
    }

    #[test]
    fn the_documented_pair_may_be_repeated() {
        let documented = Credential::documented();

        assert_eq!(check_credentials(std::slice::from_ref(&documented)), Ok(()));
        assert_eq!(check_credentials(&[documented.clone(), documented]), Ok(()));
    }

    #[test]
    fn a_file_with_the_documented_pair_counts_its_own_entries() {
        let path = write_file(
            "documented-then-duplicate.toml",
            "[[credentials]]\napi_key = \"pk_live_abc123\"\napi_secret = \"sk_live_xyz789\"\n\n\
             [[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_a\"\n\n\
             [[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_b\"\n",
        );

        let error = load_key_file(&path).expect_err("pk_a appears twice");

        assert_eq!(
            format!("{:#}", anyhow::Error::new(error)),
            format!(
                "invalid key-pairs file {}: credentials[2].api_key: duplicate key \"pk_a\", \
                 first at credentials[1]",
                path.display()
            )
        );
    }

    #[test]
    fn bad_files_are_reported_with_their_position_and_entry() {
        let cases = [
            (
                "unknown-top.toml",
                "keys = []\n",
                "line 1, column 1: unknown field, expected `credentials`",
            ),
            (
                "unknown-entry.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_a\"\nnote = \"x\"\n",
                "credentials[0] (line 4, column 1): unknown field, expected `api_key` or \
                 `api_secret`",
            ),
            (
                "missing-secret.toml",
                "[[credentials]]\napi_key = \"pk_a\"\n",
                "credentials[0] (line 1, column 1): missing field `api_secret`",
            ),
            (
                "wrong-type.toml",
                "[[credentials]]\napi_key = 7\napi_secret = \"sk_a\"\n",
                "credentials[0].api_key (line 2, column 11): invalid type: integer, expected a \
                 string",
            ),
            (
                "not-toml.toml",
                "[[credentials]\n",
                "line 1, column 15: unclosed array table, expected `]`",
            ),
        ];

        for (name, text, expected) in cases {
            let path = write_file(name, text);

            let error = load_key_file(&path).expect_err(name);

            assert_eq!(
                format!("{:#}", anyhow::Error::new(error)),
                format!("cannot parse key-pairs file {}: {expected}", path.display()),
                "{name}"
            );
        }
    }

    #[test]
    fn parse_errors_never_show_the_secret() {
        let cases = [
            (
                "unclosed-string.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_SUPERSECRET\n",
                "line 3, column 29: invalid basic string, expected `\"`",
            ),
            (
                "duplicate-secret.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_SUPERSECRET\"\n\
                 api_secret = \"sk_SUPERSECRET_TOO\"\n",
                "line 4, column 1: duplicate key",
            ),
            (
                "trailing-junk.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_SUPERSECRET\" junk\n",
                "line 3, column 31: unexpected key or value, expected newline, `#`",
            ),
            (
                "integer-secret.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = 12345\n",
                "credentials[0].api_secret (line 3, column 14): invalid type: integer, expected \
                 a string",
            ),
            (
                "inline-unknown-field.toml",
                "credentials = [{ api_key = \"pk_a\", api_secret = \"sk_SUPERSECRET\", \
                 note = \"sk_SUPERSECRET\" }]\n",
                "credentials[0] (line 1, column 67): unknown field, expected `api_key` or \
                 `api_secret`",
            ),
            (
                "secret-as-field-name.toml",
                "credentials = [{ api_key = \"pk_a\", \"sk_SUPER`SECRET\" = 1 }]\n",
                "credentials[0] (line 1, column 36): unknown field, expected `api_key` or \
                 `api_secret`",
            ),
            (
                "secret-as-list.toml",
                "credentials = \"sk_SUPERSECRET\"\n",
                "credentials (line 1, column 15): invalid type: string, expected a sequence",
            ),
            (
                "unquoted-secret.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = sk_SUPERSECRET\n",
                "line 3, column 14: string values must be quoted, expected literal string",
            ),
        ];

        for (name, text, expected) in cases {
            let path = write_file(name, text);

            let error = anyhow::Error::new(load_key_file(&path).expect_err(name));

            for shown in [format!("{error:#}"), format!("{error:?}")] {
                assert!(!shown.contains("SUPERSECRET"), "{name}: {shown}");
            }
            assert_eq!(
                format!("{error:#}"),
                format!("cannot parse key-pairs file {}: {expected}", path.display()),
                "{name}"
            );
        }
    }

    #[test]
    fn a_swapped_pair_in_a_file_is_refused_without_the_secret() {
        let path = write_file(
            "swapped.toml",
            "[[credentials]]\napi_key = \"sk_SUPERSECRET\"\napi_secret = \"pk_a\"\n",
        );

        let error = anyhow::Error::new(load_key_file(&path).expect_err("pair is swapped"));

        assert_eq!(
            format!("{error:#}"),
            format!(
                "invalid key-pairs file {}: credentials[0].api_key: must start with \"pk_\"",
                path.display()
            )
        );
        assert!(!format!("{error:?}").contains("SUPERSECRET"));
    }

    #[test]
    fn quoted_fragments_are_dropped_unless_names_or_tokens() {
        let cases = [
            (
                "invalid type: integer `12345`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                r#"invalid type: string "sk_a\"b`c", expected a sequence"#,
                "invalid type: string, expected a sequence",
            ),
            (
                "unknown field `a`, expected `b`, expected `api_key` or `api_secret`",
                "unknown field, expected `api_key` or `api_secret`",
            ),
            (
                "unknown field `sk_x`, there are no fields",
                "unknown field, there are no fields",
            ),
            ("missing field `api_secret`", "missing field `api_secret`"),
            (
                "missing escaped value, expected `b`, `\\`, `\"`",
                "missing escaped value, expected `b`, `\\`, `\"`",
            ),
            ("invalid value: `sk_open", "invalid value:"),
        ];

        for (message, expected) in cases {
            assert_eq!(without_file_content(message), expected, "{message}");
        }
    }

    #[test]
    fn only_pk_values_are_key_shaped() {
        let cases = [
            ("pk_live_abc123", true),
            ("pk_a-b_C9", true),
            ("pk_", false),
            ("sk_live_xyz789", false),
            ("pk_a b", false),
            ("pk_a/b", false),
            ("", false),
        ];

        for (value, expected) in cases {
            assert_eq!(is_key_shaped(value), expected, "{value}");
        }
    }

    #[test]
    fn invalid_pairs_in_a_file_name_the_file_and_the_entry() {
        let path = write_file(
            "bad-prefix.toml",
            "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_a\"\n\n\
             [[credentials]]\napi_key = \"key_b\"\napi_secret = \"sk_b\"\n",
        );

        let error = load_key_file(&path).expect_err("prefix is wrong");

        assert_eq!(
            format!("{:#}", anyhow::Error::new(error)),
            format!(
                "invalid key-pairs file {}: credentials[1].api_key: must start with \"pk_\"",
                path.display()
            )
        );
    }

    #[test]
    fn a_missing_file_cannot_be_read() {
        let path = Path::new("/nonexistent/sandbox-keys.toml");

        let error = load_key_file(path).expect_err("file is missing");

        assert_eq!(
            error.to_string(),
            "cannot read key-pairs file /nonexistent/sandbox-keys.toml"
        );
    }

    #[test]
    fn secret_errors_never_show_the_secret() {
        let error = check_credentials(&[pair("pk_a", "hunter2")]).expect_err("bad secret");

        assert!(!error.to_string().contains("hunter2"));
        assert!(!format!("{:?}", pair("pk_a", "sk_hunter2")).contains("hunter2"));
        assert_eq!(
            format!("{:?}", pair("sk_hunter2", "pk_a")),
            "Credential { api_key: \"<invalid>\", api_secret: \"<secret>\" }"
        );
    }

    #[test]
    fn the_store_accepts_the_documented_pair_and_added_pairs() {
        let store = KeyStore::new(&[pair("pk_test_a", "sk_test_a")]);

        assert!(store.accepts(DEFAULT_API_KEY, DEFAULT_API_SECRET));
        assert!(store.accepts("pk_test_a", "sk_test_a"));
        assert!(!store.accepts("pk_test_a", DEFAULT_API_SECRET));
        assert!(!store.accepts("pk_unknown", "sk_test_a"));
    }

    #[test]
    fn revoked_keys_are_refused_until_restored() {
        let mut store = KeyStore::new(&[]);

        assert!(store.set_revoked(DEFAULT_API_KEY, true));
        assert!(!store.accepts(DEFAULT_API_KEY, DEFAULT_API_SECRET));
        assert!(store.set_revoked(DEFAULT_API_KEY, false));
        assert!(store.accepts(DEFAULT_API_KEY, DEFAULT_API_SECRET));
        assert!(!store.set_revoked("pk_unknown", true));
    }
}
