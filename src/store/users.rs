//! People who sign in to the web dashboard, and their sessions.
//!
//! Passwords are stored only as Argon2id hashes (PHC strings). A session is a random
//! 256-bit value in an HttpOnly cookie; the store keeps only its SHA-256, with the user,
//! a per-session CSRF token for forms, and an expiry.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
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
    Random(crate::random::Error),
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Inside a transaction a user error rolls it back as an SQL error (the SQL error as
/// itself), so callers can use `?` in a transaction's closure.
impl From<UserError> for rusqlite::Error {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Sql(e) => e,
            other => rusqlite::Error::ToSqlConversionFailure(Box::new(other)),
        }
    }
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
    let salt_bytes = crate::random::bytes::<16>().map_err(UserError::Random)?;
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
    crate::store::audit::append(
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
        .map(|h| matches(&h, password.as_bytes()))
        .unwrap_or(false);
    ok && hash.is_some()
}

/// Argon2's working memory (19 MiB with the default parameters), kept for the next
/// check instead of being allocated and freed each time: freed blocks that size stay
/// in the allocator's per-thread arenas, so checks on many threads grew the process by
/// 19 MiB a thread. At most [`KEPT_BUFFERS`] are kept.
static BUFFERS: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
/// Password checks run at once by the sign-in page (`api::web::guard`).
const KEPT_BUFFERS: usize = 2;

/// Whether `password` hashes to `hash` (the PHC string's algorithm, version, parameters
/// and salt), in one of the kept working buffers.
fn matches(hash: &PasswordHash<'_>, password: &[u8]) -> bool {
    use argon2::password_hash::Output;
    use std::sync::PoisonError;
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut memory = BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_default();
    let blocks = params.block_count();
    memory.resize(blocks, argon2::Block::default());
    let mut out = vec![0u8; expected.len()];
    let done = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut memory[..blocks],
    );
    let mut kept = BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() < KEPT_BUFFERS {
        kept.push(memory);
    }
    drop(kept);
    // `Output`'s equality takes the same time wherever the bytes differ.
    done.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

fn digest(value: &str) -> String {
    crate::store::audit::hex(&Sha256::digest(value.as_bytes()))
}

/// A new session for `user`: (cookie value, CSRF token). It ends `ttl_ms` after it
/// started, or `idle_ms` after its last use ([`session`]), whichever comes first.
pub fn create_session(
    c: &Connection,
    user: &str,
    now: TimestampMs,
    ttl_ms: i64,
    idle_ms: i64,
) -> Result<(String, String), UserError> {
    let id = crate::random::token::<32>().map_err(UserError::Random)?;
    let csrf = crate::random::token::<32>().map_err(UserError::Random)?;
    c.execute("DELETE FROM api_session WHERE expires_at < ?1", [now])?;
    c.execute(
        "INSERT INTO api_session (id, user, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![digest(&id), user, csrf, now, now + ttl_ms.min(idle_ms)],
    )?;
    Ok((id, csrf))
}

/// How far a session's end must move before [`session`] writes it (so a dashboard that
/// polls does not write on every request).
const SLIDE_STEP_MS: i64 = 30_000;

