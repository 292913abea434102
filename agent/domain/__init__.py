"""The domain description: big switch, capabilities, resources (operational state)."""
