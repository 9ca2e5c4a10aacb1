use clap::Parser;
use usage_aggregator::{
    config::{Cli, Command},
    query, range,
    store::Store,
    time,
};

// One thread: the aggregator's work is a sequence of small NATS round trips,
// and waking a second worker thread for each cost more CPU than it saved.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    telemetry::init("usage-aggregator");
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            let (addr, run) = usage_aggregator::start(cli.run, telemetry::shutdown_signal()).await?;
            tracing::info!(%addr, "usage API listening");
            println!("listening on http://{addr}");
            run.await
        }
        Some(Command::Report(a)) => {
            let range = range::parse(Some(&a.from), Some(&a.to), Some(&a.window))?;
            let store =
                Store::open(&a.nats.nats_url, &a.nats.nats_credentials, a.nats.replicas, Default::default()).await?;
            let report = query::report(&store, &a.tenant, &range).await?;
            if a.csv {
                print!("{}", report.to_csv());
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Some(Command::Archive { nats, day }) => {
            let start = time::parse_rfc3339(&day).filter(|ms| ms.is_multiple_of(86_400_000));
            let start = start.ok_or_else(|| anyhow::anyhow!("--day must be YYYY-MM-DD, not `{day}`"))?;
            let store = Store::open(&nats.nats_url, &nats.nats_credentials, nats.replicas, Default::default()).await?;
            let s = usage_aggregator::archive::archive_day(&store, start, 0).await?;
            println!(
                "{day}: {} objects, {} records, {} bytes raw, {} compressed",
                s.objects, s.records, s.raw_bytes, s.compressed_bytes
            );
            Ok(())
        }
    };
    telemetry::shutdown();
    result
}
