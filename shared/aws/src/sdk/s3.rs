//! `s3://` URLs: the engine's one parser ([`eventide_engine::s3_url`]), where the adapters
//! look for their SDK plumbing.

pub use eventide_engine::s3_url::{S3Url, S3UrlError};
