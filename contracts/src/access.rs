//! Who may say what on NATS: one NATS user per component role, each with an
//! nkey and the subjects its role needs, and nothing else.
//!
//! The table here is rendered into nats-server's `authorization` block by the
//! local stack (`resizer-admin nats-config`), the tests and the operator, so
//! the three can never disagree. Everything not allowed is refused by the
//! server: anonymous connections, an auth-cache impostor joining the
//! `identity.verify` queue group, a worker reading another api-server's
//! results, anyone but the management plane writing IDENTITY, and anyone at
//! all deleting or purging a stream.
//!
//! Why users with nkeys in one account rather than accounts and JWTs: every
//! role works on the same streams, so accounts would need an export and an
//! import per stream and a resolver for their JWTs, for no isolation the
//! subject permissions do not already give. The server holds only public
//! keys; each seed lives in one file of one component.

use crate::{
    identity::{self, audit},
    subjects,
    usage::streams as usage,
};
use std::fmt::Write as _;

/// A component's role on NATS: one NATS user each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    ApiServer,
    Worker,
    AuthCache,
    UsageAggregator,
    /// `resizer-admin`: the only writer of IDENTITY.
    Admin,
    /// The Kubernetes operator: stream and consumer management, queue observation, leader step-down.
    Operator,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::ApiServer, Role::Worker, Role::AuthCache, Role::UsageAggregator, Role::Admin, Role::Operator];

    /// The role's name: its user's name in logs, its seed file's stem, its inbox prefix.
    pub fn name(self) -> &'static str {
        match self {
            Role::ApiServer => "api-server",
            Role::Worker => "worker",
            Role::AuthCache => "auth-cache",
            Role::UsageAggregator => "usage-aggregator",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Replies to this role's requests (JetStream API answers, verifications,
    /// push-consumer deliveries) arrive under this prefix, which only this
    /// role may subscribe: nobody else can read them.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX.{}", self.name())
    }

    /// What this role may publish and subscribe.
    pub fn permissions(self) -> Permissions {
        let mut p = Permissions::default();
        p.subscribe.push(format!("{}.>", self.inbox_prefix()));
        // Account limits and usage, which creating a bucket reads first: nothing tenant-specific.
        p.publish.push(subjects::ACCOUNT_INFO.into());
        match self {
            Role::ApiServer => {
                p.publish.push(subjects::JOBS_SUBJECT.into());
                p.publish.push(identity::VERIFY_SUBJECT.into());
                p.publish.push(identity::VERIFY_EVERY_SUBJECT.into());
                p.publish.push(usage::USAGE_SUBJECT.into());
                p.publish.extend(ensure_stream(subjects::JOBS_STREAM));
                p.publish.extend(ensure_stream(usage::USAGE_STREAM));
                p.subscribe.push(format!("{}.*", subjects::RESULTS_PREFIX));
            }
            Role::Worker => {
                p.publish.push(format!("{}.*", subjects::RESULTS_PREFIX));
                p.publish.push(usage::USAGE_SUBJECT.into());
                p.publish.extend(ensure_stream(subjects::JOBS_STREAM));
                p.publish.extend(ensure_stream(usage::USAGE_STREAM));
                p.publish.extend(pull_consumer(subjects::JOBS_STREAM, subjects::WORKERS_CONSUMER));
            }
            Role::AuthCache => {
                p.subscribe.push(format!("{} {}", identity::VERIFY_SUBJECT, identity::VERIFY_QUEUE_GROUP));
                p.subscribe.push(identity::VERIFY_EVERY_SUBJECT.into());
                p.allow_responses = true;
                for bucket in [identity::BUCKET, usage::ROLLUP_BUCKET] {
                    p.publish.extend(ensure_stream(&kv_stream(bucket)));
                    p.publish.extend(watch(&kv_stream(bucket)));
                }
            }
            Role::UsageAggregator => {
                p.publish.push(usage::DEAD_SUBJECT.into());
                // The usage API authenticates its callers like the api-server.
                p.publish.push(identity::VERIFY_SUBJECT.into());
                p.publish.push(identity::VERIFY_EVERY_SUBJECT.into());
                for stream in [usage::USAGE_STREAM, usage::DEAD_STREAM] {
                    p.publish.extend(ensure_stream(stream));
                }
                p.publish.extend(pull_consumer(usage::USAGE_STREAM, usage::AGGREGATOR_CONSUMER));
                p.publish.extend(read_messages(usage::USAGE_STREAM));
                p.publish.extend(watch(usage::USAGE_STREAM));
                for bucket in [usage::ROLLUP_BUCKET, usage::STATE_BUCKET] {
                    p.publish.extend(ensure_stream(&kv_stream(bucket)));
                    p.publish.extend(read_messages(&kv_stream(bucket)));
                    p.publish.push(format!("$KV.{bucket}.>"));
                }
                let archive = format!("OBJ_{}", usage::ARCHIVE_BUCKET);
                p.publish.extend(ensure_stream(&archive));
                p.publish.extend(read_messages(&archive));
                p.publish.extend(watch(&archive));
                p.publish.push(format!("$O.{}.>", usage::ARCHIVE_BUCKET));
            }
            Role::Admin => {
                p.publish.push(format!("$KV.{}.>", identity::BUCKET));
                p.publish.push(format!("{}.>", audit::SUBJECT_PREFIX));
                p.publish.extend(ensure_stream(identity::STREAM));
                p.publish.extend(ensure_stream(audit::STREAM));
                p.publish.extend(read_messages(identity::STREAM));
                p.publish.extend(watch(identity::STREAM));
                p.publish.extend(read_messages(audit::STREAM));
                p.publish.extend(watch(audit::STREAM));
            }
            Role::Operator => {
                p.publish.extend(ensure_stream(subjects::JOBS_STREAM));
                p.publish.push(subjects::consumer_info(subjects::JOBS_STREAM, subjects::WORKERS_CONSUMER));
                p.publish.push(format!("$JS.API.STREAM.LEADER.STEPDOWN.{}", subjects::JOBS_STREAM));
            }
        }
        p
    }
}

