"""Read a corpus: a folder of article files, or a JSONL/CSV archive."""
