//! One soak run: the world set up, the base population, the churn waves with
//! their disturbances, the settling, the observations the checks judge and
//! the report. (The module doc of main.rs says what and why.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image_promoter::api::ImagePromotion;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use regex::Regex;
use serde_json::{Value, json};

use crate::checks::{self, Check, Owners, Write};
use crate::cluster::Cluster;
use crate::harness::{Rbac, config_with, is, metric, service_account};
use crate::oci::TestImage;
use crate::plan::{Disturbance, Settings};
use crate::private::PrivateWorld;
use crate::proxy::Proxy;
use crate::replicas::Replicas;
use crate::support::unique_name;
use crate::world::{GOOD, Source, World, catalog_data, promotion};

/// Peak RSS every replica must stay under.
const PEAK_RSS_LIMIT_MIB: f64 = 128.0;
/// How far the leader's RSS after the churn may be from before it.
const RSS_TOLERANCE: f64 = 0.10;
/// How long the memory is left alone once only the base population is left,
/// before its RSS is sampled.
const AFTER_DELETIONS: Duration = Duration::from_secs(10);
/// The mirrors' `interval` (the API's minimum); the settling waits three.
const MIRROR_INTERVAL: (&str, Duration) = ("1m", Duration::from_secs(60));

/// The soak's world: clients, proxies, the objects and what happened to them.
/// Fields drop in order: the replicas stop before the control plane does.
struct Soak {
    replicas: Replicas,
    settings: Settings,
    started: Instant,
    private: PrivateWorld,
    world: World,
    cluster: Cluster,
    quay: Proxy,
    public: Proxy,
    run: String,
    /// `images[wave][group]`: wave 0 is the base population's.
    images: Vec<Vec<Source>>,
    /// Base mirrors' sources: repository, tags → digest, `latest`'s digests in order.
    mirror_sources: Vec<MirrorSource>,
    /// Object name → when its deletion was acknowledged.
    deleted: BTreeMap<String, Duration>,
    /// Digest → the promotions that publish it.
    publishers: BTreeMap<String, Vec<String>>,
    created_promotions: usize,
    created_mirrors: usize,
    /// Waves not all Ready within their time: (wave, Ready, created).
    slow_waves: Vec<(usize, usize, usize)>,
    /// The leader's RSS with the base population before and after the churn,
    /// and the replica both were measured on.
    rss_before: Option<f64>,
    rss_after: Option<f64>,
    measured_on: Option<usize>,
    /// The leader's RSS at the end when it is not the replica measured before.
    rss_after_elsewhere: Option<(String, f64)>,
}

