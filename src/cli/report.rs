//! `image-promoter report [-n NS | -A] [-o text|json] [--in-sync-for DURATION]`:
//! the migration view. Reads the cluster's ImagePromotions and
//! RegistryMirrors and prints, by tier in retirement order (Bronze, Silver,
//! Gold, then others), every published repository with its targets, the
//! digests live there, their compliance, which targets are in sync, and
//! whether the old registry can be retired. The view is
//! [`crate::compliance::report`]'s; `mirror report` stays the mirrors-only
//! summary.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use super::{FAILED, usage_error};
use crate::api::{ImagePromotion, RegistryMirror, parse_duration};
use crate::compliance::report::{render, view};

/// The output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table per tier.
    #[default]
    Text,
    /// The same data as JSON.
    Json,
}

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The namespace to read (default: the kubeconfig context's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Read every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// How long every target must have been in sync, with no drift, before the
    /// old registry counts as retirable (e.g. 168h, 30m, 0s).
    #[arg(long, default_value = "168h", value_parser = parse_duration)]
    pub in_sync_for: Duration,
}

async fn list<K>(client: kube::Client, args: &ReportArgs) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match (&args.namespace, args.all_namespaces) {
        (_, true) => Api::all(client),
        (Some(namespace), false) => Api::namespaced(client, namespace),
        (None, false) => Api::default_namespaced(client),
    };
    api.list(&ListParams::default()).await.map(|l| l.items)
}

/// Runs `report`.
pub fn run(args: ReportArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let listed = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("connecting to the cluster (KUBECONFIG or in-cluster): {e}"))?;
        let promotions = list::<ImagePromotion>(client.clone(), &args)
            .await
            .map_err(|e| format!("listing ImagePromotions: {e}"))?;
        let mirrors = list::<RegistryMirror>(client, &args)
            .await
            .map_err(|e| format!("listing RegistryMirrors: {e}"))?;
        Ok::<_, String>((promotions, mirrors))
    });
    match listed {
        Ok((promotions, mirrors)) => {
            let tiers = view(&promotions, &mirrors, args.in_sync_for, Timestamp::now());
            match args.output {
                Format::Text => print!("{}", render(&tiers)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&tiers).expect("the view serializes")
                ),
            }
            ExitCode::SUCCESS
        }
        Err(message) if message.starts_with("connecting") => usage_error(message),
        Err(message) => {
            eprintln!("image-promoter: {message}");
            ExitCode::from(FAILED)
        }
    }
}
