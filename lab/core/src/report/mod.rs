//! Reports: JSON, Markdown, SVG chart and JUnit XML from a measured run.