struct MirrorSource {
    repository: String,
    tags: BTreeMap<String, String>,
    latest: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_stays_correct_over_time() {
    let settings = Settings::from(|key| std::env::var(key).ok()).unwrap_or_else(|e| panic!("{e}"));
    let mut soak = Soak::set_up(settings).await;
    soak.base().await;
    for wave in 1..=soak.settings.waves {
        soak.wave(wave).await;
    }
    let leader = soak.settle().await;
    let checks = soak.check(leader).await;
    let report = soak.report(&checks);
    eprintln!("{report}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        crate::report::write_section(&PathBuf::from(path), "soak", &report);
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "soak checks failed:\n{}",
        failed.join("\n")
    );
}

impl Soak {
    async fn set_up(settings: Settings) -> Soak {
        let private = PrivateWorld::start("soak-world").await;
        let world = World::with_env(private.env.clone()).await;
        let cluster = Cluster::start_in(private.env.clone(), "soak").await;
        let env = &private.env;
        let quay = Proxy::start(
            env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            &env.ca_pem(),
            Vec::new(),
        )
        .await;
        let public = Proxy::start(
            env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
            &env.ca_pem(),
            Vec::new(),
        )
        .await;
        let password_file =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("soak-quay-password"));
        std::fs::write(&password_file, env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
        let config = config_with(
            &cluster,
            vec![
                json!({
                    "host": quay.host(),
                    "plainHttp": true,
                    "auth": {"basic": {"username": env.get("PROMOTER_TEST_QUAY_USER"), "passwordFile": password_file}},
                }),
                json!({
                    "host": public.host(),
                    "kind": "ecrPublic",
                    "plainHttp": true,
                    "auth": {"ecrPublic": {"endpointUrl": env.get("AWS_ENDPOINT_URL_ECR_PUBLIC")}},
                }),
            ],
        );
        let kubeconfig = service_account(&cluster, Rbac::Full).await;
        let run = unique_name("soak");
        eprintln!(
            "soak: {settings:?}; private control plane in {}",
            private.folder().display()
        );

        let mut images = Vec::new();
        for wave in 0..=settings.waves {
            let mut row = Vec::new();
            for group in 0..settings.groups {
                let source = world.source(&format!("soak-w{wave}-g{group}"), GOOD).await;
                world.scan(&source, "COMPLETE", &[]).await;
                row.push(source);
            }
            images.push(row);
        }
        let mut mirror_sources = Vec::new();
        for m in 0..settings.mirrors {
            let repository = format!("{run}/msrc{m}");
            let mut tags = BTreeMap::new();
            for tag in ["1.0.0", "1.1.0", "latest"] {
                let image = TestImage::new(&format!("{repository}:{tag}"));
                let digest = world
                    .quay
                    .push_image(&repository, &image, tag)
                    .await
                    .expect("seeding a mirror source");
                tags.insert(tag.to_string(), digest);
            }
            let latest = vec![tags["latest"].clone()];
            mirror_sources.push(MirrorSource {
                repository,
                tags,
                latest,
            });
        }

        let started = Instant::now();
        let replicas = Replicas::new(&cluster, &kubeconfig, &config, settings.resync, started);
        Soak {
            settings,
            started,
            private,
            world,
            cluster,
            quay,
            public,
            run,
            images,
            mirror_sources,
            replicas,
            deleted: BTreeMap::new(),
            publishers: BTreeMap::new(),
            created_promotions: 0,
            created_mirrors: 0,
            slow_waves: Vec::new(),
            rss_before: None,
            rss_after: None,
            measured_on: None,
            rss_after_elsewhere: None,
        }
    }
}

impl Soak {
    fn at(&self) -> Duration {
        self.started.elapsed()
    }

    fn promotion_name(wave: usize, index: usize) -> String {
        format!("w{wave}-p{index}")
    }

    fn promotion(&self, wave: usize, index: usize) -> Value {
        let group = index % self.settings.groups;
        let source = &self.images[wave][group];
        let tag = format!("w{wave}-{index}");
        let mut object = promotion(
            &self.world,
            source,
            json!({"encryption": "KMS"}),
            json!([
                {
                    "name": "quay",
                    "repository": format!("{}/{}/g{group}", self.quay.host(), self.run),
                    "tags": [tag, "latest"],
                    "floatingTags": ["latest"],
                },
                {
                    "name": "public",
                    "repository": format!("{}/{}/{}-g{group}", self.public.host(), self.world.env.get("PROMOTER_TEST_PUBLIC_ALIAS"), self.run),
                    "tags": [tag],
                    "credentials": {"ecrPublic": {}},
                    "createRepository": catalog_data(),
                },
            ]),
        );
        object["metadata"]["name"] = json!(Self::promotion_name(wave, index));
        object
    }

    fn mirror(&self, m: usize) -> Value {
        json!({
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "RegistryMirror",
            "metadata": {"name": format!("m{m}")},
            "spec": {
                "source": {"repository": format!("{}/{}", self.world.env.get("PROMOTER_TEST_QUAY_REGISTRY"), self.mirror_sources[m].repository)},
                "targets": [{"name": "quay", "repository": format!("{}/{}/m{m}", self.quay.host(), self.run)}],
                "tags": {"floating": ["^latest$"]},
                "interval": MIRROR_INTERVAL.0,
            },
        })
    }

