//! Prints the Prometheus rule file the operator renders for a `ResizeDeployment`
//! (`rulegen FILE.yaml [--namespace NS]`): what `promtool check rules` and
//! `promtool test rules` read in CI, and what a Prometheus without the
//! Prometheus Operator can load as it is.

use anyhow::Context;
use operator::crd::ResizeDeployment;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut file, mut namespace) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--namespace" | "-n" => namespace = args.next(),
            _ => file = Some(a),
        }
    }
    let file = file.context("usage: rulegen FILE.yaml [--namespace NS]")?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let mut rd: ResizeDeployment = serde_yaml::from_str(&text).with_context(|| format!("parsing {file}"))?;
    if let Some(ns) = namespace {
        rd.metadata.namespace = Some(ns);
    }
    if rd.metadata.namespace.is_none() {
        rd.metadata.namespace = Some("default".into());
    }
    print!("{}", operator::slo::rules(&rd).to_yaml());
    Ok(())
}
