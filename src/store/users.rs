//! People who sign in to the web dashboard, and their sessions.
//!
//! Passwords are stored only as Argon2id hashes (PHC strings). A session is a random
//! 256-bit value in an HttpOnly cookie; the store keeps only its SHA-256, with the user,
//! a per-session CSRF token for forms, and an expiry.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::config::Role;
use crate::model::TimestampMs;

/// Schema version 9.
pub(super) const MIGRATION: &str = "
    CREATE TABLE api_user (
        name       TEXT PRIMARY KEY,
        hash       TEXT NOT NULL,
        role       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_session (
        id         TEXT PRIMARY KEY,
        user       TEXT NOT NULL,
        csrf       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );";

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user names are 1-64 letters, digits, '.', '-', '_' or '@'; found {0:?}")]
    BadName(String),
    #[error("the password must be at least 12 characters")]
    ShortPassword,
    #[error("cannot read random bytes for the salt: {0}")]
    Random(std::io::Error),
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

/// Checks the name and password and makes the password's Argon2id hash (PHC string).
pub fn hash_password(name: &str, password: &str) -> Result<String, UserError> {
    if !valid_name(name) {
        return Err(UserError::BadName(name.to_string()));
    }
    if password.chars().count() < 12 {
        return Err(UserError::ShortPassword);
    }
    let salt_bytes = crate::notify::acklink::random_bytes::<16>().map_err(UserError::Random)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| UserError::Hash(e.to_string()))?
        .to_string())
}

/// Adds a user or replaces an existing user's password hash and role (inside the
/// caller's transaction), ending their sessions; recorded in the audit trail by `actor`.
/// Returns whether the user is new.
pub fn store_user(
    c: &Connection,
    name: &str,
    hash: &str,
    role: Role,
    actor: &str,
    now: TimestampMs,
) -> rusqlite::Result<bool> {
    let existed: bool = c.query_row("SELECT EXISTS (SELECT 1 FROM api_user WHERE name = ?1)", [name], |r| {
        r.get(0)
    })?;
    c.execute(
        "INSERT INTO api_user (name, hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, role = excluded.role",
        params![name, hash, role.as_str(), now],
    )?;
    c.execute("DELETE FROM api_session WHERE user = ?1", [name])?;
    let kind = if existed { "user.changed" } else { "user.added" };
    crate::audit::append(
        c,
        now,
        kind,
        actor,
        &format!("user {name}"),
        &serde_json::json!({ "role": role.as_str() }),
    )?;
    Ok(!existed)
}

/// [`hash_password`] then [`store_user`].
pub fn set_user(
    c: &Connection,
    name: &str,
    password: &str,
    role: Role,
    actor: &str,
    now: TimestampMs,
) -> Result<bool, UserError> {
    let hash = hash_password(name, password)?;
    Ok(store_user(c, name, &hash, role, actor, now)?)
}

/// The user's stored hash and role, if the user exists.
pub fn stored_hash(c: &Connection, name: &str) -> rusqlite::Result<Option<(String, Role)>> {
    let row: Option<(String, String)> = c
        .query_row("SELECT hash, role FROM api_user WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(row.and_then(|(h, r)| Role::parse(&r).map(|r| (h, r))))
}

/// Whether `password` matches `hash`. With no hash (unknown user) a hash made once is
/// checked instead, so timing does not tell which names exist. Slow on purpose
/// (Argon2): run it outside any lock.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        SaltString::encode_b64(b"cryowatch-dummy!")
            .ok()
            .and_then(|salt| Argon2::default().hash_password(b"-", &salt).ok().map(|h| h.to_string()))
            .unwrap_or_default()
    });
    let ok = PasswordHash::new(hash.unwrap_or(dummy))
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false);
    ok && hash.is_some()
}

fn digest(value: &str) -> String {
    crate::audit::hex(&Sha256::digest(value.as_bytes()))
}

fn random_token() -> Result<String, std::io::Error> {
    use base64::Engine as _;
    let bytes = crate::notify::acklink::random_bytes::<32>()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A new session for `user`: (cookie value, CSRF token).
pub fn create_session(
    c: &Connection,
    user: &str,
    now: TimestampMs,
    ttl_ms: i64,
) -> Result<(String, String), UserError> {
    let id = random_token().map_err(UserError::Random)?;
    let csrf = random_token().map_err(UserError::Random)?;
    c.execute("DELETE FROM api_session WHERE expires_at < ?1", [now])?;
    c.execute(
        "INSERT INTO api_session (id, user, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![digest(&id), user, csrf, now, now + ttl_ms],
    )?;
    Ok((id, csrf))
}

/// The signed-in user behind a session cookie: (name, role, CSRF token).
pub fn session(c: &Connection, cookie: &str, now: TimestampMs) -> rusqlite::Result<Option<(String, Role, String)>> {
    let row: Option<(String, String, String)> = c
        .query_row(
            "SELECT s.user, u.role, s.csrf FROM api_session s JOIN api_user u ON u.name = s.user
             WHERE s.id = ?1 AND s.expires_at > ?2",
            params![digest(cookie), now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(u, role, csrf)| Role::parse(&role).map(|r| (u, r, csrf))))
}

pub fn end_session(c: &Connection, cookie: &str) -> rusqlite::Result<()> {
    c.execute("DELETE FROM api_session WHERE id = ?1", [digest(cookie)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(MIGRATION).expect("schema");
        c.execute_batch(crate::audit::MIGRATION).expect("audit");
        c
    }

    /// The role `password` signs `name` in with, the way the sign-in page checks it.
    fn check_password(c: &Connection, name: &str, password: &str) -> rusqlite::Result<Option<Role>> {
        let stored = stored_hash(c, name)?;
        let ok = verify_password(stored.as_ref().map(|(h, _)| h.as_str()), password);
        Ok(stored.filter(|_| ok).map(|(_, r)| r))
    }

    #[test]
    fn a_password_checks_only_against_its_own_hash() {
        let c = db();
        assert!(set_user(&c, "ana", "correct horse battery", Role::Operator, "cli:root", 1).expect("add"));
        assert_eq!(
            check_password(&c, "ana", "correct horse battery").expect("check"),
            Some(Role::Operator)
        );
        assert_eq!(check_password(&c, "ana", "wrong horse battery").expect("check"), None);
        assert_eq!(check_password(&c, "bob", "correct horse battery").expect("check"), None);
        let stored: String = c
            .query_row("SELECT hash FROM api_user", [], |r| r.get(0))
            .expect("hash");
        assert!(
            stored.starts_with("$argon2id$") && !stored.contains("correct"),
            "{stored}"
        );
        assert!(matches!(
            set_user(&c, "ana", "short", Role::Viewer, "x", 1),
            Err(UserError::ShortPassword)
        ));
        assert!(matches!(
            set_user(&c, "a b", "long enough pass", Role::Viewer, "x", 1),
            Err(UserError::BadName(_))
        ));
    }

    #[test]
    fn sessions_expire_and_end() {
        let c = db();
        set_user(&c, "ana", "correct horse battery", Role::Admin, "x", 1).expect("add");
        let (id, csrf) = create_session(&c, "ana", 1000, 60_000).expect("session");
        assert_eq!(
            session(&c, &id, 2000).expect("s"),
            Some(("ana".into(), Role::Admin, csrf))
        );
        assert_eq!(session(&c, &id, 70_000).expect("s"), None, "expired");
        assert_eq!(session(&c, "forged", 2000).expect("s"), None);
        end_session(&c, &id).expect("end");
        assert_eq!(session(&c, &id, 2000).expect("s"), None);
    }
}
