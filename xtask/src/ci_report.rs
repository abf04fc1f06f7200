//! The reports of `cargo xtask ci --report <format> <file>`: one entry per step (name, result, seconds, the
//! failing command and its stderr tail), in the formats CI systems show natively: JUnit XML (GitLab's test
//! report, most CI servers), JSON (scripts, dashboards) and Markdown (a GitHub Actions job summary).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::term::markup_escape;

/// The formats `--report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Junit,
    Json,
    Markdown,
}

/// `--report` pairs (`junit ci.xml json ci.json`), checked before any step runs.
pub fn parse_flags(values: &[String]) -> Result<Vec<(ReportFormat, PathBuf)>> {
    values
        .chunks(2)
        .map(|pair| match pair {
            [format, file] => {
                let format = match format.as_str() {
                    "junit" => ReportFormat::Junit,
                    "json" => ReportFormat::Json,
                    "markdown" => ReportFormat::Markdown,
                    other => bail!(
                        "--report {other:?} is not a report format\n  fix: --report junit <file>, --report json <file> or --report markdown <file>"
                    ),
                };
                Ok((format, PathBuf::from(file)))
            }
            _ => bail!("--report needs a format and a file\n  fix: --report junit ci.xml"),
        })
        .collect()
}

/// The report of `steps` in `format`; `seconds` is the whole run.
pub fn render(format: ReportFormat, steps: &[StepReport], seconds: f64) -> Result<String> {
    Ok(match format {
        ReportFormat::Junit => junit_report(steps, seconds),
        ReportFormat::Json => json_report(steps, seconds)?,
        ReportFormat::Markdown => markdown_report(steps, seconds),
    })
}

