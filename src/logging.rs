//! The process's logs: what the operator writes to standard error, in the
//! shape log queries written for controller-runtime operators expect.
//!
//! A JSON line per event ([`ControllerRuntimeJson`]): `ts` (RFC 3339), a
//! lowercase `level`, `logger` (the Rust module), `msg`, then the fields of
//! the spans the event happened in and its own. A reconcile runs in a
//! [`reconcile_span`], so each of its lines carries `controller` (the
//! lowercase kind, as controller-runtime names controllers),
//! `controllerGroup`, `controllerKind`, `namespace`, `name` and a fresh
//! `reconcileID` — the same keys for both kinds.
//!
//! The filter ([`filter`]) takes a level (`error`, `warn`, `info`, `debug`,
//! `trace`) or tracing filter directives (`info,image_promoter=debug`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The level names a log level may be.
pub const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A log filter from `text`: a level or tracing filter directives. Each
/// comma-separated part must be a level or name a target (`target=level`),
/// so that a misspelt level is an error, not a filter for a target of that
/// name.
pub fn filter(text: &str) -> Result<EnvFilter, String> {
    let refused = |why: String| {
        format!(
            "{text:?} is not a log level: {why}; use one of error, warn, info, debug, trace, \
             or tracing filter directives such as info,image_promoter=debug"
        )
    };
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.iter().all(|p| p.is_empty()) {
        return Err(refused("it is empty".into()));
    }
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let level = part.to_ascii_lowercase();
        if !LEVELS.contains(&level.as_str()) && !part.contains('=') && !part.contains('[') {
            return Err(refused(format!(
                "{part:?} is neither a level nor target=level"
            )));
        }
    }
    EnvFilter::builder()
        .parse(text)
        .map_err(|e| refused(e.to_string()))
}

/// [`filter`] for a command-line flag: the text when it is valid.
pub fn parse_level(text: &str) -> Result<String, String> {
    filter(text).map(|_| text.to_string())
}

/// Installs the process's logger on standard error: JSON lines
/// ([`ControllerRuntimeJson`]) or text for people.
pub fn init(json: bool, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(ControllerRuntimeJson)
            .init();
    } else {
        builder.init();
    }
}

/// The span a reconcile of one object runs in: its lines carry the keys
/// controller-runtime's reconcilers log, with a fresh `reconcileID`.
pub fn reconcile_span(
    controller: &str,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> tracing::Span {
    tracing::info_span!(
        "reconcile",
        controller = %controller,
        controllerGroup = %group,
        controllerKind = %kind,
        namespace = %namespace,
        name = %name,
        reconcileID = %reconcile_id(),
    )
}

/// A random version 4 UUID, as controller-runtime's reconcile IDs are.
pub fn reconcile_id() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// One JSON object per line with controller-runtime's keys: `ts`, `level`
/// (lowercase), `logger`, `msg`, then the span fields (outermost first) and
/// the event's own. Span fields must be formatted with [`JsonFields`].
pub struct ControllerRuntimeJson;

impl<S, N> FormatEvent<S, N> for ControllerRuntimeJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str(formatted)
                {
                    fields.extend(map);
                }
            }
        }
        let mut own = Fields(Map::new());
        event.record(&mut own);
        let msg = own
            .0
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        fields.extend(own.0);
        let metadata = event.metadata();
        // controller-runtime's keys first, in its order; then the rest, sorted.
        let mut line: Vec<(String, Value)> = vec![
            (
                "ts".into(),
                Value::String(format!("{:.3}", k8s_openapi::jiff::Timestamp::now())),
            ),
            (
                "level".into(),
                Value::String(metadata.level().as_str().to_ascii_lowercase()),
            ),
            ("logger".into(), Value::String(metadata.target().into())),
            ("msg".into(), msg),
        ];
        for (key, value) in fields {
            if !line.iter().any(|(k, _)| *k == key) {
                line.push((key, value));
            }
        }
        let mut text = String::from("{");
        for (i, (key, value)) in line.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
            let value = serde_json::to_string(value).map_err(|_| fmt::Error)?;
            text.push_str(&key);
            text.push(':');
            text.push_str(&value);
        }
        text.push('}');
        writeln!(writer, "{text}")
    }
}

/// An event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The text and JSON lines `emit` logs through the operator's formatter.
    fn logged(emit: impl FnOnce()) -> (String, Vec<Value>) {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter("debug").unwrap())
            .fmt_fields(JsonFields::new())
            .event_format(ControllerRuntimeJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        (text, lines)
    }

    #[test]
    fn lines_carry_controller_runtimes_keys_for_both_kinds() {
        let (text, lines) = logged(|| {
            tracing::info!(version = "1.2.3", "starting");
            for (controller, kind) in [
                ("imagepromotion", "ImagePromotion"),
                ("registrymirror", "RegistryMirror"),
            ] {
                let span = reconcile_span(controller, "imagepromoter.dev", kind, "team", "app");
                let _entered = span.enter();
                tracing::warn!(reason = "TagsDrifted", copied = 3u64, "a tag drifted");
            }
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            text.lines().all(|l| l.starts_with("{\"ts\":")
                && l.contains("\"level\":")
                && l.contains(",\"logger\":")),
            "ts, level, logger and msg first:\n{text}"
        );
        let start = &lines[0];
        assert_eq!(start["level"], "info");
        assert_eq!(start["msg"], "starting");
        assert_eq!(start["version"], "1.2.3");
        assert!(start.get("message").is_none() && start.get("fields").is_none());
        let ts = start["ts"].as_str().unwrap();
        assert!(
            ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && ts.ends_with('Z'),
            "an RFC 3339 time: {ts}"
        );
        let mut ids = Vec::new();
        for (line, (controller, kind)) in lines[1..].iter().zip([
            ("imagepromotion", "ImagePromotion"),
            ("registrymirror", "RegistryMirror"),
        ]) {
            assert_eq!(line["level"], "warn", "{line}");
            assert_eq!(line["msg"], "a tag drifted");
            assert_eq!(line["controller"], controller);
            assert_eq!(line["controllerKind"], kind);
            assert_eq!(line["controllerGroup"], "imagepromoter.dev");
            assert_eq!(line["namespace"], "team");
            assert_eq!(line["name"], "app");
            assert_eq!(line["reason"], "TagsDrifted");
            assert_eq!(line["copied"], 3);
            assert!(line.get("span").is_none() && line.get("mirror").is_none());
            ids.push(line["reconcileID"].as_str().unwrap().to_string());
        }
        assert_ne!(ids[0], ids[1], "a fresh reconcileID per reconcile");
        let uuid = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(ids.iter().all(|id| uuid.is_match(id)), "{ids:?}");
    }

    #[test]
    fn a_log_level_is_a_level_or_directives_and_anything_else_is_refused() {
        for good in [
            "error",
            "warn",
            "info",
            "debug",
            "trace",
            "INFO",
            "info,image_promoter=debug",
            "image_promoter::controller=trace",
        ] {
            assert!(filter(good).is_ok(), "{good}");
            assert_eq!(parse_level(good).unwrap(), good);
        }
        for (bad, why) in [
            ("verbose", "\"verbose\" is neither a level nor target=level"),
            ("", "it is empty"),
            ("info,loud", "\"loud\" is neither"),
            ("image_promoter=loud", "is not a log level"),
        ] {
            let error = filter(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
            assert!(error.contains("use one of error, warn, info"), "{error}");
        }
    }
}
