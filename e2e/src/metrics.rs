//! Reading the Prometheus text the components serve.

use std::time::{Duration, Instant};

/// The text at a `/metrics` URL. A process just spawned may not listen yet:
/// a refused connection is tried again for up to 5 s; any other error panics.
pub async fn scrape(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match reqwest::get(url).await {
            Ok(res) => return res.text().await.expect("metrics text"),
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
}

/// [`sum`] of `name` at a `/metrics` URL, read with [`scrape`].
pub async fn value(url: &str, name: &str) -> f64 {
    sum(&scrape(url).await, name)
}

/// The sum of every sample whose line starts with `name` (all label sets of a
/// family); 0 when there is none.
pub fn sum(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_of_a_family_are_summed() {
        let text = "# HELP x_total X\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3.5\ny 7\n";
        assert_eq!(super::sum(text, "x_total"), 5.5);
        assert_eq!(super::sum(text, "z"), 0.0);
    }
}
