"""Outputs made from the store: exports (`hf` parquet shards with a dataset card, flat parquet, JSON Lines, the
AnnotatedPairs JSON of Feedback Forensics) and publishing them to the Hugging Face Hub in one commit.

Like the analyses, this room only reads: the store through its read API, column contracts through the catalog,
analysis results through their public functions. Entry points: `seal.export.core.export` and
`seal.export.publish.publish` (reached from `seal.api.export` / `seal.api.publish`).
"""
