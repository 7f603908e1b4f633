//! Secret randomness: keys, salts, session ids, link nonces. Read from the operating
//! system's generator through `getrandom`; when it cannot be read the caller gets the
//! error, never a weaker stand-in.

use base64::Engine as _;

pub use getrandom::Error;

/// `N` bytes from the operating system's generator.
pub fn bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// `N` random bytes as unpadded base64url (a cookie, a form token, a nonce).
pub fn token<const N: usize>() -> Result<String, Error> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes::<N>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_are_url_safe() {
        let a = token::<32>().expect("random");
        let b = token::<32>().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }
}
