//! How every command prints its result: `-o, --output text|json|yaml`, the
//! flag skopeo, crane, regctl and kubectl users expect, with one meaning for
//! every command.
//!
//! `text` is for a person (each command renders it); `json` and `yaml` are the
//! same serialized value, for programs. A command flattens [`OutputArgs`] into
//! its arguments and hands its result to [`emit`]; nothing else prints to
//! standard output, so the result can always be piped.

use std::io::Write;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The format of a command's result on standard output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for a person (`human`, its old name in `copy`, still works).
    #[default]
    #[value(alias = "human")]
    Text,
    /// One JSON document, pretty-printed.
    Json,
    /// One YAML document.
    Yaml,
}

/// The `-o, --output` flag, shared by every command that prints a result.
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// Output format: text for a person; json or yaml for a program.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        value_name = "FORMAT",
        default_value_t = OutputFormat::Text
    )]
    pub output: OutputFormat,
}

/// `value` in `format`; `text` renders it for a person. Every rendering ends
/// with a newline (an empty text stays empty).
pub fn render<T: Serialize + ?Sized>(
    format: OutputFormat,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> String {
    let mut out = match format {
        OutputFormat::Text => text(value),
        OutputFormat::Json => serde_json::to_string_pretty(value).expect("a report serializes"),
        OutputFormat::Yaml => serde_yaml_ng::to_string(value).expect("a report serializes"),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Renders `value` and prints it; a failed write (a closed pipe) is reported
/// on standard error and returned, for the command to exit 1.
pub fn emit<T: Serialize + ?Sized>(
    format: OutputFormat,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> std::io::Result<()> {
    print(&render(format, value, text)).inspect_err(|error| {
        eprintln!("image-promoter: writing the result to standard output: {error}");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        name: &'static str,
        bytes_copied: u64,
    }

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        output: OutputArgs,
    }

    fn parse(argv: &[&str]) -> Result<OutputFormat, String> {
        Harness::try_parse_from(std::iter::once("cmd").chain(argv.iter().copied()))
            .map(|h| h.output.output)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_flag_with_three_formats() {
        let cases: [(&[&str], OutputFormat); 7] = [
            (&[], OutputFormat::Text),
            (&["-o", "json"], OutputFormat::Json),
            (&["-o", "yaml"], OutputFormat::Yaml),
            (&["--output", "text"], OutputFormat::Text),
            (&["--output=yaml"], OutputFormat::Yaml),
            (&["-ojson"], OutputFormat::Json),
            (&["--output", "human"], OutputFormat::Text),
        ];
        for (argv, expected) in cases {
            assert_eq!(parse(argv), Ok(expected), "{argv:?}");
        }
        let refused = parse(&["-o", "xml"]).unwrap_err();
        assert!(
            refused.contains("invalid value 'xml'") && refused.contains("text, json, yaml"),
            "{refused}"
        );
    }

    #[test]
    fn renders_the_same_value_in_each_format() {
        let sample = Sample {
            name: "app",
            bytes_copied: 42,
        };
        let text = |s: &Sample| format!("{} {}", s.name, s.bytes_copied);
        assert_eq!(render(OutputFormat::Text, &sample, text), "app 42\n");
        let json = render(OutputFormat::Json, &sample, text);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["bytesCopied"], 42, "{json}");
        assert!(json.ends_with("}\n"), "{json:?}");
        let yaml = render(OutputFormat::Yaml, &sample, text);
        assert_eq!(yaml, "name: app\nbytesCopied: 42\n");
        assert_eq!(render(OutputFormat::Text, &sample, |_| String::new()), "");
    }
}