    /// Creates `object` in the namespace, retrying while the apiserver is away.
    async fn create(&mut self, mut object: Value) {
        object["metadata"]["namespace"] = json!(self.cluster.namespace);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.cluster.create(&object).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 409 => break,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "creating {}: {error}",
                        object["metadata"]["name"]
                    );
                    self.pause(Duration::from_millis(500)).await;
                }
            }
        }
        if object["kind"] == "ImagePromotion" {
            self.created_promotions += 1;
        } else {
            self.created_mirrors += 1;
        }
    }

    async fn create_promotions(&mut self, wave: usize, count: usize) -> Vec<String> {
        let mut names = Vec::new();
        for index in 0..count {
            let object = self.promotion(wave, index);
            let digest = self.images[wave][index % self.settings.groups]
                .digest
                .clone();
            let name = Self::promotion_name(wave, index);
            self.publishers
                .entry(digest)
                .or_default()
                .push(name.clone());
            self.create(object).await;
            names.push(name);
        }
        names
    }

    /// Deletes `name` of `kind`, retrying while the apiserver is away; records when.
    async fn delete(&mut self, kind: &str, name: &str) {
        let api = if kind == "ImagePromotion" {
            self.cluster.promotions()
        } else {
            self.cluster.mirrors()
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(error) => {
                    assert!(Instant::now() < deadline, "deleting {name}: {error}");
                    self.pause(Duration::from_millis(500)).await;
                }
            }
        }
        let at = self.at();
        self.deleted.insert(name.to_string(), at);
    }

    /// Waits `length`, sampling the replicas (and replacing exited ones).
    async fn pause(&mut self, length: Duration) {
        let until = Instant::now() + length;
        loop {
            self.replicas.tend(&self.cluster);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
    }

    /// Names of the promotions that are Ready=True (Promoted); None while the apiserver is away.
    async fn ready_promotions(&self) -> Option<BTreeSet<String>> {
        let api: Api<ImagePromotion> = self.cluster.typed();
        let list = api.list(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .into_iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .is_some_and(|s| is(s, "Ready", ("True", "Promoted")))
                })
                .map(|p| p.metadata.name.unwrap_or_default())
                .collect(),
        )
    }

    /// Names of the mirrors that are Ready=True.
    async fn ready_mirrors(&self) -> Option<BTreeSet<String>> {
        let list = self
            .cluster
            .mirrors()
            .list(&ListParams::default())
            .await
            .ok()?;
        Some(
            list.items
                .into_iter()
                .filter(|m| {
                    m.data["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .map(|m| m.metadata.name.unwrap_or_default())
                .collect(),
        )
    }

    /// Waits until `count` of `names` are Ready (all when None), at most until `deadline`; how many were.
    async fn wait_ready(
        &mut self,
        names: &[String],
        mirrors: &[String],
        count: Option<usize>,
        deadline: Instant,
    ) -> usize {
        let wanted = count.unwrap_or(names.len());
        loop {
            let ready = self.ready_promotions().await.unwrap_or_default();
            let ready_mirrors = self.ready_mirrors().await.unwrap_or_default();
            let n = names.iter().filter(|n| ready.contains(*n)).count();
            let mirrors_ready = mirrors.iter().all(|m| ready_mirrors.contains(m));
            if (n >= wanted && (count.is_some() || mirrors_ready)) || Instant::now() >= deadline {
                return n;
            }
            self.pause(Duration::from_millis(500)).await;
        }
    }

    /// The replica that leads, waiting for one (at most 90 s: a killed
    /// leader's Lease expires after 15 s).
    async fn wait_leader(&mut self) -> Option<usize> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(leader) = self.replicas.leader().await {
                return Some(leader);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pause(Duration::from_millis(250)).await;
        }
    }

    /// Waits until only the base population is left and worked: every base
    /// promotion Ready, the base mirrors caught up with their sources, and the
    /// leader's gauges counting the base promotions alone (the deleted ones
    /// forgotten), at most three mirror intervals; then [`AFTER_DELETIONS`]
    /// more. The RSS before and after the churn are both taken at such a
    /// point. The leader.
    async fn settled(&mut self, when: &str) -> Option<usize> {
        let names: Vec<String> = (0..self.settings.base_promotions())
            .map(|i| Soak::promotion_name(0, i))
            .collect();
        let mirrors: Vec<String> = (0..self.settings.base_mirrors())
            .map(|m| format!("m{m}"))
            .collect();
        let deadline = Instant::now() + MIRROR_INTERVAL.1 * 3;
        let started = Instant::now();
        let mut leader;
        loop {
            let ready = self.wait_ready(&names, &mirrors, None, deadline).await;
            let synced = self.mirrors_out_of_sync().await.is_empty();
            leader = self.wait_leader().await;
            let counted = match leader {
                Some(l) => self.promotions_counted(l).await,
                None => None,
            };
            let forgotten = counted == Some(names.len() as f64);
            if (ready == names.len() && synced && forgotten) || Instant::now() >= deadline {
                break;
            }
            self.pause(Duration::from_secs(2)).await;
        }
        // Both points alike: past the operator's handling of the last deletions
        // (it returns freed memory 5 s after a wave of them, src/allocator.rs).
        self.pause(AFTER_DELETIONS).await;
        let name = leader.map(|l| self.replicas.all[l].name.clone());
        self.replicas.note(format!(
            "settled {when} in {:.1} s; leader: {name:?}",
            started.elapsed().as_secs_f64()
        ));
        leader
    }

    /// The sum of replica `replica`'s `image_promoter_promotions` gauges.
    async fn promotions_counted(&self, replica: usize) -> Option<f64> {
        let text = self.replicas.metrics(replica).await?;
        ["Ready", "Reconciling", "Stalled", "Drifted", "Pending"]
            .iter()
            .map(|s| {
                metric(
                    &text,
                    &format!("image_promoter_promotions{{state=\"{s}\"}}"),
                )
            })
            .sum()
    }

    /// The median of the leader's RSS over 5 s, noted with its parts.
    async fn sample_rss(&mut self, replica: usize, when: &str) -> Option<f64> {
        let mut samples = Vec::new();
        for _ in 0..10 {
            samples.extend(self.replicas.rss(replica));
            self.pause(Duration::from_millis(500)).await;
        }
        let rss = checks::median(&mut samples);
        let name = self.replicas.all[replica].name.clone();
        let parts = match self.replicas.rss_parts(replica) {
            Some((anonymous, file)) => {
                format!(" (now: anonymous {anonymous:.1} MiB, mapped files {file:.1} MiB)")
            }
            None => String::new(),
        };
        self.replicas.note(format!(
            "RSS {when} on {name}: {} MiB{parts}",
            rss.map_or("—".into(), |v| format!("{v:.1}"))
        ));
        rss
    }
}

impl Soak {
    /// Two replicas (a leader, a standby), then the base population, promoted.
    async fn base(&mut self) {
        let first = self.replicas.start(&self.cluster);
        let leader = self.wait_leader().await;
        assert_eq!(
            leader,
            Some(first),
            "the first replica did not lead:\n{}",
            self.replicas.log_tail(first, 30)
        );
        self.replicas.start(&self.cluster);
        let base = self.settings.base_promotions();
        let names = self.create_promotions(0, base).await;
        let mirrors: Vec<String> = (0..self.settings.base_mirrors())
            .map(|m| format!("m{m}"))
            .collect();
        for m in 0..self.settings.base_mirrors() {
            let object = self.mirror(m);
            self.create(object).await;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let ready = self.wait_ready(&names, &mirrors, None, deadline).await;
        let at = self.at().as_secs_f64();
        self.replicas.note(format!(
            "base population: {ready}/{base} promotions Ready, {} mirrors created ({at:.1} s)",
            mirrors.len()
        ));
        assert_eq!(
            ready, base,
            "the base population did not become Ready within 10 minutes"
        );
    }

    /// One churn wave: created, disturbed, worked, held for its time, deleted.
    async fn wave(&mut self, wave: usize) {
        let start = Instant::now();
        let end = start + self.settings.wave_length();
        let count = self.settings.wave_promotions(wave);
        // The base mirrors' sources change outside the cluster: a new tag, and `latest` moves to it.
        for m in 0..self.settings.base_mirrors() {
            let repository = self.mirror_sources[m].repository.clone();
            let tag = format!("w{wave}");
            let image = TestImage::new(&format!("{repository}:{tag}"));
            let digest = self
                .world
                .quay
                .push_image(&repository, &image, &tag)
                .await
                .expect("pushing a new source tag");
            self.world
                .quay
                .push_image(&repository, &image, "latest")
                .await
                .expect("moving latest");
            let source = &mut self.mirror_sources[m];
            source.tags.insert(tag, digest.clone());
            source.tags.insert("latest".into(), digest.clone());
            source.latest.push(digest);
        }
        let names = self.create_promotions(wave, count).await;
        let mirrors: Vec<String> = self
            .settings
            .wave_mirrors(wave)
            .into_iter()
            .map(|m| format!("m{m}"))
            .collect();
        for m in self.settings.wave_mirrors(wave) {
            let object = self.mirror(m);
            self.create(object).await;
        }
        self.replicas.note(format!(
            "wave {wave}: {count} promotions, {} mirrors created",
            mirrors.len()
        ));

        match self.settings.disturbance(wave) {
            Disturbance::None => {}
            Disturbance::KillLeader => {
                self.wait_ready(&names, &[], Some(count / 2), end).await;
                let leader = self.wait_leader().await.expect("a leader before the kill");
                self.replicas.kill(leader);
                let killed = Instant::now();
                match self.wait_leader().await {
                    Some(next) => {
                        let name = self.replicas.all[next].name.clone();
                        self.replicas.note(format!(
                            "{name} took over {:.1} s after the kill",
                            killed.elapsed().as_secs_f64()
                        ));
                    }
                    None => self
                        .replicas
                        .note("no replica took over within 90 s".into()),
                }
                self.replicas.start(&self.cluster);
            }
            Disturbance::RestartApiserver => {
                let away = self.private.restart("kube-apiserver").await;
                self.replicas.note(format!(
                    "apiserver restarted (away {:.1} s)",
                    away.as_secs_f64()
                ));
            }
            Disturbance::EcrPublicDown(outage) => {
                self.private.stop("ecr-public").await;
                self.replicas
                    .note(format!("ECR Public down for {} s", outage.as_secs()));
                self.pause(outage).await;
                self.private.start_stopped().await;
                self.replicas.note("ECR Public back".into());
            }
        }

        let ready = self.wait_ready(&names, &mirrors, None, end).await;
        if ready < count {
            self.slow_waves.push((wave, ready, count));
        }
        self.replicas
            .note(format!("wave {wave}: {ready}/{count} promotions Ready"));
        let left = end.saturating_duration_since(Instant::now());
        self.pause(left).await;
        for name in &names {
            self.delete("ImagePromotion", name).await;
        }
        for m in &mirrors {
            self.delete("RegistryMirror", m).await;
        }
        self.replicas.note(format!("wave {wave}: deleted"));
        if wave == 1 {
            // The baseline: the base population only, settled as at the end,
            // on the replica that leads from here on.
            let leader = self.settled("after wave 1").await;
            if let Some(leader) = leader {
                self.rss_before = self.sample_rss(leader, "before the churn").await;
                self.measured_on = Some(leader);
            }
        }
    }

    /// Settles after the churn ([`Soak::settled`]); then the leader's RSS. The leader.
    async fn settle(&mut self) -> Option<usize> {
        let leader = self.settled("after the churn").await;
        if let Some(leader) = leader {
            let rss = self.sample_rss(leader, "after the churn").await;
            let name = self.replicas.all[leader].name.clone();
            if Some(leader) == self.measured_on {
                self.rss_after = rss;
            } else {
                self.rss_after_elsewhere = rss.map(|rss| (name, rss));
            }
        }
        leader
    }
}

/// Who each manifest write was for: a write-once tag `w<wave>-<n>` names its
/// promotion, a mirror target repository `…/m<n>` its mirror, and any other
/// write (the shared floating `latest`) every promotion of the digest written.
struct WriteOwners<'a> {
    publishers: &'a BTreeMap<String, Vec<String>>,
    tag: Regex,
    mirror: Regex,
}

impl Owners for WriteOwners<'_> {
    fn owners(&self, write: &Write) -> Vec<String> {
        if let Some(c) = self.tag.captures(&write.reference) {
            return vec![format!("w{}-p{}", &c[1], &c[2])];
        }
        if let Some(c) = self.mirror.captures(&write.repository) {
            return vec![format!("m{}", &c[1])];
        }
        write
            .digest
            .as_ref()
            .and_then(|d| self.publishers.get(d))
            .cloned()
            .unwrap_or_default()
    }
}

