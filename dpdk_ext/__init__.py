"""The direct SF-to-SF channel: point-to-point link detection and bypass wiring (later issue)."""
