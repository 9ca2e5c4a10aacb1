//! The NATS users of a fleet run outside Kubernetes (`resizer-admin
//! nats-config`): one nkey seed file per component role in a directory, and
//! nats-server's `authorization` block for their public keys.
//!
//! Seeds are created only when missing, so running it again keeps every
//! component's user; the block is always rendered from the files as they are.

use contracts::access::{self, Role, User};
use std::{
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// The seed file of `role` in `dir`: `<dir>/<role>.nk`.
pub fn seed_file(dir: &Path, role: Role) -> PathBuf {
    dir.join(format!("{}.nk", role.name()))
}

/// Makes `dir` (mode 0700) hold a seed file (mode 0600) for every role,
/// generating those that are missing and keeping the others; returns every
/// role's user with the public key of its seed.
pub fn ensure_keys(dir: &Path) -> anyhow::Result<Vec<User>> {
    use anyhow::Context;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // An existing directory is tightened too: it holds every component's secret.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    let mut users = Vec::with_capacity(Role::ALL.len());
    for role in Role::ALL {
        let path = seed_file(dir, role);
        let seed = match std::fs::read_to_string(&path) {
            Ok(seed) => seed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (seed, _) = access::generate_user_key();
                // create_new: a file that appeared meanwhile is never overwritten.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.write_all(format!("{seed}\n").as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                seed
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let public_key = access::public_key_of(&seed)
            .map_err(|reason| anyhow::anyhow!("{} is not a user seed: {reason}", path.display()))?;
        users.push(User { role, public_key });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("nats-users-test-{}", std::process::id())).join("keys");
        let users = ensure_keys(&dir).unwrap();
        assert_eq!(users.iter().map(|u| u.role).collect::<Vec<_>>(), Role::ALL);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for u in &users {
            let file = seed_file(&dir, u.role);
            assert_eq!(mode(&file), 0o600, "{}", file.display());
            let seed = std::fs::read_to_string(&file).unwrap();
            assert_eq!(access::public_key_of(&seed).unwrap(), u.public_key);
        }
        // Again, after one seed was lost: the others stay, the lost one is replaced.
        std::fs::remove_file(seed_file(&dir, Role::Worker)).unwrap();
        let again = ensure_keys(&dir).unwrap();
        for (a, b) in users.iter().zip(&again) {
            assert_eq!(a.public_key == b.public_key, a.role != Role::Worker, "{}", a.role.name());
        }
        let block = access::authorization_block(&again);
        assert!(again.iter().all(|u| block.contains(&u.public_key)), "{block}");
        // A file that is not a seed is an error naming it, not a silent new key.
        std::fs::write(seed_file(&dir, Role::Admin), "not a seed\n").unwrap();
        let e = ensure_keys(&dir).unwrap_err().to_string();
        assert!(e.contains("admin.nk"), "{e}");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
