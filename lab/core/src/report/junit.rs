//! JUnit XML: one testsuite per drill, one testcase per assertion, so CI systems list each
//! expectation and show actual against expected on failure.

use std::fmt::Write;

use super::fmt::by_how_much;
use super::RunReport;

pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for several drills, one `<testsuite>` each.
pub fn junit_for(reports: &[RunReport]) -> String {
    let tests: usize = reports.iter().map(|r| r.assertions.len()).sum();
    let failures: usize = reports
        .iter()
        .map(|r| r.assertions.iter().filter(|a| !a.passed).count())
        .sum();
    let time: f64 = reports
        .iter()
        .map(|r| r.summary.duration.as_secs_f64())
        .sum();
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<testsuites name="lab" tests="{tests}" failures="{failures}" errors="0" time="{time:.3}">"#
    );
    for r in reports {
        let m = &r.meta;
        let failed = r.assertions.iter().filter(|a| !a.passed).count();
        let _ = writeln!(
            o,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="0" time="{:.3}" timestamp="{}">"#,
            xml_escape(&m.title),
            r.assertions.len(),
            failed,
            r.summary.duration.as_secs_f64(),
            xml_escape(&m.started_at)
        );
        let _ = writeln!(o, "    <properties>");
        let props = [
            ("scenario", m.scenario.as_str()),
            ("topology", m.topology.as_str()),
            ("profile", m.profile.as_str()),
            ("engine", m.engine.as_str()),
        ];
        for (k, v) in props
            .into_iter()
            .chain(m.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            let _ = writeln!(
                o,
                r#"      <property name="{}" value="{}"/>"#,
                xml_escape(k),
                xml_escape(v)
            );
        }
        let _ = writeln!(o, "    </properties>");
        let classname = xml_escape(&format!("lab.{}.{}", m.topology, m.scenario));
        for a in &r.assertions {
            let name = xml_escape(&a.expr);
            if a.passed {
                let _ = writeln!(
                    o,
                    r#"    <testcase name="{name}" classname="{classname}" time="0"/>"#
                );
                continue;
            }
            let mut summary = format!("actual {}, expected {}", a.actual, a.expected);
            if let Some(by) = by_how_much(&a.actual, &a.expected) {
                summary.push_str(&format!(" ({by})"));
            }
            let _ = writeln!(
                o,
                r#"    <testcase name="{name}" classname="{classname}" time="0">"#
            );
            let _ = writeln!(
                o,
                r#"      <failure message="{}" type="AssertionFailed">{}&#10;actual: {}&#10;expected: {}</failure>"#,
                xml_escape(&summary),
                xml_escape(if a.message.is_empty() {
                    &summary
                } else {
                    &a.message
                }),
                xml_escape(&a.actual),
                xml_escape(&a.expected)
            );
            let _ = writeln!(o, "    </testcase>");
        }
        let _ = writeln!(o, "  </testsuite>");
    }
    let _ = writeln!(o, "</testsuites>");
    o
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    #[test]
    fn one_suite_per_drill_one_case_per_assertion() {
        let a = testdata::report();
        let b = testdata::report_with("Kill again", 1.0, 12_000);
        let xml = junit_for(&[a.clone(), b]);
        assert_eq!(xml.matches("<testsuite ").count(), 2);
        assert_eq!(xml.matches("<testcase ").count(), 6);
        assert_eq!(xml.matches("<failure ").count(), 3, "{xml}");
        assert!(xml.contains(r#"<testsuites name="lab" tests="6" failures="3""#));
        assert!(xml.contains(
            r#"<testsuite name="Kill the Sentinel master" tests="3" failures="2" errors="0" skipped="0" time="35.000""#
        ));
        assert!(
            xml.contains(r#"message="actual 6.050 s, expected &lt; 5 s (over by 1.05 s (+21%))""#),
            "{xml}"
        );
        // The message with markup is escaped, and every opened element is closed.
        assert!(xml.contains("went missing &lt;&amp; &quot;quoted&quot;&gt;"));
        assert_eq!(
            xml.matches("<testcase ").count(),
            xml.matches("</testcase>").count() + xml.matches("time=\"0\"/>").count()
        );
        assert_eq!(a.to_junit().matches("<testsuite ").count(), 1);
    }
}
