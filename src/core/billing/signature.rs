//! Stripe webhook signatures, exactly as Stripe specifies: the `Stripe-Signature` header holds
//! `t=<unix seconds>` and one or more `v1=<hex>` (plus `v0` and others, ignored); a payload is
//! authentic when any `v1` equals HMAC-SHA256(secret, "<t>.<payload>"), compared in constant
//! time, and `t` is within the tolerance of now.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("no v1 signature matches the payload")]
    NoMatch,
    #[error("the signature timestamp is outside the tolerance of {TOLERANCE_SECS} s")]
    Stale,
}

fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => v1.push(decode_hex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoMatch);
    }
    Ok((timestamp, v1))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The expected v1 signature bytes for `payload` signed at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// Checks `header` against `payload` for `secret` at `now_secs`.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secret: &str,
    now_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (timestamp, candidates) = parse(header)?;
    let expected = sign(secret, timestamp, payload);
    let matched = candidates.iter().fold(false, |found, c| {
        found | bool::from(c.as_slice().ct_eq(&expected))
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(secret: &str, t: i64, payload: &[u8]) -> String {
        let hex: String = sign(secret, t, payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn accepts_a_good_signature_among_several() {
        let payload = br#"{"id":"evt_1"}"#;
        let good = header("whsec_test", 1_000, payload);
        let with_old_secret = format!("{},v1={},v0=abc", good, "00".repeat(32));
        assert_eq!(verify(Some(&good), payload, "whsec_test", 1_100), Ok(()));
        assert_eq!(
            verify(Some(&with_old_secret), payload, "whsec_test", 1_100),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampered_stale_unsigned_and_malformed() {
        let payload = br#"{"id":"evt_1"}"#;
        let good = header("whsec_test", 1_000, payload);
        assert_eq!(
            verify(Some(&good), br#"{"id":"evt_2"}"#, "whsec_test", 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&good), payload, "whsec_other", 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&good), payload, "whsec_test", 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, payload, "whsec_test", 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("t=1000"), payload, "whsec_test", 1_000),
            Err(SignatureError::NoMatch)
        );
        for bad in ["", "garbage", "t=abc,v1=00", "v1=zz", "t=1000,v1=abc"] {
            assert!(
                verify(Some(bad), payload, "whsec_test", 1_000).is_err(),
                "{bad}"
            );
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// No header or payload makes verification panic, and none but a true signature passes.
            #[test]
            fn verification_never_panics_or_accepts_forgeries(header in ".{0,200}", payload in proptest::collection::vec(any::<u8>(), 0..200)) {
                prop_assert!(verify(Some(&header), &payload, "whsec_fuzz", 1_000).is_err());
            }
        }
    }
}
