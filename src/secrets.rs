//! Making and checking secrets: API keys, the admin token and record ids. Keys are
//! high-entropy random strings shown once; only their SHA-256 is stored, and every comparison
//! of a presented secret against a stored hash runs in constant time.

use rand::{distr::Alphanumeric, rand_core::UnwrapErr, rngs::SysRng, RngExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "dl_";
const PUBLIC_PART_LEN: usize = 12;
const SECRET_PART_LEN: usize = 40;
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly made API key: `secret` is shown to the caller once and then forgotten.
pub struct IssuedKey {
    pub id: String,
    pub secret: String,
    pub hash_hex: String,
}

/// The operating system's random source; every secret and id is drawn from it directly.
fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = os_rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new key `dl_<12 public chars>_<40 secret chars>` (about 238 bits of secret).
pub fn issue_api_key() -> IssuedKey {
    let public = random_from(LOWER_ALNUM, PUBLIC_PART_LEN);
    let secret_part: String = os_rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_PART_LEN)
        .map(char::from)
        .collect();
    let secret = format!("{KEY_PREFIX}{public}_{secret_part}");
    IssuedKey {
        id: key_id(&public),
        hash_hex: sha256_hex(&secret),
        secret,
    }
}

fn key_id(public: &str) -> String {
    format!("key_{public}")
}

/// The key id a presented key claims, if it has the shape of one of our keys.
pub fn key_id_of(presented: &str) -> Option<String> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (public, secret) = rest.split_once('_')?;
    let well_formed = public.len() == PUBLIC_PART_LEN
        && secret.len() == SECRET_PART_LEN
        && public.bytes().all(|b| LOWER_ALNUM.contains(&b))
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| key_id(public))
}

/// A new admin token (`dla_` + 48 random characters).
pub fn new_admin_token() -> String {
    let body: String = os_rng()
        .sample_iter(Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    format!("dla_{body}")
}

/// A new random token of `len` letters and digits (session ids, CSRF tokens).
pub fn random_token(len: usize) -> String {
    os_rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn sha256(data: &str) -> [u8; 32] {
    Sha256::digest(data.as_bytes()).into()
}

pub fn sha256_hex(data: &str) -> String {
    hex(&sha256(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Whether `presented` hashes to `stored_hash_hex`, compared in constant time.
pub fn matches_hash(presented: &str, stored_hash_hex: &str) -> bool {
    let computed = sha256_hex(presented);
    computed.as_bytes().ct_eq(stored_hash_hex.as_bytes()).into()
}

/// Constant-time equality of two secrets of any length (compares their digests).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    sha256(a).ct_eq(&sha256(b)).into()
}

/// A webhook signing secret (`whsec_` + 40 random characters), shown once at creation.
pub fn new_webhook_secret() -> String {
    let body: String = os_rng()
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("whsec_{body}")
}

/// The `Driftlock-Signature` header of a webhook: `t=<unix secs>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" keyed by the secret>`, the scheme Stripe uses, so receivers can reuse code.
pub fn sign_webhook(secret: &str, timestamp_secs: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp_secs},v1={}",
        hex(&mac.finalize().into_bytes())
    )
}

/// A record id: `<prefix>_` then 11 hex digits of milliseconds (so ids sort by creation time)
/// and 8 random hex digits.
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    let random: u32 = os_rng().random();
    format!("{prefix}_{:011x}{random:08x}", now_ms.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_key_parses_back_to_its_id_and_matches_its_hash() {
        let key = issue_api_key();
        assert!(key.secret.starts_with("dl_"));
        assert_eq!(key_id_of(&key.secret).as_deref(), Some(key.id.as_str()));
        assert!(matches_hash(&key.secret, &key.hash_hex));
        assert!(!matches_hash(&format!("{}x", key.secret), &key.hash_hex));
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for bad in [
            "",
            "dl_",
            "dl_abc_def",
            "xx_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "dl_AAAAAAAAAAAA_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "dl_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
        ] {
            assert_eq!(key_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_and_ids_do_not_repeat() {
        let a = issue_api_key();
        let b = issue_api_key();
        assert_ne!(a.secret, b.secret);
        assert_ne!(new_id("org", 5), new_id("org", 5));
        assert!(new_id("org", 1) < new_id("org", 2_000_000_000_000));
    }

    #[test]
    fn webhook_signatures_follow_the_documented_scheme() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (Python hmac module).
        let sig = sign_webhook("key", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Parsing any presented credential never panics, and only our key shape yields an id.
            #[test]
            fn key_parsing_never_panics(s in ".{0,80}") {
                if let Some(id) = key_id_of(&s) {
                    prop_assert!(s.starts_with("dl_") && id.starts_with("key_"));
                }
            }
        }
    }
}
