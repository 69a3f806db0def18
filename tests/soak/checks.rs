//! The soak's verdicts, pure (table-tested): over the manifest writes the
//! proxies saw, the deletions the soak made, the gauges and the memory it
//! sampled. Times are offsets from the start of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One manifest `PUT` a registry accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// `host/repository` as the proxy saw it (the proxy's own host).
    pub repository: String,
    /// The tag or digest in the path.
    pub reference: String,
    /// The digest the registry reported.
    pub digest: Option<String>,
    /// When the request arrived at the proxy.
    pub at: Duration,
}

/// One verdict for the report.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &'static str, problems: Vec<String>, ok: String) -> Self {
        let passed = problems.is_empty();
        let detail = if passed {
            ok
        } else {
            let shown: Vec<&str> = problems.iter().take(8).map(String::as_str).collect();
            let more = problems.len().saturating_sub(shown.len());
            let mut text = format!("{} problem(s): {}", problems.len(), shown.join("; "));
            if more > 0 {
                text.push_str(&format!("; … and {more} more"));
            }
            text
        };
        Self {
            name,
            passed,
            detail,
        }
    }
}

/// Who a write was for: the objects that own `(repository, reference)` or,
/// for a shared tag, the objects that publish `digest` there.
pub trait Owners {
    fn owners(&self, write: &Write) -> Vec<String>;
}

/// Writes made after every object they were for had been deleted.
pub fn writes_after_deletion(
    writes: &[Write],
    owners: &impl Owners,
    deleted: &BTreeMap<String, Duration>,
) -> Vec<String> {
    writes
        .iter()
        .filter_map(|write| {
            let owners = owners.owners(write);
            let last_deletion = owners
                .iter()
                .map(|o| deleted.get(o).copied())
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max()?;
            (write.at > last_deletion).then(|| {
                format!(
                    "{}:{} written {:.1} s after {} was deleted",
                    write.repository,
                    write.reference,
                    (write.at - last_deletion).as_secs_f64(),
                    owners.join(", ")
                )
            })
        })
        .collect()
}

/// Writes of a floating tag that put it back on an older digest: `order`
/// ranks the digests a tag may hold (a later wave's image ranks higher).
pub fn floating_moved_back(
    writes: &[Write],
    floating: &BTreeSet<(String, String)>,
    order: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut sorted: Vec<&Write> = writes
        .iter()
        .filter(|w| floating.contains(&(w.repository.clone(), w.reference.clone())))
        .collect();
    sorted.sort_by_key(|w| w.at);
    let mut newest: BTreeMap<(&str, &str), (usize, &str)> = BTreeMap::new();
    let mut problems = Vec::new();
    for write in sorted {
        let Some(digest) = write.digest.as_deref() else {
            continue;
        };
        let Some(&rank) = order.get(digest) else {
            problems.push(format!(
                "{}:{} written with a digest no object publishes there ({digest})",
                write.repository, write.reference
            ));
            continue;
        };
        let key = (write.repository.as_str(), write.reference.as_str());
        match newest.get(&key) {
            Some(&(held, held_digest)) if rank < held => problems.push(format!(
                "{}:{} moved back at {:.1} s from {held_digest} (rank {held}) to {digest} (rank {rank})",
                write.repository,
                write.reference,
                write.at.as_secs_f64()
            )),
            Some(&(held, _)) if held >= rank => {}
            _ => {
                newest.insert(key, (rank, digest));
            }
        }
    }
    problems
}

/// The gauge `image_promoter_promotions` (summed over states) against the
/// objects that exist, and `image_promoter_drifted_tags` against the drifted
/// tags they have.
pub fn gauges(
    promotions_by_state: &BTreeMap<String, f64>,
    existing: usize,
    drifted_gauge: Option<f64>,
    drifted: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let sum: f64 = promotions_by_state.values().sum();
    if sum != existing as f64 {
        problems.push(format!(
            "image_promoter_promotions sums to {sum} ({promotions_by_state:?}) but {existing} ImagePromotions exist"
        ));
    }
    match drifted_gauge {
        Some(value) if value == drifted as f64 => {}
        other => problems.push(format!(
            "image_promoter_drifted_tags is {other:?} but the existing objects have {drifted} drifted tags"
        )),
    }
    problems
}

/// Peak RSS of each replica against `limit_mib`, and the leader's RSS with
/// the base population after the churn against before it (within `tolerance`).
pub fn memory(
    peaks_mib: &[(String, f64)],
    limit_mib: f64,
    before_mib: Option<f64>,
    after_mib: Option<f64>,
    tolerance: f64,
) -> Vec<String> {
    let mut problems: Vec<String> = peaks_mib
        .iter()
        .filter(|(_, peak)| *peak > limit_mib)
        .map(|(name, peak)| format!("{name}: peak RSS {peak:.0} MiB > {limit_mib:.0} MiB"))
        .collect();
    match (before_mib, after_mib) {
        (Some(before), Some(after)) => {
            let change = (after - before) / before;
            if change.abs() > tolerance {
                problems.push(format!(
                    "RSS with the base population {before:.1} MiB before the churn, {after:.1} MiB after ({:+.0} %)",
                    change * 100.0
                ));
            }
        }
        _ => problems.push(format!(
            "RSS before ({before_mib:?}) and after ({after_mib:?}) the churn could not both be measured on the same replica"
        )),
    }
    problems
}