/// What one step did, as the reports say it.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    pub result: &'static str,
    pub seconds: f64,
    /// The failing command (secrets masked) and the tail of its stderr; empty unless it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StepReport {
    /// A failed step's command line (`$ ...`) and the tail of its stderr, one line each.
    fn failure_text(&self) -> String {
        std::iter::once(format!("$ {}", self.command.as_deref().unwrap_or_default()))
            .chain(self.stderr_tail.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How many of `steps` have `result` (`passed`, `failed`, `skipped`).
fn count(steps: &[StepReport], result: &str) -> usize {
    steps.iter().filter(|s| s.result == result).count()
}

/// The JSON report: every step, and the totals of the closing line.
pub fn json_report(steps: &[StepReport], seconds: f64) -> Result<String> {
    let report = serde_json::json!({
        "passed": count(steps, "passed"),
        "failed": count(steps, "failed"),
        "skipped": count(steps, "skipped"),
        "seconds": seconds,
        "steps": steps,
    });
    Ok(serde_json::to_string_pretty(&report)? + "\n")
}

/// The JUnit XML report: one `<testcase>` per step, `<failure>` with the command and its stderr tail.
pub fn junit_report(steps: &[StepReport], seconds: f64) -> String {
    let (failed, skipped) = (count(steps, "failed"), count(steps, "skipped"));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cargo xtask ci\" tests=\"{n}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{seconds:.1}\">\n  <testsuite name=\"cargo xtask ci\" tests=\"{n}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{seconds:.1}\">\n",
        n = steps.len()
    );
    for step in steps {
        let name = markup_escape(&step.name);
        let head = format!(
            "    <testcase classname=\"ci\" name=\"{name}\" time=\"{:.1}\"",
            step.seconds
        );
        match step.result {
            "failed" => xml.push_str(&format!(
                "{head}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                markup_escape(step.reason.as_deref().unwrap_or("failed")),
                markup_escape(&step.failure_text())
            )),
            "skipped" => xml.push_str(&format!(
                "{head}>\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                markup_escape(step.reason.as_deref().unwrap_or("skipped"))
            )),
            _ => xml.push_str(&format!("{head}/>\n")),
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// The stderr lines a runner failure report carries (`    | line`).
pub fn stderr_tail(report: &str) -> Vec<String> {
    report
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("| ")
                .or_else(|| (l.trim() == "|").then_some(""))
        })
        .map(String::from)
        .collect()
}

/// The Markdown report (a GitHub Actions job summary): the closing line, a table of every step, and each
/// failure's command and stderr tail in a code block.
pub fn markdown_report(steps: &[StepReport], seconds: f64) -> String {
    let (passed, failed, skipped) = (count(steps, "passed"), count(steps, "failed"), count(steps, "skipped"));
    let mut md = format!("## cargo xtask ci: {passed} passed, {failed} failed");
    if skipped > 0 {
        md.push_str(&format!(", {skipped} skipped"));
    }
    md.push_str(&format!(
        " ({seconds:.0} s)\n\n| step | result | seconds |\n|---|---|---:|\n"
    ));
    for step in steps {
        // A `|` would end the cell; the names are ours, but a table must not break on one.
        let name = markup_escape(&step.name).replace('|', "\\|");
        let seconds = if step.result == "skipped" {
            "–".to_string()
        } else {
            format!("{:.1}", step.seconds)
        };
        let result = match step.result {
            "failed" => "**failed**".to_string(),
            "skipped" => format!("skipped ({})", step.reason.as_deref().unwrap_or("skipped")),
            other => other.to_string(),
        };
        md.push_str(&format!("| {name} | {result} | {seconds} |\n"));
    }
    for step in steps.iter().filter(|s| s.result == "failed") {
        // A fence longer than any run of backticks in the text, so stderr cannot close it.
        let text = step.failure_text();
        let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        md.push_str(&format!("\n### {} failed\n\n{fence}\n{text}\n{fence}\n", step.name));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_each_step_and_the_failing_command() {
        let steps = vec![
            StepReport {
                name: "fmt".into(),
                result: "passed",
                seconds: 0.5,
                command: None,
                stderr_tail: vec![],
                reason: None,
            },
            StepReport {
                name: "lint <all>".into(),
                result: "failed",
                seconds: 2.0,
                command: Some("cargo xtask lint".into()),
                stderr_tail: stderr_tail(
                    "command failed (exit status 1):\n  $ x\n  last lines of its stderr:\n    | bad & worse\n    | second",
                ),
                reason: Some("command failed (exit status 1):".into()),
            },
            StepReport {
                name: "dev-up".into(),
                result: "skipped",
                seconds: 0.0,
                command: None,
                stderr_tail: vec![],
                reason: Some("a step it needs did not pass".into()),
            },
        ];
        assert_eq!(steps[1].stderr_tail, ["bad & worse", "second"]);
        let xml = junit_report(&steps, 2.5);
        assert!(xml.contains(r#"tests="3" failures="1" skipped="1""#), "{xml}");
        assert!(
            xml.contains(r#"<testcase classname="ci" name="fmt" time="0.5"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="lint &lt;all&gt;""#), "{xml}");
        assert!(
            xml.contains("$ cargo xtask lint\nbad &amp; worse\nsecond</failure>"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="a step it needs did not pass"/>"#),
            "{xml}"
        );
        let json: serde_json::Value = serde_json::from_str(&json_report(&steps, 2.5).unwrap()).unwrap();
        assert_eq!(
            (
                json["passed"].as_u64(),
                json["failed"].as_u64(),
                json["skipped"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(json["steps"][1]["command"], "cargo xtask lint");
        assert_eq!(json["steps"][1]["stderr_tail"][0], "bad & worse");
        assert!(json["steps"][0].get("command").is_none());
    }

    #[test]
    fn the_markdown_report_is_a_table_with_each_failure_in_a_fence() {
        let steps = vec![
            StepReport {
                name: "fmt".into(),
                result: "passed",
                seconds: 0.5,
                command: None,
                stderr_tail: vec![],
                reason: None,
            },
            StepReport {
                name: "a|b".into(),
                result: "failed",
                seconds: 2.0,
                command: Some("cargo xtask lint".into()),
                stderr_tail: vec!["```".into(), "bad".into()],
                reason: Some("command failed".into()),
            },
        ];
        let md = markdown_report(&steps, 2.5);
        assert!(md.starts_with("## cargo xtask ci: 1 passed, 1 failed (2 s)\n"), "{md}");
        assert!(md.contains("| fmt | passed | 0.5 |\n"), "{md}");
        assert!(md.contains("| a\\|b | **failed** | 2.0 |\n"), "{md}");
        assert!(md.contains("\n````\n$ cargo xtask lint\n```\nbad\n````\n"), "{md}");
    }

    #[test]
    fn report_flags_are_checked_before_anything_runs() {
        let flags = |r: &[&str]| parse_flags(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let parsed = flags(&["junit", "a.xml", "markdown", "b.md"]).unwrap();
        assert_eq!(
            parsed,
            [
                (ReportFormat::Junit, PathBuf::from("a.xml")),
                (ReportFormat::Markdown, PathBuf::from("b.md"))
            ]
        );
        let err = flags(&["xml", "a.xml"]).unwrap_err().to_string();
        assert!(err.contains("not a report format") && err.contains("fix:"), "{err}");
    }
}
