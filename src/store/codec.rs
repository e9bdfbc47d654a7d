//! Versioned encoding of stored values. Every value starts with one byte naming its format
//! version, followed by JSON. A type that changes shape bumps `VERSION` and teaches `upgrade`
//! how to read its predecessor, so an old store decodes without a rewrite.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// A value kept in the store.
pub trait Versioned: Serialize + DeserializeOwned {
    /// What kind of record this is, for error messages.
    const KIND: &'static str;
    /// The format version written by this binary.
    const VERSION: u8;

    /// Decodes a value written with an older `version`. The default knows no older versions.
    fn upgrade(version: u8, _json: &[u8]) -> Result<Self, StoreError> {
        Err(StoreError::Corrupt(format!(
            "{} record has unknown format version {version}",
            Self::KIND
        )))
    }
}

pub fn encode<T: Versioned>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(T::VERSION);
    // Serializing plain structs of strings and numbers into a Vec cannot fail.
    serde_json::to_writer(&mut out, value).expect("stored values serialize");
    out
}

pub fn decode<T: Versioned>(bytes: &[u8]) -> Result<T, StoreError> {
    let (&version, json) = bytes
        .split_first()
        .ok_or_else(|| StoreError::Corrupt(format!("empty {} record", T::KIND)))?;
    if version == T::VERSION {
        serde_json::from_slice(json)
            .map_err(|e| StoreError::Corrupt(format!("{} record: {e}", T::KIND)))
    } else if version < T::VERSION {
        T::upgrade(version, json)
    } else {
        Err(StoreError::Corrupt(format!(
            "{} record has format version {version}, newer than this binary's {}",
            T::KIND,
            T::VERSION
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Thing {
        name: String,
        size: u32,
    }

    impl Versioned for Thing {
        const KIND: &'static str = "thing";
        const VERSION: u8 = 2;
        fn upgrade(version: u8, json: &[u8]) -> Result<Self, StoreError> {
            #[derive(Deserialize)]
            struct ThingV1 {
                name: String,
            }
            match version {
                1 => {
                    let old: ThingV1 = serde_json::from_slice(json)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(Thing {
                        name: old.name,
                        size: 0,
                    })
                }
                _ => Err(StoreError::Corrupt("unknown".into())),
            }
        }
    }

    #[test]
    fn round_trips_the_current_version() {
        let thing = Thing {
            name: "a".into(),
            size: 3,
        };
        assert_eq!(decode::<Thing>(&encode(&thing)).unwrap(), thing);
    }

    #[test]
    fn reads_the_previous_version_through_upgrade() {
        let mut old = vec![1u8];
        old.extend_from_slice(br#"{"name":"b"}"#);
        assert_eq!(
            decode::<Thing>(&old).unwrap(),
            Thing {
                name: "b".into(),
                size: 0
            }
        );
    }

    #[test]
    fn refuses_newer_and_empty_values() {
        assert!(matches!(
            decode::<Thing>(&[9, b'{', b'}']),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(decode::<Thing>(&[]), Err(StoreError::Corrupt(_))));
    }
}
