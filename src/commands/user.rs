//! `user add`: a person who signs in to the web dashboard, with their password and role,
//! stored in [`crate::store::users`].

use std::path::Path;

use super::{CommandError, load_for_reading};
use crate::config::{Config, Role};
use crate::model::now_ms;
use crate::store::{Store, users};

/// `user add`: adds user `name` with `role`, or sets an existing user's password and role,
/// and with `printed_name` the name their electronic signatures show. The password is
/// read from standard input (without echo on a terminal).
pub fn add(config: &Path, name: &str, role: &str, printed_name: Option<&str>) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let role = Role::parse(role).ok_or_else(|| CommandError::BadInput(format!("--role: unknown role {role:?}")))?;
    if let Some(printed) = printed_name {
        check_printed_name(printed)?;
    }
    let password = super::read_password(&format!("password for {name}: "))?;
    let new = set(&cfg, name, role, &password)?;
    if let Some(printed) = printed_name {
        let mut store = Store::open(&cfg.store.path)?;
        store.set_printed_name(name, printed.trim(), &crate::store::audit::local_actor(), now_ms())?;
        println!("user {name}: signs as {:?}", printed.trim());
    }
    if new {
        println!("user {name} added with role {}", role.as_str());
    } else {
        println!(
            "user {name}: password and role ({}) set; their sessions ended",
            role.as_str()
        );
    }
    Ok(())
}

/// A printed name: what a signature shows, so a person's name, one line.
fn check_printed_name(printed: &str) -> Result<(), CommandError> {
    let trimmed = printed.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 120 || trimmed.chars().any(char::is_control) {
        return Err(CommandError::BadInput(format!(
            "--name: a person's printed name, 1-120 characters on one line; found {printed:?}"
        )));
    }
    Ok(())
}

/// Stores user `name` with `password` and `role`; whether the user is new. Bad input for
/// a name or password the store refuses.
pub fn set(cfg: &Config, name: &str, role: Role, password: &str) -> Result<bool, CommandError> {
    let hash = match users::hash_password(name, password) {
        Ok(h) => h,
        Err(e @ (users::UserError::BadName(_) | users::UserError::ShortPassword)) => {
            return Err(CommandError::BadInput(format!("cryowatch: {e}")));
        }
        Err(e) => return Err(CommandError::User(e)),
    };
    let mut store = Store::open(&cfg.store.path)?;
    let actor = crate::store::audit::local_actor();
    Ok(store.store_user(name, &hash, role, &actor, now_ms())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::site;

    #[test]
    fn a_user_is_added_then_changed_and_bad_names_and_short_passwords_are_bad_input() {
        let site = site("");
        let cfg = site.config();
        assert!(set(&cfg, "alice", Role::Viewer, "correct horse battery").expect("added"));
        assert!(!set(&cfg, "alice", Role::Operator, "another long password").expect("changed"));
        assert!(set(&cfg, "bob", Role::Admin, "correct horse battery").expect("added"));
        match set(&cfg, "alice", Role::Viewer, "short") {
            Err(CommandError::BadInput(m)) => {
                assert_eq!(m, "cryowatch: the password must be at least 12 characters")
            }
            other => panic!("expected bad input, got {other:?}"),
        }
        assert!(matches!(
            set(&cfg, "bad name", Role::Viewer, "correct horse battery"),
            Err(CommandError::BadInput(m)) if m.starts_with("cryowatch: user names are")
        ));
    }

    #[test]
    fn an_unknown_role_is_bad_input_before_the_password_is_read() {
        let site = site("");
        match add(&site.path, "alice", "root", None) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--role: unknown role \"root\""),
            other => panic!("expected bad input, got {other:?}"),
        }
    }
}
