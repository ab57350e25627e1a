//! The one rule that keeps secrets out of logs and error messages: every URL and every client option a process
//! logs or puts in an error goes through here first.
//!
//! - [`is_secret_name`]: whether a name (a URL query parameter, a Kafka property) looks like it holds a secret.
//! - [`url`]: a URL with the password of its userinfo and the values of secret-looking query (and fragment)
//!   parameters masked.
//! - [`option`]: a `key=value` option's value, masked when its key looks secret.
//! - [`SensitiveUrl`]: a URL setting whose `Debug` and `Display` go through [`url`], so a settings tree can be
//!   logged whole.
//!
//! The rule errs on the side of hiding: a name that merely resembles a secret (`sasl.mechanism`, `ssl.key.location`)
//! is masked too, because a log line missing a harmless value costs little and one showing a credential costs a
//! rotation.

use std::{borrow::Cow, convert::Infallible, fmt, str::FromStr};

/// What a hidden value is replaced with.
pub const MASK: &str = "********";

/// Fragments of names that hold secrets, lowercase. `key` covers `api_key`, `apikey`, `ssl.key.pem`,
/// `ssl.key.password`; `sasl` covers every SASL property (`sasl.oauthbearer.config` carries a client secret);
/// `auth` covers `authorization` and `auth_token`. Not `sig` or `session`: they would hide
/// `partition.assignment.strategy` and `session.timeout.ms`, which operators need to see.
const SECRET_NAME_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "key",
    "credential",
    "sasl",
    "auth",
    "signature",
    "private",
    "jwt",
    "bearer",
    "cookie",
];

/// Whether a name looks like it holds a secret: it contains, ignoring case, one of `password`, `secret`, `token`,
/// `key`, `credential`, `sasl`, `auth` and the like.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAME_FRAGMENTS.iter().any(|fragment| name.contains(fragment))
}

/// The value of option `key`, or [`MASK`] when the key looks secret.
pub fn option<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_name(key) { MASK } else { value }
}

/// `raw` with its secrets masked: the password of the userinfo (`user:********@host`) and the value of every
/// query or fragment parameter whose name looks secret (`?password=********`). Works on text, so it never fails
/// and leaves everything else exactly as written, even in a URL that does not parse.
pub fn url(raw: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = split_once_keep(raw, '#');
    let (before_query, query) = split_once_keep(before_fragment, '?');
    let redacted = format!(
        "{}{}{}",
        redact_userinfo(before_query),
        query.map(|query| format!("?{}", redact_parameters(query))).unwrap_or_default(),
        fragment.map(|fragment| format!("#{}", redact_parameters(fragment))).unwrap_or_default(),
    );
    if redacted == raw { Cow::Borrowed(raw) } else { Cow::Owned(redacted) }
}

fn split_once_keep(s: &str, separator: char) -> (&str, Option<&str>) {
    match s.split_once(separator) {
        Some((before, after)) => (before, Some(after)),
        None => (s, None),
    }
}

/// `scheme://user:password@host/path` with the password masked. The userinfo ends at the authority's last `@`,
/// so a password with an unescaped `@` is hidden whole.
fn redact_userinfo(before_query: &str) -> Cow<'_, str> {
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let rest = &before_query[authority_start..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return Cow::Borrowed(before_query) };
    let Some(colon) = authority[..at].find(':') else { return Cow::Borrowed(before_query) };
    let (password_start, password_end) = (authority_start + colon + 1, authority_start + at);
    Cow::Owned(format!("{}{MASK}{}", &before_query[..password_start], &before_query[password_end..]))
}

/// `a=1&password=x;b` with the values of secret-looking names masked (`&` and `;` both separate parameters).
fn redact_parameters(parameters: &str) -> String {
    let mut out = String::with_capacity(parameters.len());
    let mut rest = parameters;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (parameter, tail) = rest.split_at(end);
        match parameter.split_once('=') {
            Some((name, _)) if is_secret_name(&percent_decoded(name)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(parameter),
        }
        let Some(separator) = tail.chars().next() else { return out };
        out.push(separator);
        rest = &tail[1..];
    }
}

/// Enough percent-decoding to see a name like `pass%77ord` for what it is.
fn percent_decoded(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A URL setting that may carry credentials (`ELASTICSEARCH_URL`). `Debug` and `Display` show it through
/// [`url`]; only [`expose`](Self::expose) gives it whole, for connecting.
#[derive(Clone, PartialEq, Eq)]
pub struct SensitiveUrl(String);

impl SensitiveUrl {
    /// The URL with its secrets, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SensitiveUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SensitiveUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl FromStr for SensitiveUrl {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&url(&self.0))
    }
}

impl fmt::Debug for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", url(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_userinfo_password_is_masked_and_the_user_kept() {
        assert_eq!(url("postgres://shop:s3cret@db:5432/shop"), "postgres://shop:********@db:5432/shop");
        assert_eq!(url("https://elastic:p@ss@es.example:9243"), "https://elastic:********@es.example:9243");
        assert_eq!(url("http://user:@host/"), "http://user:********@host/");
    }

    #[test]
    fn urls_without_secrets_are_left_exactly_as_written() {
        for plain in [
            "postgres://postgres@127.0.0.1:5432/shop_order",
            "http://127.0.0.1:9200",
            "http://host/path?take=10&skip=5#top",
            "http://host/a@b",
            "not a url at all",
            "",
        ] {
            assert!(matches!(url(plain), Cow::Borrowed(_)), "{plain}");
        }
    }

    #[test]
    fn secret_looking_query_and_fragment_parameters_are_masked() {
        assert_eq!(
            url("postgres://db/shop?sslmode=require&password=hunter2&application_name=order"),
            "postgres://db/shop?sslmode=require&password=********&application_name=order"
        );
        assert_eq!(
            url("https://es/?api_key=abc;Access_Token=def&X-Amz-Signature=ghi&pass%77ord=jkl"),
            "https://es/?api_key=********;Access_Token=********&X-Amz-Signature=********&pass%77ord=********"
        );
        assert_eq!(
            url("https://app/#access_token=abc&state=1"),
            "https://app/#access_token=********&state=1"
        );
        assert_eq!(
            url("postgres://u:pw@h1,h2/db?sslpassword=x"),
            "postgres://u:********@h1,h2/db?sslpassword=********"
        );
    }

    #[test]
    fn secret_names_are_recognised_whatever_their_case_or_separator() {
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.username",
            "PASSWORD",
            "apiKey",
            "Credentials",
            "authorization",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in [
            "linger.ms",
            "acks",
            "bootstrap.servers",
            "compression.type",
            "session.timeout.ms",
            "partition.assignment.strategy",
            "sslmode",
            "take",
        ] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    #[test]
    fn options_show_their_value_unless_the_key_looks_secret() {
        assert_eq!(option("sasl.oauthbearer.config", "clientSecret=xyz"), MASK);
        assert_eq!(option("linger.ms", "20"), "20");
    }

    #[test]
    fn a_sensitive_url_shows_only_its_redacted_form() {
        let setting: SensitiveUrl = "https://elastic:changeme@es:9200/?api_key=k".parse().unwrap();

        assert_eq!(setting.to_string(), "https://elastic:********@es:9200/?api_key=********");
        assert_eq!(format!("{setting:?}"), "\"https://elastic:********@es:9200/?api_key=********\"");
        assert_eq!(setting.expose(), "https://elastic:changeme@es:9200/?api_key=k");
    }
}
