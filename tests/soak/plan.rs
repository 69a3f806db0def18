//! What a soak run does, decided before it starts (pure, table-tested): its
//! size from the environment, which objects each wave creates, and in which
//! wave each disturbance happens.
//!
//! The shape: a base population (two fifths of the promotions, half of the
//! mirrors) is created first and lives to the end; the rest is spread over
//! churn waves, each created, worked and deleted within its share of the run.
//! The base population is the same before and after the churn, so the
//! operator's memory can be compared.

use std::time::Duration;

/// The size of a run, from `SOAK_*` variables.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How long the churn lasts.
    pub duration: Duration,
    /// Promotions created over the run (base and waves).
    pub promotions: usize,
    /// Mirrors created over the run (base and waves).
    pub mirrors: usize,
    /// Churn waves.
    pub waves: usize,
    /// Target repositories the promotions share (each with a floating `latest`).
    pub groups: usize,
    /// `--resync-interval` of the replicas.
    pub resync: Duration,
    /// How long ECR Public is down.
    pub outage: Duration,
}

impl Settings {
    /// Reads `SOAK_MINUTES` (2), `SOAK_PROMOTIONS` (100), `SOAK_MIRRORS` (4),
    /// `SOAK_WAVES` (the minutes, at least 4); the resync interval and the
    /// outage scale with the minutes (20 s and 6 s at 2, 60 s and 30 s at 10).
    pub fn from(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |key: &str, default: f64| -> Result<f64, String> {
            match var(key) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
                    .ok_or_else(|| format!("{key}={text:?}: expected a positive number")),
            }
        };
        let minutes = number("SOAK_MINUTES", 2.0)?;
        let promotions = number("SOAK_PROMOTIONS", 100.0)? as usize;
        let mirrors = number("SOAK_MIRRORS", 4.0)? as usize;
        let waves = number("SOAK_WAVES", minutes.round().max(4.0))? as usize;
        if promotions < 10 || mirrors < 2 || waves < 4 {
            return Err(format!(
                "SOAK_PROMOTIONS={promotions}, SOAK_MIRRORS={mirrors}, SOAK_WAVES={waves}: \
                 a soak needs at least 10 promotions, 2 mirrors and 4 waves"
            ));
        }
        Ok(Self {
            duration: Duration::from_secs_f64(minutes * 60.0),
            promotions,
            mirrors,
            waves,
            groups: 4,
            resync: Duration::from_secs_f64((minutes * 6.0).clamp(20.0, 60.0)),
            outage: Duration::from_secs_f64((minutes * 3.0).clamp(6.0, 30.0)),
        })
    }

    /// Promotions of the base population.
    pub fn base_promotions(&self) -> usize {
        self.promotions * 2 / 5
    }

    /// Promotions wave `wave` (1-based) creates: the churn split evenly, the
    /// first waves taking the remainder.
    pub fn wave_promotions(&self, wave: usize) -> usize {
        let churn = self.promotions - self.base_promotions();
        churn / self.waves + usize::from(wave <= churn % self.waves)
    }

    /// Mirrors of the base population.
    pub fn base_mirrors(&self) -> usize {
        self.mirrors / 2
    }

    /// The churn mirrors (numbered after the base ones) wave `wave` creates.
    pub fn wave_mirrors(&self, wave: usize) -> Vec<usize> {
        (self.base_mirrors()..self.mirrors)
            .filter(|m| (m - self.base_mirrors()) % self.waves + 1 == wave)
            .collect()
    }

    /// How long each wave lasts.
    pub fn wave_length(&self) -> Duration {
        self.duration / self.waves as u32
    }

    /// What disturbs wave `wave`.
    pub fn disturbance(&self, wave: usize) -> Disturbance {
        if wave == 1 {
            Disturbance::KillLeader
        } else if wave == self.waves.div_ceil(2) {
            Disturbance::RestartApiserver
        } else if wave == (3 * self.waves).div_ceil(4) {
            Disturbance::EcrPublicDown(self.outage)
        } else {
            Disturbance::None
        }
    }
}

/// What happens to a wave while its objects are worked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Disturbance {
    None,
    /// The leader is killed (SIGKILL) once half the wave is Ready; the standby
    /// takes over and a new standby is started.
    KillLeader,
    /// The apiserver is stopped and started again right after the wave is created.
    RestartApiserver,
    /// ECR Public (API and token realm) is down this long, right after the wave is created.
    EcrPublicDown(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from(|key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    #[test]
    fn sizes_from_the_environment() {
        let short = settings(&[]).unwrap();
        assert_eq!(
            (short.duration, short.promotions, short.mirrors, short.waves),
            (Duration::from_secs(120), 100, 4, 4)
        );
        assert_eq!(
            (short.resync, short.outage),
            (Duration::from_secs(20), Duration::from_secs(6))
        );
        let full = settings(&[
            ("SOAK_MINUTES", "10"),
            ("SOAK_PROMOTIONS", "1000"),
            ("SOAK_MIRRORS", "20"),
        ])
        .unwrap();
        assert_eq!((full.waves, full.resync), (10, Duration::from_secs(60)));
        assert_eq!(full.outage, Duration::from_secs(30));
        for bad in [
            ("SOAK_MINUTES", "ten"),
            ("SOAK_PROMOTIONS", "-1"),
            ("SOAK_WAVES", "2"),
        ] {
            let error = settings(&[bad]).unwrap_err();
            assert!(error.contains(bad.0), "{error}");
        }
    }

    #[test]
    fn every_object_belongs_to_the_base_or_exactly_one_wave() {
        for (promotions, mirrors, waves) in [(100, 4, 4), (1000, 20, 10), (37, 3, 5)] {
            let s = settings(&[
                ("SOAK_PROMOTIONS", &promotions.to_string()),
                ("SOAK_MIRRORS", &mirrors.to_string()),
                ("SOAK_WAVES", &waves.to_string()),
            ])
            .unwrap();
            let churn: usize = (1..=waves).map(|w| s.wave_promotions(w)).sum();
            assert_eq!(s.base_promotions() + churn, promotions);
            let mut churn_mirrors: Vec<usize> =
                (1..=waves).flat_map(|w| s.wave_mirrors(w)).collect();
            churn_mirrors.sort();
            assert_eq!(
                churn_mirrors,
                (s.base_mirrors()..mirrors).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn each_disturbance_happens_once_in_its_own_wave() {
        for waves in [4, 5, 10] {
            let s = settings(&[("SOAK_WAVES", &waves.to_string())]).unwrap();
            let all: Vec<Disturbance> = (1..=waves).map(|w| s.disturbance(w)).collect();
            let count = |d: fn(&Disturbance) -> bool| all.iter().filter(|x| d(x)).count();
            assert_eq!(count(|d| *d == Disturbance::KillLeader), 1, "{all:?}");
            assert_eq!(count(|d| *d == Disturbance::RestartApiserver), 1, "{all:?}");
            assert_eq!(
                count(|d| matches!(d, Disturbance::EcrPublicDown(_))),
                1,
                "{all:?}"
            );
            assert_eq!(all[waves - 1], Disturbance::None, "the last wave is quiet");
        }
    }
}