/// The signed-in user behind a session cookie: (name, role, CSRF token). A session
/// still open is used now: it ends `idle_ms` from now (never later than `ttl_ms` after
/// it started).
pub fn session(
    c: &Connection,
    cookie: &str,
    now: TimestampMs,
    ttl_ms: i64,
    idle_ms: i64,
) -> rusqlite::Result<Option<(String, Role, String)>> {
    let id = digest(cookie);
    let row: Option<(String, String, String, i64, i64)> = c
        .query_row(
            "SELECT s.user, u.role, s.csrf, s.created_at, s.expires_at FROM api_session s
             JOIN api_user u ON u.name = s.user WHERE s.id = ?1 AND s.expires_at > ?2",
            params![id, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((user, role, csrf, created, expires)) = row else {
        return Ok(None);
    };
    let until = (now + idle_ms).min(created + ttl_ms);
    if until - expires >= SLIDE_STEP_MS {
        c.execute(
            "UPDATE api_session SET expires_at = ?2 WHERE id = ?1",
            params![id, until],
        )?;
    }
    Ok(Role::parse(&role).map(|r| (user, r, csrf)))
}

pub fn end_session(c: &Connection, cookie: &str) -> rusqlite::Result<()> {
    c.execute("DELETE FROM api_session WHERE id = ?1", [digest(cookie)])?;
    Ok(())
}

/// An audit record to append: kind, actor, subject, detail.
pub type AuditEntry<'a> = (&'a str, &'a str, &'a str, serde_json::Value);

impl crate::store::Store {
    /// A user's stored password hash and role, if the user exists.
    pub fn user_hash(&self, name: &str) -> Result<Option<(String, Role)>, crate::store::StoreError> {
        self.with_conn(|c| stored_hash(c, name))
    }

    /// Adds or changes a user (see [`store_user`]); true when the user existed.
    pub fn store_user(
        &mut self,
        name: &str,
        hash: &str,
        role: Role,
        actor: &str,
        now: TimestampMs,
    ) -> Result<bool, crate::store::StoreError> {
        self.transaction(|c| store_user(c, name, hash, role, actor, now))
    }

    /// Opens a web session for `user` and records `audit` with it, in one transaction;
    /// returns the session's cookie value.
    pub fn sign_in(
        &mut self,
        user: &str,
        (ttl_ms, idle_ms): (i64, i64),
        audit: AuditEntry<'_>,
        now: TimestampMs,
    ) -> Result<String, crate::store::StoreError> {
        self.transaction(|c| {
            let (session, _csrf) = create_session(c, user, now, ttl_ms, idle_ms)?;
            let (kind, actor, subject, detail) = &audit;
            crate::store::audit::append(c, now, kind, actor, subject, detail)?;
            Ok(session)
        })
    }

    /// Ends the web session of `cookie` and records `audit` with it, in one transaction.
    pub fn sign_out(
        &mut self,
        cookie: &str,
        audit: AuditEntry<'_>,
        now: TimestampMs,
    ) -> Result<(), crate::store::StoreError> {
        self.transaction(|c| {
            end_session(c, cookie)?;
            let (kind, actor, subject, detail) = &audit;
            crate::store::audit::append(c, now, kind, actor, subject, detail)?;
            Ok(())
        })
    }
}

impl crate::store::Store {
    /// The user, role and CSRF token of a live session (see [`session`]).
    /// Whether the web session of `cookie` has made an electronic signature yet: the
    /// first signature of a session needs the user name and the password, later ones
    /// the password (21 CFR 11.200(a)(1)).
    pub fn session_signed(&self, cookie: &str) -> Result<bool, crate::store::StoreError> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM api_session WHERE id = ?1 AND signed_at IS NOT NULL)",
                [digest(cookie)],
                |r| r.get(0),
            )
        })
    }

    /// Records that the web session of `cookie` has signed.
    pub fn mark_session_signed(&mut self, cookie: &str, now: TimestampMs) -> Result<(), crate::store::StoreError> {
        self.transaction(|c| {
            c.execute(
                "UPDATE api_session SET signed_at = ?2 WHERE id = ?1 AND signed_at IS NULL",
                params![digest(cookie), now],
            )
            .map(|_| ())
        })
    }

    pub fn session(
        &self,
        cookie: &str,
        now: TimestampMs,
        ttl_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<(String, Role, String)>, crate::store::StoreError> {
        self.with_conn(|c| session(c, cookie, now, ttl_ms, idle_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(MIGRATION).expect("schema");
        c.execute_batch(crate::store::audit::MIGRATION).expect("audit");
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
        let (id, csrf) = create_session(&c, "ana", 1000, 60_000, 60_000).expect("session");
        assert_eq!(
            session(&c, &id, 2000, 60_000, 60_000).expect("s"),
            Some(("ana".into(), Role::Admin, csrf))
        );
        assert_eq!(session(&c, &id, 70_000, 60_000, 60_000).expect("s"), None, "expired");
        assert_eq!(session(&c, "forged", 2000, 60_000, 60_000).expect("s"), None);
        end_session(&c, &id).expect("end");
        assert_eq!(session(&c, &id, 2000, 60_000, 60_000).expect("s"), None);
    }

    #[test]
    fn a_session_ends_after_its_idle_timeout_unless_used() {
        let c = db();
        set_user(&c, "ana", "correct horse battery", Role::Viewer, "x", 1).expect("add");
        let (ttl, idle) = (3_600_000, 60_000);
        let (used, _) = create_session(&c, "ana", 0, ttl, idle).expect("session");
        let (unused, _) = create_session(&c, "ana", 0, ttl, idle).expect("session");
        // Used every 50 s, the first lives on past its idle timeout...
        for t in (50_000..=500_000).step_by(50_000) {
            assert!(session(&c, &used, t, ttl, idle).expect("s").is_some(), "used at {t}");
        }
        // ...the other, untouched for longer than the idle timeout, has ended.
        assert_eq!(session(&c, &unused, 61_000, ttl, idle).expect("s"), None);
        // Never past its lifetime, however busy.
        let mut t = 500_000;
        while t < ttl {
            t += 50_000;
            let _ = session(&c, &used, t, ttl, idle).expect("s");
        }
        assert_eq!(session(&c, &used, ttl + 1, ttl, idle).expect("s"), None);
    }
}
