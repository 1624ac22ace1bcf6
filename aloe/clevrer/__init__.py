"""The CLEVRER question language: program parser, symbolic executor, metrics."""
