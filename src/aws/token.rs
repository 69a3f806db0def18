//! Registry credentials handed out by ECR and ECR Public.
//!
//! `GetAuthorizationToken` returns `base64("AWS:<password>")`, valid for 12
//! hours. The registry client logs in with it as basic credentials (ECR) or at
//! the token realm (ECR Public). The password is a credential: [`RegistryToken`]
//! never shows it in `Debug`, and nothing displays it.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;

/// A registry user name and password from an ECR or ECR Public authorization token.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryToken {
    username: String,
    password: String,
    expires_at: Option<SystemTime>,
}

/// Why an authorization token could not be decoded. Never contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The response carried no token.
    #[error("the response carried no authorization token")]
    Missing,
    /// The token is not base64 of `user:password` in UTF-8.
    #[error("the authorization token is not base64 of user:password")]
    Malformed,
}

impl RegistryToken {
    /// Decodes `base64("<user>:<password>")` as ECR hands it out.
    pub fn decode(token: &str, expires_at: Option<SystemTime>) -> Result<Self, TokenError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| TokenError::Malformed)?;
        let text = String::from_utf8(bytes).map_err(|_| TokenError::Malformed)?;
        let (username, password) = text.split_once(':').ok_or(TokenError::Malformed)?;
        if username.is_empty() || password.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            username: username.to_string(),
            password: password.to_string(),
            expires_at,
        })
    }

    /// The user name, `AWS` for both registries.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password: a credential, to be sent to the registry and nowhere else.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// When the token stops working, when AWS said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

impl fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryToken")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_user_and_password_and_never_shows_the_password() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("AWS:s3cr3t-pa55");
        let token = RegistryToken::decode(&encoded, None).unwrap();
        assert_eq!(token.username(), "AWS");
        assert_eq!(token.password(), "s3cr3t-pa55");
        let debug = format!("{token:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_them() {
        let no_colon = base64::engine::general_purpose::STANDARD.encode("AWSs3cr3t");
        let empty_password = base64::engine::general_purpose::STANDARD.encode("AWS:");
        for token in ["not base64!", no_colon.as_str(), empty_password.as_str()] {
            let err = RegistryToken::decode(token, None).unwrap_err();
            assert_eq!(err, TokenError::Malformed);
            assert!(!err.to_string().contains("s3cr3t"));
        }
    }
}