/// The median of samples (RSS fluctuates with allocator timing).
pub fn median(samples: &mut [f64]) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(repository: &str, reference: &str, digest: &str, at: u64) -> Write {
        Write {
            repository: repository.into(),
            reference: reference.into(),
            digest: Some(digest.into()),
            at: Duration::from_secs(at),
        }
    }

    /// Tags `w<wave>-<n>` belong to object `w<wave>-p<n>`; `latest` to every
    /// object publishing its digest (`d<wave>`: objects `w<wave>-p*`).
    struct ByName(Vec<&'static str>);

    impl Owners for ByName {
        fn owners(&self, write: &Write) -> Vec<String> {
            if let Some((wave, n)) = write.reference.split_once('-') {
                return vec![format!("{wave}-p{n}")];
            }
            let wave = write.digest.as_deref().unwrap().replace('d', "w");
            self.0
                .iter()
                .filter(|o| o.starts_with(&format!("{wave}-")))
                .map(|o| o.to_string())
                .collect()
        }
    }

    #[test]
    fn a_write_counts_against_a_deletion_only_when_every_owner_was_gone() {
        let objects = ByName(vec!["w1-p0", "w1-p1", "w0-p0"]);
        let deleted: BTreeMap<String, Duration> = [
            ("w1-p0".to_string(), Duration::from_secs(10)),
            ("w1-p1".to_string(), Duration::from_secs(20)),
        ]
        .into();
        let cases = [
            (write("q/g0", "w1-0", "d1", 9), 0, "before its deletion"),
            (write("q/g0", "w1-0", "d1", 11), 1, "after its deletion"),
            (
                write("q/g0", "latest", "d1", 15),
                0,
                "one owner still there",
            ),
            (write("q/g0", "latest", "d1", 21), 1, "every owner gone"),
            (write("q/g0", "w0-0", "d0", 30), 0, "never deleted"),
        ];
        for (w, expected, why) in cases {
            let found = writes_after_deletion(&[w], &objects, &deleted);
            assert_eq!(found.len(), expected, "{why}: {found:?}");
        }
    }

    #[test]
    fn a_floating_tag_may_only_move_forward() {
        let floating: BTreeSet<(String, String)> =
            [("q/g0".to_string(), "latest".to_string())].into();
        let order: BTreeMap<String, usize> = [
            ("d0".to_string(), 0),
            ("d1".to_string(), 1),
            ("d2".to_string(), 2),
        ]
        .into();
        let cases: Vec<(Vec<Write>, usize, &str)> = vec![
            (
                vec![
                    write("q/g0", "latest", "d0", 1),
                    write("q/g0", "latest", "d1", 2),
                    write("q/g0", "latest", "d2", 3),
                ],
                0,
                "forward",
            ),
            (
                vec![
                    write("q/g0", "latest", "d1", 2),
                    write("q/g0", "latest", "d1", 3),
                ],
                0,
                "the same digest again",
            ),
            (
                vec![
                    write("q/g0", "latest", "d1", 2),
                    write("q/g0", "latest", "d0", 3),
                ],
                1,
                "back",
            ),
            (
                vec![
                    write("q/g0", "latest", "d0", 3),
                    write("q/g0", "latest", "d2", 1),
                ],
                1,
                "back, by arrival time",
            ),
            (
                vec![write("q/g0", "latest", "d9", 1)],
                1,
                "a digest nobody publishes",
            ),
            (
                vec![
                    write("q/g1", "latest", "d2", 1),
                    write("q/g0", "latest", "d0", 2),
                ],
                0,
                "another repository",
            ),
            (
                vec![
                    write("q/g0", "w1-0", "d2", 1),
                    write("q/g0", "w0-0", "d0", 2),
                ],
                0,
                "write-once tags",
            ),
        ];
        for (writes, expected, why) in cases {
            let found = floating_moved_back(&writes, &floating, &order);
            assert_eq!(found.len(), expected, "{why}: {found:?}");
        }
    }

    #[test]
    fn gauges_must_equal_what_exists() {
        let states = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert!(
            gauges(
                &states(&[("Ready", 40.0), ("Pending", 0.0)]),
                40,
                Some(0.0),
                0
            )
            .is_empty()
        );
        assert_eq!(
            gauges(&states(&[("Ready", 55.0)]), 40, Some(0.0), 0).len(),
            1,
            "deleted objects counted"
        );
        assert_eq!(
            gauges(&states(&[("Ready", 40.0)]), 40, None, 0).len(),
            1,
            "no drift gauge"
        );
        assert_eq!(
            gauges(&states(&[("Ready", 40.0)]), 40, Some(3.0), 0).len(),
            1,
            "drift of deleted objects"
        );
    }

    #[test]
    fn memory_limits_and_growth() {
        let peaks = vec![("a".to_string(), 60.0), ("b".to_string(), 70.0)];
        assert!(memory(&peaks, 128.0, Some(50.0), Some(54.0), 0.10).is_empty());
        assert_eq!(memory(&peaks, 64.0, Some(50.0), Some(54.0), 0.10).len(), 1);
        assert_eq!(memory(&peaks, 128.0, Some(50.0), Some(56.0), 0.10).len(), 1);
        assert_eq!(memory(&peaks, 128.0, Some(50.0), None, 0.10).len(), 1);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
    }
}
