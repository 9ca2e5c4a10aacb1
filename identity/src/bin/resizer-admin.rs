//! The management plane's CLI, and `serve` for its HTTP API.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use contracts::identity::{Quota, RateLimit};
use identity::{client, store::Store};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "resizer-admin", version, about = "Manage tenants and keys in the IDENTITY bucket")]
struct Cli {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    nats_url: String,
    #[command(flatten)]
    nats_credentials: contracts::connect::Credentials,
    /// Replicas of the IDENTITY bucket and the AUDIT stream if they have to be created (3 in a cluster).
    #[arg(long, env = "IDENTITY_REPLICAS", default_value_t = 1, global = true)]
    replicas: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(subcommand)]
    Tenant(TenantCmd),
    #[command(subcommand)]
    Key(KeyCmd),
    /// Generates an Ed25519 key pair: writes the private key to FILE, prints the public key.
    Keygen {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Writes a NATS nkey seed for every component role into DIR (kept if present) and prints
    /// nats-server's `authorization` block for them.
    NatsConfig {
        /// Directory of the seed files `<role>.nk` (created with mode 0700; seeds are 0600).
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Serves the admin HTTP API (guarded by ADMIN_TOKEN).
    Serve {
        #[arg(long, env = "ADMIN_LISTEN", default_value = "127.0.0.1:8092")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
}

#[derive(Args)]
struct Limits {
    /// Sustained requests per second.
    #[arg(long)]
    rate: Option<u32>,
    /// Requests allowed in a burst above the sustained rate.
    #[arg(long)]
    burst: Option<u32>,
    /// Images per calendar month (0 = unlimited).
    #[arg(long)]
    quota_images: Option<u64>,
    /// Input megapixels per calendar month (0 = unlimited).
    #[arg(long)]
    quota_megapixels: Option<u64>,
}

impl Limits {
    fn rate(&self, current: RateLimit) -> Option<RateLimit> {
        (self.rate.is_some() || self.burst.is_some()).then(|| {
            let per_second = self.rate.unwrap_or(current.per_second);
            RateLimit { per_second, burst: self.burst.unwrap_or(per_second.max(current.burst)) }
        })
    }
    fn quota(&self, current: Quota) -> Option<Quota> {
        let some = |v: u64| (v > 0).then_some(v);
        (self.quota_images.is_some() || self.quota_megapixels.is_some()).then(|| Quota {
            images: self.quota_images.map_or(current.images, some),
            megapixels: self.quota_megapixels.map_or(current.megapixels, some),
        })
    }
}

#[derive(Subcommand)]
enum TenantCmd {
    Create {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        limits: Limits,
    },
    List,
    Show {
        id: String,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Sets the rate limit and/or the monthly quota.
    Limits {
        id: String,
        #[command(flatten)]
        limits: Limits,
    },
    /// Names an operation (`w=320&h=320&fit=cover`) that requests apply with `preset=<name>`.
    SetPreset {
        id: String,
        name: String,
        query: String,
    },
    RemovePreset {
        id: String,
        name: String,
    },
    /// `Cache-Control` of the tenant's images (`public, max-age=86400`); `""` returns to `no-store`.
    CacheControl {
        id: String,
        value: String,
    },
    /// Whether the tenant's requests must name a preset and add nothing to it.
    PresetsOnly {
        id: String,
        #[arg(action = clap::ArgAction::Set)]
        only: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Registers an Ed25519 public key (base64 of the raw 32 bytes) for signed requests.
    Add {
        tenant: String,
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Issues a bearer API key; the token is printed once and not stored.
    Issue {
        tenant: String,
    },
    List {
        tenant: String,
    },
    Revoke {
        key_id: String,
    },
}

fn print(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Keygen { out } = &cli.command {
        let key = client::generate_key();
        std::fs::write(out, client::encode_private(&key) + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        println!("{}", client::encode_public(&key));
        return Ok(());
    }
    if let Command::NatsConfig { dir } = &cli.command {
        let users = identity::nats_users::ensure_keys(dir)?;
        print!("{}", contracts::access::authorization_block(&users));
        return Ok(());
    }
    if let Command::Serve { admin_token, .. } = &cli.command {
        // Refused before anything connects: a weak token never guards the API.
        contracts::identity::check_admin_token("ADMIN_TOKEN", admin_token).map_err(anyhow::Error::msg)?;
    }
    let urls = contracts::servers::server_urls(&cli.nats_url);
    let nats = contracts::connect::options(contracts::access::Role::Admin, &cli.nats_credentials, Default::default())?
        .connect(urls.as_slice())
        .await
        .with_context(|| format!("connecting to {}", cli.nats_url))?;
    // The audit trail names the writer: the HTTP API (one admin token), or the
    // operating-system user who ran the CLI and where.
    let actor = match &cli.command {
        Command::Serve { .. } => "admin-api".to_owned(),
        _ => {
            let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
                .unwrap_or_else(|| "unknown".into());
            format!("cli:{user}@{host}")
        }
    };
    let store = Store::open(&async_nats::jetstream::new(nats), cli.replicas).await?.with_actor(actor);
    match cli.command {
        Command::Keygen { .. } | Command::NatsConfig { .. } => unreachable!("handled above"),
        Command::Serve { listen, admin_token } => {
            telemetry::init("resizer-admin");
            let mut registry = prometheus_client::registry::Registry::default();
            let api = identity::admin_api::router(store, &admin_token, &mut registry);
            let app = api.merge(telemetry::metrics::router(std::sync::Arc::new(registry)));
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("listening on http://{}", listener.local_addr()?);
            axum::serve(listener, app).with_graceful_shutdown(telemetry::shutdown_signal()).await?;
            telemetry::shutdown();
        }
        Command::Tenant(t) => match t {
            TenantCmd::Create { id, name, limits } => {
                let rate = limits.rate(RateLimit::default()).unwrap_or_default();
                let quota = limits.quota(Quota::default()).unwrap_or_default();
                print(&store.create_tenant(&id, &name, rate, quota).await?)?
            }
            TenantCmd::List => print(&store.tenants().await?)?,
            TenantCmd::Show { id } => print(&store.tenant(&id).await?)?,
            TenantCmd::Disable { id } => print(&store.set_disabled(&id, true).await?)?,
            TenantCmd::Enable { id } => print(&store.set_disabled(&id, false).await?)?,
            TenantCmd::Limits { id, limits } => {
                let current = store.tenant(&id).await?;
                print(&store.set_limits(&id, limits.rate(current.rate), limits.quota(current.quota)).await?)?
            }
            TenantCmd::SetPreset { id, name, query } => print(&store.set_preset(&id, &name, Some(&query)).await?)?,
            TenantCmd::RemovePreset { id, name } => print(&store.set_preset(&id, &name, None).await?)?,
            TenantCmd::CacheControl { id, value } => {
                let value = Some(value).filter(|v| !v.is_empty());
                let change = identity::store::TenantChange { cache_control: Some(value), ..Default::default() };
                print(&store.change_tenant(&id, change).await?)?
            }
            TenantCmd::PresetsOnly { id, only } => {
                let change = identity::store::TenantChange { presets_only: Some(only), ..Default::default() };
                print(&store.change_tenant(&id, change).await?)?
            }
        },
        Command::Key(k) => match k {
            KeyCmd::Add { tenant, public_key, key_id } => {
                print(&store.add_ed25519(&tenant, key_id.as_deref(), &public_key).await?)?
            }
            KeyCmd::Issue { tenant } => {
                let (key, token) = store.issue_api_key(&tenant).await?;
                print(&serde_json::json!({"key": key, "token": token}))?
            }
            KeyCmd::List { tenant } => print(&store.keys(&tenant).await?)?,
            KeyCmd::Revoke { key_id } => print(&store.revoke_key(&key_id).await?)?,
        },
    }
    Ok(())
}