impl Soak {
    /// The manifest writes a proxy saw accepted.
    fn writes(&self, proxy: &Proxy) -> Vec<Write> {
        let path = Regex::new("^/v2/(.+)/manifests/([^/]+)$").unwrap();
        proxy
            .exchanges()
            .into_iter()
            .filter(|e| {
                e.method == "PUT" && e.upstream_status.is_some_and(|s| (200..300).contains(&s))
            })
            .filter_map(|e| {
                let c = path.captures(&e.path)?;
                Some(Write {
                    repository: format!("{}/{}", proxy.host(), &c[1]),
                    reference: c[2].to_string(),
                    digest: e.digest.clone(),
                    at: e.received.saturating_duration_since(self.started),
                })
            })
            .collect()
    }

    /// Base mirrors' target tags that differ from their sources.
    async fn mirrors_out_of_sync(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for m in 0..self.settings.base_mirrors() {
            let target = format!("{}/m{m}", self.run);
            for (tag, digest) in &self.mirror_sources[m].tags {
                let found = self.world.quay.manifest_digest(&target, tag).await;
                if found.as_ref() != Ok(digest) {
                    problems.push(format!(
                        "mirror m{m}: {tag} is {found:?} at the target, {digest} at the source"
                    ));
                }
            }
        }
        problems
    }

