//! `s3://` URLs: the one parser of every S3 location Eventide takes (the spec's enrichment
//! locations, Glue table locations, the rules file, the Lambda's pipeline file, `eventide
//! replay --input`). It is pure, so it lives in the engine, where the spec validates with
//! it; the AWS adapters use it through `eventide_aws::sdk::s3`.

use thiserror::Error;

/// An S3 location, `s3://<bucket>/<key>`: an object, or a prefix when the key is empty or
/// ends with `/`.
///
/// ```
/// use eventide_engine::s3_url::S3Url;
/// let u = S3Url::parse("s3://data/tables/plans/")?;
/// assert_eq!((u.bucket.as_str(), u.key.as_str()), ("data", "tables/plans/"));
/// assert_eq!(u.to_string(), "s3://data/tables/plans/");
/// assert_eq!(S3Url::parse("s3://data")?.key, "");
/// let rules = S3Url::object("s3://ops/rules.toml")?;
/// assert_eq!(rules.key, "rules.toml");
/// assert!(S3Url::object("s3://ops/").is_err());
/// # Ok::<(), eventide_engine::s3_url::S3UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket (never empty).
    pub bucket: String,
    /// The key or prefix (may be empty: the whole bucket).
    pub key: String,
}

/// A string that is not an S3 location of the kind asked for.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{url:?} is not an S3 location s3://bucket/{}: {reason}", if *.object { "key" } else { "prefix" })]
pub struct S3UrlError {
    /// The string as given.
    pub url: String,
    /// Whether an object (a non-empty key) was asked for.
    pub object: bool,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl S3Url {
    /// Parses `s3://bucket[/key]` (also `s3a://`, as Hadoop and some Glue tables write
    /// it). The key may be empty or end with `/` (a prefix).
    ///
    /// # Errors
    /// [`S3UrlError`] naming the URL: another scheme, or an empty bucket.
    pub fn parse(url: &str) -> Result<S3Url, S3UrlError> {
        Self::parse_as(url, false)
    }

    /// Parses `s3://bucket/key` naming one object: as [`S3Url::parse`], and the key must
    /// be non-empty and not end with `/`.
    ///
    /// # Errors
    /// [`S3UrlError`] naming the URL: another scheme, an empty bucket or key, or a prefix.
    pub fn object(url: &str) -> Result<S3Url, S3UrlError> {
        Self::parse_as(url, true)
    }

    fn parse_as(url: &str, object: bool) -> Result<S3Url, S3UrlError> {
        let err = |reason| S3UrlError {
            url: url.to_string(),
            object,
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
            .ok_or_else(|| err("it does not start with s3://"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(err("no bucket"));
        }
        if object && key.is_empty() {
            return Err(err("no key"));
        }
        if object && key.ends_with('/') {
            return Err(err("it names a prefix, not an object"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(u: &S3Url) -> (&str, &str) {
        (&u.bucket, &u.key)
    }

    #[test]
    fn accepts_buckets_prefixes_and_objects() {
        for (url, bucket, key) in [
            ("s3://b", "b", ""),
            ("s3://b/", "b", ""),
            ("s3://b/p/", "b", "p/"),
            ("s3://b/p/q.csv", "b", "p/q.csv"),
            ("s3a://b/p/", "b", "p/"),
            ("s3://b/a//b", "b", "a//b"),
        ] {
            assert_eq!(parts(&S3Url::parse(url).unwrap()), (bucket, key), "{url}");
        }
        let o = S3Url::object("s3://b/rules/r.toml").unwrap();
        assert_eq!(parts(&o), ("b", "rules/r.toml"));
        assert_eq!(o.to_string(), "s3://b/rules/r.toml");
    }

    #[test]
    fn refuses_with_the_url_and_the_reason() {
        for (url, reason) in [
            ("", "it does not start with s3://"),
            ("b/k", "it does not start with s3://"),
            ("S3://b/k", "it does not start with s3://"),
            (
                "https://b.s3.amazonaws.com/k",
                "it does not start with s3://",
            ),
            ("s3://", "no bucket"),
            ("s3:///k", "no bucket"),
        ] {
            let e = S3Url::parse(url).unwrap_err();
            assert_eq!(e.reason, reason, "{url}");
            assert!(e.to_string().contains(&format!("{url:?}")), "{e}");
        }
        for (url, reason) in [
            ("s3://b", "no key"),
            ("s3://b/", "no key"),
            ("s3://b/p/", "it names a prefix, not an object"),
        ] {
            let e = S3Url::object(url).unwrap_err();
            assert_eq!(e.reason, reason, "{url}");
        }
        assert_eq!(
            S3Url::object("s3://b").unwrap_err().to_string(),
            "\"s3://b\" is not an S3 location s3://bucket/key: no key"
        );
    }
}
