//! Reading the Prometheus text the components serve.

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