/// The subjects one NATS user may publish and subscribe; everything else is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    /// `subject` or `subject queue-group` (the group is then the only way in).
    pub subscribe: Vec<String>,
    /// May answer requests it received (publish to their reply subjects) and nothing more.
    pub allow_responses: bool,
}

/// Look a stream up and create it when it is missing, as every component does
/// at start-up; never update, purge or delete it.
fn ensure_stream(stream: &str) -> [String; 2] {
    [subjects::stream_info(stream), format!("$JS.API.STREAM.CREATE.{stream}")]
}

/// Look up, create and pull from one durable consumer, and ack its messages.
fn pull_consumer(stream: &str, consumer: &str) -> [String; 5] {
    [
        subjects::consumer_info(stream, consumer),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>"),
        subjects::consumer_next(stream, consumer),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]
}

/// Read single messages of a stream by sequence or subject (KV gets included).
fn read_messages(stream: &str) -> [String; 3] {
    [
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
    ]
}

/// Follow a stream through ephemeral ordered consumers (KV watches, object
/// reads, ordered pulls): create, look up, pull from and delete them, and
/// answer their flow control.
fn watch(stream: &str) -> [String; 7] {
    [
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        subjects::consumer_info(stream, "*"),
        subjects::consumer_next(stream, "*"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
        format!("$JS.FC.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
    ]
}

fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// One NATS user: a role and its nkey's public half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub role: Role,
    pub public_key: String,
}

/// nats-server's `authorization` block for `users`. With a users list and no
/// `no_auth_user`, a connection without valid credentials is refused.
pub fn authorization_block(users: &[User]) -> String {
    let mut out = String::from("authorization {\n  users = [\n");
    for u in users {
        let p = u.role.permissions();
        let list = |subjects: &[String]| subjects.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "    # {}\n    {{ nkey: {:?}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}{} }} }}",
            u.role.name(),
            u.public_key,
            list(&p.publish),
            list(&p.subscribe),
            if p.allow_responses { ", allow_responses: true" } else { "" },
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// A fresh nkey pair for a user: (seed, public key). The seed is the secret.
pub fn generate_user_key() -> (String, String) {
    let kp = nkeys::KeyPair::new_user();
    (kp.seed().expect("a new user key has a seed"), kp.public_key())
}

/// The public key of a user seed, or why the seed is not one.
pub fn public_key_of(seed: &str) -> Result<String, String> {
    let kp = nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| e.to_string())?;
    if !kp.public_key().starts_with('U') {
        return Err("not a user seed (SU…)".into());
    }
    Ok(kp.public_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[String], subject: &str) -> bool {
        patterns.iter().any(|p| {
            let (p, _) = p.split_once(' ').unwrap_or((p, ""));
            let mut pt = p.split('.');
            let mut st = subject.split('.');
            loop {
                match (pt.next(), st.next()) {
                    (Some(">"), Some(_)) => return true,
                    (Some("*"), Some(_)) => {}
                    (Some(a), Some(b)) if a == b => {}
                    (None, None) => return true,
                    _ => return false,
                }
            }
        })
    }

    #[test]
    fn nobody_deletes_purges_or_updates_a_stream() {
        for role in Role::ALL {
            let p = role.permissions();
            for verb in ["DELETE", "PURGE", "UPDATE"] {
                for stream in ["JOBS", "USAGE", "KV_IDENTITY", "AUDIT"] {
                    let s = format!("$JS.API.STREAM.{verb}.{stream}");
                    assert!(!allows(&p.publish, &s), "{} may {s}", role.name());
                }
            }
        }
    }

    #[test]
    fn only_the_auth_cache_answers_verifications_and_only_as_its_group() {
        for role in Role::ALL {
            let p = role.permissions();
            let subscribes = p.subscribe.iter().any(|s| s.starts_with(identity::VERIFY_SUBJECT));
            assert_eq!(subscribes, role == Role::AuthCache, "{}", role.name());
            assert_eq!(p.allow_responses, role == Role::AuthCache, "{}", role.name());
        }
        let group = format!("{} {}", identity::VERIFY_SUBJECT, identity::VERIFY_QUEUE_GROUP);
        assert!(Role::AuthCache.permissions().subscribe.contains(&group));
        for role in Role::ALL.into_iter().filter(|r| *r != Role::AuthCache) {
            assert!(
                !allows(&role.permissions().subscribe, identity::VERIFY_EVERY_SUBJECT),
                "{} hears hedges",
                role.name()
            );
        }
    }

    #[test]
    fn only_the_admin_writes_identity_and_inboxes_are_private() {
        for role in Role::ALL {
            let p = role.permissions();
            assert_eq!(allows(&p.publish, "$KV.IDENTITY.key.k1"), role == Role::Admin, "{}", role.name());
            for other in Role::ALL.into_iter().filter(|o| *o != role) {
                let inbox = format!("{}.x.y", other.inbox_prefix());
                assert!(!allows(&p.subscribe, &inbox), "{} reads {}'s replies", role.name(), other.name());
            }
            assert!(!allows(&p.subscribe, "_INBOX.abc.def"), "{} reads default inboxes", role.name());
        }
    }

    #[test]
    fn the_block_names_every_user_with_its_key_and_lists() {
        let (seed, public) = generate_user_key();
        assert!(seed.starts_with("SU") && public.starts_with('U'));
        assert_eq!(public_key_of(&seed).unwrap(), public);
        assert!(public_key_of("SAnotauserseed").is_err());
        let block = authorization_block(&[User { role: Role::AuthCache, public_key: public.clone() }]);
        assert!(block.contains(&format!("nkey: {public:?}")), "{block}");
        assert!(block.contains("\"identity.verify auth-cache\""), "{block}");
        assert!(block.contains("allow_responses: true"), "{block}");
        assert_eq!(Role::from_name("usage-aggregator"), Some(Role::UsageAggregator));
    }
}
