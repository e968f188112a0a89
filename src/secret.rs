//! A string that must never be shown: API secrets and access tokens.

use std::fmt;

/// Holds a secret value; `Debug` and `Display` render `<secret>` so that it cannot leak
/// through a log line, an error message or a page by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the one place that must send it over the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("sk_live_xyz789");

        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(secret.to_string(), "<secret>");
        assert_eq!(secret.expose(), "sk_live_xyz789");
    }
}
