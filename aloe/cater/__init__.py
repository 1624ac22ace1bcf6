"""CATER snitch localization: the 6x6 grid of final positions, its metrics and losses."""
