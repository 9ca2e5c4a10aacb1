use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("api-server");
    let config = api_server::config::Config::parse();
    let (addr, server) = api_server::start(config, telemetry::shutdown_signal()).await?;
    tracing::info!(%addr, "listening");
    println!("listening on http://{addr}");
    server.await;
    telemetry::shutdown();
    Ok(())
}
