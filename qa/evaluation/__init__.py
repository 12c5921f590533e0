"""Run an engine over question files and measure it: metrics, SQuAD, reports."""
