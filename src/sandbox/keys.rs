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

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("api_key", &self.api_key)
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
        source: toml::de::Error,
    },
    #[error("invalid key-pairs file {path}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: CredentialError,
    },
}

/// A key pair that breaks the documented key shape or repeats a key. Secrets are never named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credentials[{index}].api_key: {value:?} must start with \"pk_\"")]
    KeyPrefix { index: usize, value: String },
    #[error("credentials[{index}].api_key: {value:?} has nothing after \"pk_\"")]
    KeyEmpty { index: usize, value: String },
    #[error(
        "credentials[{index}].api_key: {value:?} may contain only letters, digits, '_' and '-'"
    )]
    KeyCharacters { index: usize, value: String },
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

/// Reads and checks a key-pairs file.
pub fn load_key_file(path: &Path) -> Result<Vec<Credential>, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: KeyFile = toml::from_str(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    check_credentials(&file.credentials).map_err(|source| KeyFileError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok(file.credentials)
}

/// Checks every pair's shape and that no key appears twice. Repeating the documented example
/// pair exactly is allowed, since it is accepted anyway.
pub fn check_credentials(credentials: &[Credential]) -> Result<(), CredentialError> {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, credential) in credentials.iter().enumerate() {
        check_shape(index, credential)?;
        check_default_conflict(index, credential)?;
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

fn check_shape(index: usize, credential: &Credential) -> Result<(), CredentialError> {
    let value = credential.api_key.clone();
    let Some(key_rest) = credential.api_key.strip_prefix(KEY_PREFIX) else {
        return Err(CredentialError::KeyPrefix { index, value });
    };
    if key_rest.is_empty() {
        return Err(CredentialError::KeyEmpty { index, value });
    }
    if !key_rest.chars().all(is_key_char) {
        return Err(CredentialError::KeyCharacters { index, value });
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
                "credentials[0].api_key: \"xk_test\" must start with \"pk_\"",
            ),
            (
                &[pair("pk_ok", "sk_ok"), pair("pk_", "sk_x")],
                "credentials[1].api_key: \"pk_\" has nothing after \"pk_\"",
            ),
            (
                &[pair("pk_a b", "sk_x")],
                "credentials[0].api_key: \"pk_a b\" may contain only letters, digits, '_' and '-'",
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
        assert_eq!(check_credentials(&[Credential::documented()]), Ok(()));
    }

    #[test]
    fn bad_files_are_reported_with_their_cause() {
        let cases = [
            (
                "unknown-top.toml",
                "keys = []\n",
                "unknown field `keys`, expected `credentials`",
            ),
            (
                "unknown-entry.toml",
                "[[credentials]]\napi_key = \"pk_a\"\napi_secret = \"sk_a\"\nnote = \"x\"\n",
                "unknown field `note`, expected `api_key` or `api_secret`",
            ),
            (
                "missing-secret.toml",
                "[[credentials]]\napi_key = \"pk_a\"\n",
                "missing field `api_secret`",
            ),
            (
                "wrong-type.toml",
                "[[credentials]]\napi_key = 7\napi_secret = \"sk_a\"\n",
                "invalid type: integer `7`, expected a string",
            ),
            (
                "not-toml.toml",
                "[[credentials]\n",
                "unclosed array table, expected `]`",
            ),
        ];

        for (name, text, expected) in cases {
            let path = write_file(name, text);
            let error = load_key_file(&path).expect_err(name);
            assert!(
                error
                    .to_string()
                    .starts_with("cannot parse key-pairs file /"),
                "{error}"
            );
            let KeyFileError::Parse { source, .. } = error else {
                panic!("{name}: not a parse error: {error}");
            };
            assert_eq!(source.message(), expected, "{name}");
        }
    }

    #[test]
    fn invalid_pairs_in_a_file_name_the_file_and_the_entry() {
        let path = write_file(
            "bad-prefix.toml",
            "[[credentials]]\napi_key = \"key_a\"\napi_secret = \"sk_a\"\n",
        );

        let error = load_key_file(&path).expect_err("prefix is wrong");

        assert_eq!(
            format!("{:#}", anyhow::Error::new(error)),
            format!(
                "invalid key-pairs file {}: credentials[0].api_key: \"key_a\" must start with \
                 \"pk_\"",
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
