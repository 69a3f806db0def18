//! `image-promoter run`: the operator. Parses the flags (controller-runtime's
//! names), reads the configuration file, and hands over to
//! [`crate::controller::run`]. Exit 1 when the operator could not start or
//! stopped on an error, 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{FAILED, usage_error};
use crate::api::parse_duration;
use crate::config::Config;
use crate::controller::leader::Timing;
use crate::controller::{self, Settings, http::parse_bind_address};

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Registry configuration (auth, CAs, limits, verification floor, tenancy); see docs/config.md.
    #[arg(long, value_name = "FILE", env = "IMAGE_PROMOTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where /metrics listens: `:PORT`, `HOST:PORT`, or `0` to disable.
    #[arg(long, default_value = ":8080")]
    pub metrics_bind_address: String,
    /// Where /healthz and /readyz listen: `:PORT`, `HOST:PORT`, or `0` to disable.
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Hold a coordination.k8s.io Lease so that only one replica reconciles.
    #[arg(long, default_value_t = false)]
    pub leader_elect: bool,
    /// The Lease's namespace (default: the pod's namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = "image-promoter")]
    pub leader_election_id: String,
    /// How long a standby waits after the Lease was last renewed before it takes it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew the Lease before it stops leading
    /// (and exits); shorter than the Lease duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// How often the leader renews the Lease and a standby reads it; shorter than the renew deadline.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
    /// Reconcile only ImagePromotions and RegistryMirrors with these labels (a label
    /// selector, e.g. `sharding.fluxcd.io/key=shard1`): one shard of several releases,
    /// each with a Lease of its own.
    #[arg(long, value_name = "SELECTOR")]
    pub watch_label_selector: Option<String>,
    /// Watch only this namespace (repeatable); default: every namespace.
    #[arg(long = "watch-namespace", value_name = "NAMESPACE")]
    pub watch_namespaces: Vec<String>,
    /// Reconciles at work at once in the whole process (both kinds, every watched namespace).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// How often finished promotions are checked for drift (jittered ±10 %), e.g. 1h, 30m, 90s.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// How long in-flight copies may finish after SIGTERM before they are cancelled.
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How often a Ready promotion's published digest is judged again against its
    /// effective policy (jittered ±10 %; spec.compliance.interval overrides), e.g. 6h.
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub compliance_interval: Duration,
    /// Let other replicas listen on the metrics and probe ports too (SO_REUSEPORT):
    /// for host-network pods that share a node's network namespace. Probes and
    /// scrapes then reach any of them.
    #[arg(long, default_value_t = false)]
    pub share_ports: bool,
    /// Log format: JSON lines with controller-runtime's keys (`ts`, `level`, `msg`,
    /// `controller`, `namespace`, `name`, `reconcileID`), or text for people.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// What to log: error, warn, info (the default), debug or trace, or tracing
    /// filter directives such as `info,image_promoter=debug`.
    #[arg(long, value_name = "LEVEL", env = "IMAGE_PROMOTER_LOG", value_parser = crate::logging::parse_level)]
    pub log_level: Option<String>,
    /// Sign a promotion receipt (SLSA verification summary) at every target
    /// with this key, named as cosign names keys: `k8s://NAMESPACE/NAME`,
    /// `awskms:///alias/NAME` or a cosign key file (docs/verification.md).
    #[arg(long, value_name = "REF")]
    pub attestation_key: Option<String>,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Runs the operator.
pub fn run(args: RunArgs) -> ExitCode {
    let settings = match settings(args) {
        Ok(settings) => settings,
        Err(message) => return usage_error(message),
    };
    // Before the runtime starts its threads (see src/allocator.rs).
    crate::allocator::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    match runtime.block_on(controller::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the operator stopped");
            ExitCode::from(FAILED)
        }
    }
}

