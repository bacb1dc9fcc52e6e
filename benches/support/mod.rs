//! What both benches share.

/// (p25, median, p75) of `values`.
pub fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

/// What the bench binary was asked to do: criterion's own measurements (unless
/// `BENCH_INTERLEAVED_ONLY` is set), then the interleaved rounds (only under
/// `cargo bench`, not for `--list` or the `cargo test` smoke run).
pub struct Mode {
    pub criterion: bool,
    pub interleaved: bool,
}

impl Mode {
    pub fn from_env() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let benchmarking = args.iter().any(|arg| arg == "--bench");
        let listing = args.iter().any(|arg| arg == "--list");
        Self {
            criterion: std::env::var_os("BENCH_INTERLEAVED_ONLY").is_none(),
            interleaved: benchmarking && !listing,
        }
    }
}