    async fn check(&mut self, leader: Option<usize>) -> Vec<Check> {
        let mut checks = Vec::new();
        let base: BTreeSet<String> = (0..self.settings.base_promotions())
            .map(|i| Soak::promotion_name(0, i))
            .collect();
        let api: Api<ImagePromotion> = self.cluster.typed();
        let existing = api
            .list(&ListParams::default())
            .await
            .expect("listing the promotions")
            .items;

        // 1. Every surviving object Ready, with the exact digests at its targets.
        let mut problems = Vec::new();
        let names: BTreeSet<String> = existing
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        if names != base {
            problems.push(format!(
                "the promotions that exist are not the base population: {} exist, {} expected",
                names.len(),
                base.len()
            ));
        }
        for p in &existing {
            let name = p.metadata.name.clone().unwrap_or_default();
            if !p
                .status
                .as_ref()
                .is_some_and(|s| is(s, "Ready", ("True", "Promoted")))
            {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
                problems.push(format!(
                    "{name} not Ready: {:?}",
                    ready.map(|c| (c.status, c.reason, c.message))
                ));
            }
        }
        for index in 0..self.settings.base_promotions() {
            let group = index % self.settings.groups;
            let digest = &self.images[0][group].digest;
            let tag = format!("w0-{index}");
            let quay = self
                .world
                .quay_tag(&format!("{}/g{group}", self.run), &tag)
                .await;
            let public = self
                .world
                .public_tag(&format!("{}-g{group}", self.run), &tag)
                .await;
            for (target, found) in [("quay", quay), ("ECR Public", public)] {
                if found.as_ref() != Ok(digest) {
                    problems.push(format!(
                        "w0-p{index}: {target} {tag} is {found:?}, not {digest}"
                    ));
                }
            }
        }
        let ready_mirrors = self.ready_mirrors().await.unwrap_or_default();
        for m in 0..self.settings.base_mirrors() {
            if !ready_mirrors.contains(&format!("m{m}")) {
                problems.push(format!("mirror m{m} not Ready"));
            }
        }
        problems.extend(self.mirrors_out_of_sync().await);
        checks.push(Check::new(
            "every surviving object Ready with exact digests at its targets",
            problems,
            format!(
                "{} promotions (2 targets each) and {} mirrors",
                base.len(),
                self.settings.base_mirrors()
            ),
        ));

        // 2. No tag written for a deleted object after its deletion.
        let mut writes = self.writes(&self.quay);
        writes.extend(self.writes(&self.public));
        let owners = WriteOwners {
            publishers: &self.publishers,
            tag: Regex::new("^w([0-9]+)-([0-9]+)$").unwrap(),
            mirror: Regex::new("/m([0-9]+)$").unwrap(),
        };
        checks.push(Check::new(
            "no tag written for a deleted object after its deletion",
            checks::writes_after_deletion(&writes, &owners, &self.deleted),
            format!(
                "{} manifest writes checked against {} deletions",
                writes.len(),
                self.deleted.len()
            ),
        ));

        // 3. The gauges equal to the objects that exist.
        let text = match leader {
            Some(l) => self.replicas.metrics(l).await.unwrap_or_default(),
            None => String::new(),
        };
        let by_state: BTreeMap<String, f64> =
            ["Ready", "Reconciling", "Stalled", "Drifted", "Pending"]
                .iter()
                .filter_map(|s| {
                    Some((
                        s.to_string(),
                        metric(
                            &text,
                            &format!("image_promoter_promotions{{state=\"{s}\"}}"),
                        )?,
                    ))
                })
                .collect();
        let drifted = existing
            .iter()
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == "TagDrifted")
                })
            })
            .count();
        let mut problems = checks::gauges(
            &by_state,
            existing.len(),
            metric(&text, "image_promoter_drifted_tags"),
            drifted,
        );
        if leader.is_none() {
            problems.insert(0, "no single leader to read the gauges from".into());
        }
        checks.push(Check::new(
            "the gauges equal to the objects that exist",
            problems,
            format!(
                "image_promoter_promotions sums to {} = existing; drifted tags {drifted}",
                existing.len()
            ),
        ));

        // 4. Memory.
        let peaks = self.replicas.peaks();
        checks.push(Check::new(
            "peak RSS ≤ 128 MiB, RSS after the churn within 10 % of before",
            checks::memory(
                &peaks,
                PEAK_RSS_LIMIT_MIB,
                self.rss_before,
                self.rss_after,
                RSS_TOLERANCE,
            ),
            format!(
                "peak {:.0} MiB; {:.1} → {:.1} MiB",
                peaks.iter().map(|(_, p)| *p).fold(0.0, f64::max),
                self.rss_before.unwrap_or_default(),
                self.rss_after.unwrap_or_default()
            ),
        ));

        // 5. No floating tag moved back, and each ends on the newest digest.
        let mut floating = BTreeSet::new();
        let mut order = BTreeMap::new();
        for group in 0..self.settings.groups {
            floating.insert((
                format!("{}/{}/g{group}", self.quay.host(), self.run),
                "latest".to_string(),
            ));
            for (wave, row) in self.images.iter().enumerate() {
                order.insert(row[group].digest.clone(), wave);
            }
        }
        for (m, source) in self.mirror_sources.iter().enumerate() {
            floating.insert((
                format!("{}/{}/m{m}", self.quay.host(), self.run),
                "latest".to_string(),
            ));
            for (rank, digest) in source.latest.iter().enumerate() {
                order.insert(digest.clone(), rank);
            }
        }
        let mut problems = checks::floating_moved_back(&writes, &floating, &order);
        let newest = self.images.len() - 1;
        for group in 0..self.settings.groups {
            let expected = &self.images[newest][group].digest;
            let found = self
                .world
                .quay_tag(&format!("{}/g{group}", self.run), "latest")
                .await;
            if found.as_ref() != Ok(expected) {
                let rank = found.as_ref().ok().and_then(|d| order.get(d));
                problems.push(format!("g{group}:latest ends on {found:?} (wave {rank:?}), not the newest wave's {expected}"));
            }
        }
        checks.push(Check::new(
            "no floating tag moved back",
            problems,
            format!(
                "{} floating tags, {} writes",
                floating.len(),
                writes.iter().filter(|w| w.reference == "latest").count()
            ),
        ));

        // 6. Beyond the list: no replica exited unless killed.
        checks.push(Check::new(
            "no replica exited on its own",
            self.replicas
                .unexpected_exits
                .iter()
                .map(|(at, name, status, tail)| format!("{name} at {at:.1} s ({status}): {tail}"))
                .collect(),
            format!(
                "{} replicas, one killed on purpose; {} stopped after losing the Lease (fail-stop, by design)",
                self.replicas.all.len(),
                self.replicas.lease_losses
            ),
        ));
        checks
    }

    /// Requests the Quay proxy saw for mirror target repositories, per
    /// mirror and minute it existed (the churn mirrors for their wave).
    fn mirror_requests_per_minute(&self) -> f64 {
        let prefix = format!("/v2/{}/m", self.run);
        let requests = self
            .quay
            .exchanges()
            .iter()
            .filter(|e| e.path.starts_with(&prefix))
            .count();
        let s = &self.settings;
        let base = s.base_mirrors() as f64 * self.at().as_secs_f64();
        let churn = (s.mirrors - s.base_mirrors()) as f64 * s.wave_length().as_secs_f64();
        requests as f64 / ((base + churn) / 60.0).max(1.0)
    }

    fn report(&self, checks: &[Check]) -> String {
        let s = &self.settings;
        let build = match std::env::var("IMAGE_PROMOTER_BIN") {
            Ok(bin) if bin.contains("/release/") => format!("release build (`{bin}`)"),
            Ok(bin) => format!("build at `{bin}`"),
            Err(_) => "debug build (cargo test's own)".to_string(),
        };
        let mut out = format!(
            "## Soak: correct over time\n\n\
             `make soak` (`SOAK_MINUTES=10 SOAK_PROMOTIONS=1000 SOAK_MIRRORS=20 cargo test --release --test soak` \
             with the release binary); `cargo test --test soak` is the 2-minute variant `make test` runs. \
             Written by tests/soak on {date}: a {build}, replicas with `--leader-elect` and \
             `--resync-interval {resync}s`, against a private control plane (its own etcd and kube-apiserver, \
             its own ECR Public registry and stand-in) beside the shared test world, on a 2-core machine \
             shared with other builds.\n\n\
             {minutes:.0} minutes of churn in {waves} waves after a base population of {base} promotions and \
             {base_mirrors} mirrors; {promotions} promotions and {mirrors} mirrors created in all, {deleted} \
             objects deleted. Each promotion publishes one image to a Quay repository (a write-once tag and \
             the floating `latest` its group shares) and to an ECR Public repository it creates; each mirror \
             copies a Quay repository whose `latest` moves every wave. Disturbances: the leader killed \
             (SIGKILL) in wave 1 with a standby running, the apiserver restarted in wave {api}, ECR Public \
             (API and token realm) down for {outage} s in wave {ecr}. The leader's RSS (median over 5 s) \
             is taken twice with the base population alone, after wave 1 and after the last wave, each \
             time once every base object is Ready, the base mirrors are in sync, the leader's gauges count \
             the base promotions only, and 10 s more have passed.\n\n\
             | check | result | detail |\n|---|---|---|\n",
            date = httpdate::fmt_http_date(std::time::SystemTime::now()),
            resync = s.resync.as_secs(),
            minutes = s.duration.as_secs_f64() / 60.0,
            waves = s.waves,
            base = s.base_promotions(),
            base_mirrors = s.base_mirrors(),
            promotions = self.created_promotions,
            mirrors = self.created_mirrors,
            deleted = self.deleted.len(),
            api = (1..=s.waves)
                .find(|w| s.disturbance(*w) == Disturbance::RestartApiserver)
                .unwrap_or(0),
            ecr = (1..=s.waves)
                .find(|w| matches!(s.disturbance(*w), Disturbance::EcrPublicDown(_)))
                .unwrap_or(0),
            outage = s.outage.as_secs(),
        );
        for check in checks {
            let detail = check.detail.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {} | {} | {detail} |\n",
                check.name,
                if check.passed { "pass" } else { "**FAIL**" }
            ));
        }
        let requests = |proxy: &Proxy| {
            let mut by_method: BTreeMap<String, usize> = BTreeMap::new();
            for e in proxy.exchanges() {
                *by_method.entry(e.method).or_default() += 1;
            }
            by_method
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let peaks: Vec<String> = self
            .replicas
            .peaks()
            .iter()
            .map(|(n, p)| format!("{n} {p:.0} MiB"))
            .collect();
        out.push_str(&format!(
            "\n| figure | value |\n|---|---|\n\
             | peak RSS per replica | {} |\n\
             | leader's RSS with the base population, before / after the churn | {} / {} MiB |\n\
             | registry requests at the Quay proxy | {} |\n\
             | registry requests at the ECR Public proxy | {} |\n\
             | requests to the mirrors' target repositories per mirror and minute of its life | {:.1} |\n\
             | waves not all Ready within their time (wave: Ready/created) | {} |\n",
            peaks.join(", "),
            self.rss_before.map_or("—".into(), |v| format!("{v:.1}")),
            match (&self.rss_after, &self.rss_after_elsewhere) {
                (Some(v), _) => format!("{v:.1}"),
                (None, Some((name, v))) => format!(
                    "— (the replica measured before exited; {name}, leading at the end: {v:.1})"
                ),
                _ => "—".into(),
            },
            requests(&self.quay),
            requests(&self.public),
            self.mirror_requests_per_minute(),
            if self.slow_waves.is_empty() {
                "none".to_string()
            } else {
                self.slow_waves
                    .iter()
                    .map(|(w, r, c)| format!("{w}: {r}/{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
        out.push_str("\nTimeline (seconds from the first replica's start):\n\n");
        for (at, what) in &self.replicas.timeline {
            out.push_str(&format!("- {at:.1} s: {what}\n"));
        }
        out
    }
}