fn settings(args: RunArgs) -> Result<Settings, String> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let leader_election_timing = Timing::new(
        args.leader_election_lease_duration,
        args.leader_election_renew_deadline,
        args.leader_election_retry_period,
    )
    .map_err(|e| e.to_string())?;
    let watch_label_selector = match args.watch_label_selector {
        Some(selector) if selector.trim().is_empty() => {
            return Err(
                "--watch-label-selector is empty: give a label selector such as \
                 sharding.fluxcd.io/key=shard1, or leave the flag out to watch every object"
                    .into(),
            );
        }
        selector => selector,
    };
    Ok(Settings {
        config,
        config_path: args.config.clone(),
        metrics_address: parse_bind_address(&args.metrics_bind_address)
            .map_err(|e| format!("--metrics-bind-address: {e}"))?,
        probe_address: parse_bind_address(&args.health_probe_bind_address)
            .map_err(|e| format!("--health-probe-bind-address: {e}"))?,
        watch_namespaces: args.watch_namespaces,
        concurrency: args.concurrency,
        resync: args.resync_interval,
        shutdown_grace: args.shutdown_grace,
        compliance_interval: args.compliance_interval,
        leader_elect: args.leader_elect,
        leader_election_id: args.leader_election_id,
        leader_election_namespace: args.leader_election_namespace,
        leader_election_timing,
        watch_label_selector,
        share_ports: args.share_ports,
        attestation_key: args
            .attestation_key
            .as_deref()
            .map(crate::receipt::KeyReference::parse)
            .transpose()
            .map_err(|e| format!("--attestation-key: {e}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parsed(flags: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        settings(cli.run)
    }

    #[test]
    fn leader_election_timing_has_controller_runtimes_defaults_and_must_fit_together() {
        let defaults = parsed(&[]).expect("the defaults");
        assert_eq!(defaults.leader_election_timing, Timing::default());
        assert_eq!(
            defaults.leader_election_timing.lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(
            defaults.leader_election_timing.renew_deadline,
            Duration::from_secs(10)
        );
        assert_eq!(
            defaults.leader_election_timing.retry_period,
            Duration::from_secs(2)
        );
        // Flags → (lease, renew deadline, retry period) in seconds, or a part of the error.
        type Expected = Result<(u64, u64, u64), &'static str>;
        let cases: [(&[&str], Expected); 5] = [
            (
                &[
                    "--leader-election-lease-duration=6s",
                    "--leader-election-renew-deadline=4s",
                    "--leader-election-retry-period=1s",
                ],
                Ok((6, 4, 1)),
            ),
            (
                &["--leader-election-renew-deadline=15s"],
                Err(
                    "--leader-election-renew-deadline (15s) must be shorter than --leader-election-lease-duration (15s)",
                ),
            ),
            (
                &["--leader-election-lease-duration=8s"],
                Err(
                    "--leader-election-renew-deadline (10s) must be shorter than --leader-election-lease-duration (8s)",
                ),
            ),
            (
                &["--leader-election-retry-period=10s"],
                Err(
                    "--leader-election-retry-period (10s) must be shorter than --leader-election-renew-deadline (10s)",
                ),
            ),
            (
                &["--leader-election-retry-period=2"],
                Err("\"2\" is not a duration"),
            ),
        ];
        for (flags, expected) in cases {
            let result = parsed(flags).map(|s| {
                let t = s.leader_election_timing;
                (
                    t.lease_duration.as_secs(),
                    t.renew_deadline.as_secs(),
                    t.retry_period.as_secs(),
                )
            });
            match (result, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{flags:?}"),
                (Err(error), Err(want)) => assert!(error.contains(want), "{flags:?}: {error}"),
                (got, want) => panic!("{flags:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_shard_is_chosen_by_a_label_selector() {
        assert_eq!(parsed(&[]).unwrap().watch_label_selector, None);
        let shard = parsed(&["--watch-label-selector", "sharding.fluxcd.io/key=shard1"]).unwrap();
        assert_eq!(
            shard.watch_label_selector.as_deref(),
            Some("sharding.fluxcd.io/key=shard1")
        );
        let error = parsed(&["--watch-label-selector", " "]).unwrap_err();
        assert!(error.contains("--watch-label-selector is empty"), "{error}");
    }

    #[test]
    fn the_log_level_is_checked_when_parsed() {
        let flags = Cli::try_parse_from(["run", "--log-level", "debug"]).unwrap();
        assert_eq!(flags.run.log_level.as_deref(), Some("debug"));
        let flags = Cli::try_parse_from(["run", "--log-level", "info,image_promoter=trace"]);
        assert!(flags.is_ok());
        let refused = Cli::try_parse_from(["run", "--log-level", "verbose"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("\"verbose\" is not a log level") && refused.contains("--log-level"),
            "{refused}"
        );
    }

    #[test]
    fn duration_flags_take_the_api_grammar() {
        let flags = Cli::try_parse_from([
            "run",
            "--resync-interval",
            "1.5h",
            "--shutdown-grace",
            "1m30s",
        ])
        .unwrap();
        assert_eq!(flags.run.resync_interval, Duration::from_secs(5400));
        assert_eq!(flags.run.shutdown_grace, Duration::from_secs(90));
        let refused = Cli::try_parse_from(["run", "--resync-interval", "1d"])
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("\"1d\" is not a duration"), "{refused}");
    }
}
