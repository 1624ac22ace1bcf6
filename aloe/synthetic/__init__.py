"""Small CLEVRER- and CATER-format datasets written in the real on-disk formats."""
