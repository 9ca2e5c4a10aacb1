use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("auth-cache");
    let config = auth_cache::config::Config::parse();
    let (addr, run) = auth_cache::start(config, telemetry::shutdown_signal()).await?;
    tracing::info!(%addr, "auth-cache listening");
    println!("listening on http://{addr}");
    let result = run.await;
    telemetry::shutdown();
    result
}
