//! What the sandbox may log or count of what a client sent: API keys only when shaped like a
//! key, paths with secret-like segments hidden, methods from a fixed set.

use axum::http::Method;

use super::keys::is_key_shaped;
use super::ratelimit::{ANONYMOUS, INVALID_KEY};

/// Stands for a path segment that may hold a secret.
const HIDDEN_SEGMENT: &str = "<hidden>";

/// Stands for a method outside the standard set.
const OTHER_METHOD: &str = "OTHER";

/// The rate-limit and log key for an `api_key` a client sent. A value that is not shaped like
/// a key may be a secret sent in the wrong field, so it is replaced by [`INVALID_KEY`].
pub fn key_label(api_key: &str) -> &str {
    if is_key_shaped(api_key) {
        api_key
    } else {
        INVALID_KEY
    }
}

/// True for the values an admin call may name as a rate-limit key.
pub fn is_rate_limit_key(value: &str) -> bool {
    is_key_shaped(value) || value == ANONYMOUS || value == INVALID_KEY
}

/// The path with every segment that may hold a secret replaced by [`HIDDEN_SEGMENT`]: one that
/// contains `sk_` (every secret starts so) in any case, or a `%` escape, which could spell it.
pub fn path_label(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if may_hold_secret(segment) {
                HIDDEN_SEGMENT
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An admin path for the log: secret-like segments hidden, and the key of a `/keys/{api_key}/`
/// call kept only when shaped like a key.
pub fn admin_path_label(path: &str) -> String {
    let mut previous = "";
    path.split('/')
        .map(|segment| {
            let label = if previous == "keys" && !is_key_shaped(segment) {
                INVALID_KEY
            } else if may_hold_secret(segment) {
                HIDDEN_SEGMENT
            } else {
                segment
            };
            previous = segment;
            label
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The method for logs and stats; any token is a valid method, a secret included.
pub fn method_label(method: &Method) -> &str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    if STANDARD.contains(method) {
        method.as_str()
    } else {
        OTHER_METHOD
    }
}

fn may_hold_secret(segment: &str) -> bool {
    segment.contains('%') || segment.to_ascii_lowercase().contains("sk_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_shaped_values_are_kept_as_keys() {
        let cases = [
            ("pk_live_abc123", "pk_live_abc123"),
            ("sk_live_xyz789", "invalid"),
            ("pk_", "invalid"),
            ("pk_a sk_live_xyz789", "invalid"),
            ("", "invalid"),
            ("anonymous", "invalid"),
        ];

        for (api_key, expected) in cases {
            assert_eq!(key_label(api_key), expected, "{api_key}");
        }
    }

    #[test]
    fn admin_calls_may_name_keys_and_the_placeholders() {
        assert!(is_rate_limit_key("pk_live_abc123"));
        assert!(is_rate_limit_key("anonymous"));
        assert!(is_rate_limit_key("invalid"));
        assert!(!is_rate_limit_key("sk_live_xyz789"));
        assert!(!is_rate_limit_key("pk_a/b"));
    }

    #[test]
    fn secret_like_path_segments_are_hidden() {
        let cases = [
            ("/v1/sync/sessions", "/v1/sync/sessions"),
            ("/v1/keys/sk_live_xyz789", "/v1/keys/<hidden>"),
            ("/v1/x=SK_LIVE/y", "/v1/<hidden>/y"),
            ("/v1/%73k_live_xyz789/", "/v1/<hidden>/"),
            ("/v1/task_list", "/v1/<hidden>"),
        ];

        for (path, expected) in cases {
            assert_eq!(path_label(path), expected, "{path}");
        }
    }

    #[test]
    fn admin_paths_keep_only_key_shaped_keys() {
        let cases = [
            (
                "/_sandbox/keys/pk_live_abc123/revoke",
                "/_sandbox/keys/pk_live_abc123/revoke",
            ),
            (
                "/_sandbox/keys/sk_live_xyz789/revoke",
                "/_sandbox/keys/invalid/revoke",
            ),
            (
                "/_sandbox/keys/hunter2/restore",
                "/_sandbox/keys/invalid/restore",
            ),
            (
                "/_sandbox/quota/sk_x/exhaust",
                "/_sandbox/quota/<hidden>/exhaust",
            ),
            ("/_sandbox/stats", "/_sandbox/stats"),
        ];

        for (path, expected) in cases {
            assert_eq!(admin_path_label(path), expected, "{path}");
        }
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        let custom = Method::from_bytes(b"sk_live_xyz789").expect("a valid token");

        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&custom), "OTHER");
    }
}
